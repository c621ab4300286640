package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
)

// TestClusterRetention: a replicated pipeline's retention_bytes holds on
// every node: the oldest segments of each buffer go, on every replica
// alike, and what is kept reads back whole.
// retainedHub: one hub on every node, a pipeline whose buffers keep 512
// KiB in segments of 512 KiB.
const retainedHub = `
jurisdictions: [MA]
hubs: [{name: tangier, jurisdiction: MA}]
pipelines: [{name: payments, partitions: 1, retention_bytes: 512KiB}]
durability: {segment_bytes: 512KiB}
`

// producePadded produces events r-from to r-(to-1), with values of 1 KiB,
// to payments through the node at addr, in requests of at most 128 KiB
// (smaller than a segment), and fails the test on any refusal.
func producePadded(t *testing.T, addr string, from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := cl.NewProducer(ctx, client.ProducerOptions{Pipeline: "payments", MaxRetries: 50, BatchBytes: 128 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pad := []byte(strings.Repeat("x", 1024))
	for i := from; i < to; i++ {
		p.Send(client.Event{Key: fmt.Appendf(nil, "r-%d", i), Value: pad}, func(r client.Result) {
			if r.Err != nil {
				t.Errorf("r-%d: %v", i, r.Err)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

func TestClusterRetention(t *testing.T) {
	c := sensetest.StartCluster(t, 3, retainedHub)
	// About 6 MiB in one buffer, in requests smaller than a segment.
	producePadded(t, c.NativeAddr(0), 0, 3000)
	deadline := time.Now().Add(30 * time.Second)
	for i, s := range c.Nodes {
		for {
			parts, code := s.Node.Partitions("payments")
			if code != result.OK {
				t.Fatal(code)
			}
			var start, hw int64
			part := int32(-1)
			for _, p := range parts {
				if p.HighWatermark > hw {
					start, hw, part = p.Start, p.HighWatermark, p.Partition
				}
			}
			// Kept: the newest 512 KiB at least (records of about 2 KiB),
			// with the last one produced, and not much more.
			if start > 0 && hw-start < 1000 {
				// (A batch retried after a leader change is stored after
				// later ones: the newest offsets need not hold r-2999.)
				kept := map[string]bool{}
				n := 0
				eachRecord(t, s, "payments", part, func(r *batch.Record) {
					kept[string(r.Key)] = true
					n++
				})
				if n < 250 || len(kept) != n {
					t.Fatalf("n%d keeps %d records (%d distinct) from offset %d to %d; want the newest 250 at least, each once", i+1, n, len(kept), start, hw)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("n%d: payments holds offsets %d to %d 30s after 6 MiB were produced under a retention of 512 KiB", i+1, start, hw)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
