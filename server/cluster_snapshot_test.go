package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/server"
)

// TestClusterSnapshot: a node whose directory of one buffer is wiped while
// it is stopped, after retention moved the buffer's start, catches up when
// it starts again (a raft snapshot, then the leader's batches): it starts
// where the leader does and holds the same records from there.
func TestClusterSnapshot(t *testing.T) {
	c := sensetest.StartCluster(t, 3, retainedHub)
	produce := func(node, from, to int) { producePadded(t, c.NativeAddr(node), from, to) }
	// About 2 MiB, in the one buffer that gets them: retention moves its
	// start past its first segments.
	produce(0, 0, 2000)
	parts, code := c.Nodes[0].Node.Partitions("payments")
	if code != result.OK {
		t.Fatal(code)
	}
	var part int32
	var most int64
	for _, p := range parts {
		if p.HighWatermark > most {
			part, most = p.Partition, p.HighWatermark
		}
	}
	span := func(i int) (start, hw int64) {
		parts, code := c.Nodes[i].Node.Partitions("payments")
		if code != result.OK || int(part) >= len(parts) {
			t.Fatalf("n%d: %d partitions, %s", i+1, len(parts), code)
		}
		return parts[part].Start, parts[part].HighWatermark
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		moved := true
		for i := range c.Nodes {
			s, _ := span(i)
			moved = moved && s > 0
		}
		if moved {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("retention did not move the buffer's start on every node within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	leader := c.Leader("payments", part, 10*time.Second)
	f := (leader + 1) % 3
	c.Stop(f)
	if err := os.RemoveAll(filepath.Join(c.Config(f).Node.DataDir, "hubs", "tangier", fmt.Sprintf("payments-%d", part))); err != nil {
		t.Fatal(err)
	}
	produce(leader, 2000, 2100)
	c.Start(f)
	produce(leader, 2100, 2200)
	keys := func(i int) []string {
		var out []string
		eachRecord(t, c.Nodes[i], "payments", part, func(r *batch.Record) { out = append(out, string(r.Key)) })
		return out
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		l := c.Leader("payments", part, 10*time.Second)
		ls, lhw := span(l)
		fs, fhw := span(f)
		if fs == ls && fhw == lhw && fs > 0 {
			got, want := keys(f), keys(l)
			if slices.Equal(got, want) && len(got) > 0 && got[len(got)-1] == "r-2199" {
				if n := server.Snapshots(c.Nodes[f], fmt.Sprintf("payments/tangier/%d", part)); n != 1 {
					t.Fatalf("n%d caught up with %d snapshots installed, want 1", f+1, n)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("n%d holds offsets %d to %d, the leader n%d %d to %d, 30s after it started with its buffer wiped", f+1, fs, fhw, l+1, ls, lhw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
