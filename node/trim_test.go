package node

import (
	"context"
	"fmt"
	"testing"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
)

// TestTrimSegmentBuffer: a node alone moves a buffer's start (Trim):
// Partitions, Offsets and Audit start there, a fetch below it is
// OFFSET_OUT_OF_RANGE, and a restart keeps it. (Sync, which makes durable
// what fsync never acknowledged before, is called on the way.)
func TestTrimSegmentBuffer(t *testing.T) {
	dir := t.TempDir()
	n, reg := threeHubs(t, dir)
	sn, err := reg.Parse("SN")
	if err != nil {
		t.Fatal(err)
	}
	// SN events of the low lane all go to dakar's low buffers; a request
	// per batch.
	for i := range 6 {
		req := &ProduceRequest{Pipeline: "payments", ProducerID: -1}
		for j := range 5 {
			req.Events = append(req.Events, Event{Key: []byte("k"), Value: fmt.Appendf(nil, "v%d-%d", i, j), Mask: sn})
		}
		res := make([]Result, len(req.Events))
		if err := n.Produce(context.Background(), req, res); err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Code != result.OK {
				t.Fatalf("produce: %v", r.Code)
			}
		}
	}
	parts, _ := n.Partitions("payments")
	var src Partition
	for _, p := range parts {
		if p.HighWatermark >= 15 {
			src = p
		}
	}
	if src.HighWatermark == 0 {
		t.Fatalf("no buffer holds three batches: %+v", parts)
	}
	// The third batch's base: a batch boundary.
	b, _, _, code := n.Fetch(context.Background(), "payments", src.Partition, 0, 1<<20, nil)
	if code != result.OK {
		t.Fatal(code)
	}
	var bases []int64
	for len(b) > 0 {
		h, err := batch.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, h.BaseOffset)
		b = b[h.Size():]
	}
	start := bases[2]
	if err := n.Sync("payments", src.Partition); err != nil {
		t.Fatal(err)
	}
	if err := n.Trim("payments", src.Partition, start); err != nil {
		t.Fatal(err)
	}
	check := func(n *Node) {
		t.Helper()
		if s, hw, code := n.Offsets("payments", src.Partition); code != result.OK || s != start || hw != src.HighWatermark {
			t.Fatalf("offsets: [%d, %d) %v; want [%d, %d)", s, hw, code, start, src.HighWatermark)
		}
		if _, _, _, code := n.Fetch(context.Background(), "payments", src.Partition, start-1, 1<<20, nil); code != result.OffsetOutOfRange {
			t.Fatalf("fetch below the start: %v, want OFFSET_OUT_OF_RANGE", code)
		}
		hubs, err := n.Audit(context.Background(), "payments")
		if err != nil {
			t.Fatal(err)
		}
		var records int64
		for _, h := range hubs {
			records += h.Records
		}
		if want := int64(30) - start; records != want {
			t.Fatalf("the audit reads %d records, want %d", records, want)
		}
	}
	check(n)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n, _ = threeHubs(t, dir)
	defer n.Close()
	check(n)
}
