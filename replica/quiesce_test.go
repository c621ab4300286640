package replica

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// liveness is a test's HostOptions.Alive: every node alive unless marked
// dead.
type liveness struct {
	mu   sync.Mutex
	dead map[string]bool
}

func (l *liveness) alive(n string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.dead[n]
}

func (l *liveness) kill(n string) {
	l.mu.Lock()
	l.dead[n] = true
	l.mu.Unlock()
}

// waitQuiet waits until the group is quiet on every running host.
func (c *testCluster) waitQuiet(what string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		all := true
		for _, h := range c.hosts {
			all = all && h.Group("p/0").quiet.Load()
		}
		if all {
			// Heartbeats gathered for a peer just before the group went
			// quiet leave within heartbeatLinger (heartbeat.go), and the
			// answers to them within another.
			time.Sleep(5 * heartbeatLinger)
			return
		}
		if time.Now().After(deadline) {
			for n, h := range c.hosts {
				g := h.Group("p/0")
				c.t.Logf("%s: quiet %v leader %q term %d hw %d next %d", n, g.quiet.Load(), g.Leader(), g.Term(), g.HighWatermark(), g.log.NextOffset())
			}
			c.t.Fatalf("%s: the group is not quiet on every replica after 20s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestQuietGroup: an idle group goes quiet on every replica and then sends
// nothing at all; an append wakes it and commits on all three; once idle
// again it goes quiet again; when its leader dies (Alive says so), the
// followers wake, elect another leader, and take appends.
func TestQuietGroup(t *testing.T) {
	lv := &liveness{dead: map[string]bool{}}
	c := newTestClusterAlive(t, lv.alive, "n1", "n2", "n3")
	l := c.leader()
	c.appendRetry(record(0))
	c.waitQuiet("after the first append")

	// Quiet means silent: no frame between the replicas for a while.
	c.net.mu.Lock()
	before := c.net.frames
	c.net.mu.Unlock()
	time.Sleep(50 * c.hosts[l].opts.Tick)
	c.net.mu.Lock()
	after := c.net.frames
	c.net.mu.Unlock()
	if after != before {
		t.Fatalf("%d frames sent in 50 ticks by a quiet group", after-before)
	}

	// An append on the leader wakes the group and commits everywhere.
	a, err := c.group(l).Append(record(1), false, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	c.converge(c.group(l).HighWatermark())
	c.waitQuiet("after a second append")

	// An append on a quiet follower is forwarded and wakes it.
	f := ""
	for n := range c.hosts {
		if n != l {
			f = n
		}
	}
	a, err = c.group(f).Append(record(2), false, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Wait(); err != nil {
		t.Fatalf("append forwarded by a quiet follower: %v", err)
	}
	c.waitQuiet("after a forwarded append")

	// The leader dies while the group is quiet: the followers learn it
	// from liveness alone (nothing else would wake them) and elect one of
	// themselves.
	c.stop(l)
	lv.kill(l)
	nl := c.leader(l)
	off := c.appendRetry(record(3), l)
	if off < 0 {
		t.Fatal("no append after the quiet leader died")
	}
	if nl == l {
		t.Fatal("the dead leader still leads")
	}
}

func TestQuiesceFrame(t *testing.T) {
	p := encodeQuiesce("pay/tangier/0", 7, 42)
	key, term, idx, err := decodeQuiesce(p)
	if err != nil || key != "pay/tangier/0" || term != 7 || idx != 42 {
		t.Fatalf("decoded %q %d %d %v", key, term, idx, err)
	}
	for i := range len(p) {
		if _, _, _, err := decodeQuiesce(p[:i]); !errors.Is(err, errBadQuiesce) {
			t.Fatalf("cut to %d bytes: %v", i, err)
		}
	}
	if _, _, _, err := decodeQuiesce(append(p, 0)); !errors.Is(err, errBadQuiesce) {
		t.Fatalf("a byte too many: %v", err)
	}
}

// FuzzDecodeQuiesce: any payload decodes or gives errBadQuiesce, and what
// decodes encodes back to the same bytes.
func FuzzDecodeQuiesce(f *testing.F) {
	f.Add(encodeQuiesce("k/h/0", 1, 1))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 'k'})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		key, term, idx, err := decodeQuiesce(p)
		if err != nil {
			if !errors.Is(err, errBadQuiesce) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		if re := encodeQuiesce(key, term, idx); string(re) != string(p) {
			t.Fatalf("re-encoded %x from %x", re, p)
		}
	})
}
