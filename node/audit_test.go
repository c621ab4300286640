package node

import (
	"context"
	"strings"
	"testing"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/result"
)

// TestAudit: what every edge stores is compliant, and the audit counts it
// by hub and mask; a record written around the router into a hub outside
// its mask, or without a mask, is a violation named by offset; a hub
// whose policy denies the pipeline counts its records as awaiting
// migration.
func TestAudit(t *testing.T) {
	n, reg := threeHubs(t, t.TempDir())
	defer n.Close()
	ctx := context.Background()
	ma, _ := reg.Parse("MA")
	sn, _ := reg.Parse("SN")
	req := &ProduceRequest{Pipeline: "payments", ProducerID: -1}
	for i := 0; i < 30; i++ {
		m := ma
		if i%3 == 0 {
			m = sn
		}
		req.Events = append(req.Events, Event{Key: []byte{byte(i)}, Value: []byte("v"), Mask: m})
	}
	res := make([]Result, len(req.Events))
	if err := n.Produce(ctx, req, res); err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Code != result.OK {
			t.Fatalf("event %d: %s", i, r.Code)
		}
	}
	if _, code, why := n.AppendRaw(ctx, "payments", 0, rawBatch(batch.RecordHeader{Key: "sense.jurisdiction", Value: []byte("MA")})); code != result.OK {
		t.Fatalf("Kafka batch: %s %s", code, why)
	}
	hubs, err := n.Audit(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, h := range hubs {
		total += h.Records
		if h.Violations != 0 || h.Corrupt != 0 || h.AwaitingMigration != 0 {
			t.Fatalf("hub %s after routed produces: %+v", h.Hub, h)
		}
		if h.Hub == "dakar" && (h.Masks["SN"] != 10 || len(h.Masks) != 1) {
			t.Fatalf("dakar holds masks %v, want SN=10", h.Masks)
		}
	}
	if total != 31 {
		t.Fatalf("the audit read %d records, 31 were stored", total)
	}

	// Around the router: an SN record and one without a mask in tangier.
	p := n.st.Load().pipeline("payments")
	var b batch.Builder
	b.Reset(-1, -1, -1)
	b.Add(1, nil, []byte("sn"), batch.RecordHeader{Key: event.HeaderMask, Value: event.AppendMaskHeader(nil, sn)})
	b.Add(1, nil, []byte("none"))
	if _, err := appendAndWait(p.bufs[0], b.Finish(), AppendChecked|AppendLocal); err != nil {
		t.Fatal(err)
	}
	if err := n.SetHubPolicy("dakhla", []string{"payments"}, nil); err != nil {
		t.Fatal(err)
	}
	hubs, err = n.Audit(ctx, "payments")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hubs {
		switch h.Hub {
		case "tangier":
			if h.Violations != 2 || len(h.Examples) != 2 || !strings.Contains(h.Examples[0], "mask SN, stored in hub tangier (MA)") || !strings.Contains(h.Examples[1], "no valid sense.j header") {
				t.Fatalf("tangier: %d violations, examples %q", h.Violations, h.Examples)
			}
		case "dakhla":
			if h.Violations != 0 || h.AwaitingMigration != h.Records || h.Records == 0 {
				t.Fatalf("dakhla, whose policy now denies payments: %+v", h)
			}
		}
	}
	if _, err := n.Audit(ctx, "nope"); err == nil {
		t.Fatal("audit of an unknown pipeline succeeded")
	}
}
