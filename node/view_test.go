package node

import (
	"context"
	"testing"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
)

// TestJurisdictionView: "payments.MA" has as partitions the pipeline's
// partitions in MA hubs, renumbered from 0; a record naming no
// jurisdiction written through it is stored with the mask MA; reads and
// offsets through the view are the underlying partition's; a group view
// covers its codes' hubs; an unknown suffix is an unknown pipeline.
func TestJurisdictionView(t *testing.T) {
	n, reg := threeHubs(t, t.TempDir())
	defer n.Close()
	ctx := context.Background()
	all, _ := n.Partitions("payments")
	for _, c := range []struct {
		view string
		hubs map[string]bool
		want int
	}{
		{"payments.MA", map[string]bool{"tangier": true, "dakhla": true}, 12},
		{"payments.SN", map[string]bool{"dakar": true}, 6},
		{"payments.ECOWAS", map[string]bool{"dakar": true}, 6},
	} {
		parts, code := n.Partitions(c.view)
		if code != result.OK || len(parts) != c.want {
			t.Fatalf("%s: %d partitions, %s; want %d", c.view, len(parts), code, c.want)
		}
		k := 0
		for _, p := range all {
			if !c.hubs[p.Hub] {
				continue
			}
			if parts[k].Partition != int32(k) || parts[k].Hub != p.Hub || parts[k].Lane != p.Lane || parts[k].Index != p.Index {
				t.Fatalf("%s partition %d is %+v, want the pipeline's partition %d (%+v) renumbered", c.view, k, parts[k], p.Partition, p)
			}
			k++
		}
	}
	for _, bad := range []string{"payments.XX", "payments.", "nope.MA", ".MA"} {
		if _, code := n.Partitions(bad); code != result.UnknownPipeline {
			t.Errorf("%s: %s, want UNKNOWN_PIPELINE", bad, code)
		}
	}
	// payments.SN partition 0 is dakar's low partition 0: pipeline
	// partition 12.
	base, code, why := n.AppendRaw(ctx, "payments.SN", 0, rawBatch())
	if code != result.OK {
		t.Fatalf("append through the view: %s %s", code, why)
	}
	_, recs := storedRecords(t, n, "payments", 12)
	if len(recs) != 1 {
		t.Fatalf("pipeline partition 12 holds %d records", len(recs))
	}
	sn, _ := reg.Parse("SN")
	if mask, _, _ := routingOf(t, &recs[0]); mask != uint64(sn) {
		t.Fatalf("a record with no jurisdiction written through payments.SN has mask %#x, want SN (%#x)", mask, uint64(sn))
	}
	_, viewRecs := storedRecords(t, n, "payments.SN", 0)
	if len(viewRecs) != 1 || string(viewRecs[0].Value) != "v" {
		t.Fatalf("read through the view: %d records", len(viewRecs))
	}
	if start, hw, code := n.Offsets("payments.SN", 0); code != result.OK || start != 0 || hw != base+1 {
		t.Fatalf("offsets through the view: %d %d %s", start, hw, code)
	}
	if _, code, _ := n.AppendRaw(ctx, "payments.SN", 6, rawBatch()); code != result.UnknownPartition {
		t.Fatalf("partition 6 of a 6-partition view: %s", code)
	}
	// A record that names MA cannot enter an SN view's partition.
	if _, code, _ := n.AppendRaw(ctx, "payments.SN", 0, rawBatch(batch.RecordHeader{Key: "sense.jurisdiction", Value: []byte("MA")})); code != result.PolicyViolation {
		t.Fatalf("an MA record through payments.SN: %s", code)
	}
}
