package replica

import (
	"fmt"
	"testing"
)

// TestForwardKeepsOrderAcrossFailover: a native producer's batches
// (sparse sequences, five in flight) forwarded by a follower while their
// leader dies all
// settle without an error, none refused for want of a leader, and the log
// holds them in sequence order: a batch waiting for a leader or tried
// again is never overtaken by a later one. Sparse sequences would let the
// new leader store a later batch first and refuse the earlier as older.
func TestForwardKeepsOrderAcrossFailover(t *testing.T) {
	for run := range 3 {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			lv := &liveness{dead: map[string]bool{}}
			c := newTestClusterAlive(t, lv.alive, "n1", "n2", "n3")
			l := c.leader()
			c.appendRetry(record(0)) // followers learn the leader
			c.converge(c.group(l).HighWatermark())
			f := ""
			for n := range c.hosts {
				if n != l && (f == "" || n < f) {
					f = n
				}
			}
			const n = 300
			acks := make([]*Ack, n)
			for i := range n {
				if i == n/3 {
					lv.kill(l)
					c.stop(l)
				}
				// At most five in flight, as a producer's MaxInFlight (and
				// the five batches a log remembers per producer).
				if i >= 5 {
					if _, err := acks[i-5].Wait(); err != nil {
						t.Fatalf("append %d of %d (leader %s stopped at %d): %v", i-5, n, l, n/3, err)
					}
				}
				// Sequences with gaps, as a native producer's in one buffer.
				a, err := c.group(f).Append(sparseBatch(21, int32(3*i)), false, true, true)
				if err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
				acks[i] = a
			}
			prev := int64(-1)
			for i, a := range acks {
				off, err := a.Wait()
				if err != nil {
					t.Fatalf("append %d of %d (leader %s stopped at %d): %v", i, n, l, n/3, err)
				}
				if off <= prev {
					t.Fatalf("append %d at offset %d, not after the previous one's %d", i, off, prev)
				}
				prev = off
			}
			want := []string{"value 0", "second"}
			for i := range n {
				want = append(want, fmt.Sprintf("pid 21 seq %d", 3*i))
			}
			nl := c.leader(l)
			c.converge(c.group(nl).HighWatermark())
			if got := values(t, c.sameLogs()); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("log holds %v,\nwant %v", got, want)
			}
		})
	}
}

func sparseBatch(pid int64, seq int32) []byte { return idempotent(pid, seq) }
