package seglog

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/vfs"
)

// paceScene is a log whose group commits are paced by an interval so long
// that a paced commit always has to wait, and whose waits are recorded
// instead of slept.
type paceScene struct {
	l *Log
	g *gateFS

	mu     sync.Mutex
	sleeps []time.Duration
}

func newPaceScene(t *testing.T, interval time.Duration) *paceScene {
	t.Helper()
	sc := &paceScene{g: newGateFS(vfs.NewMem())}
	sc.l = openT(t, "/pace", Options{FS: sc.g})
	// Beyond MaxGroupCommitInterval, so that however slow the machine a
	// paced commit finds time left to wait.
	sc.l.opts.GroupCommitInterval = interval
	sc.l.sleep = func(d time.Duration) {
		sc.mu.Lock()
		sc.sleeps = append(sc.sleeps, d)
		sc.mu.Unlock()
	}
	t.Cleanup(func() { sc.g.open(); sc.l.Close() })
	return sc
}

func (sc *paceScene) slept() []time.Duration {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return append([]time.Duration(nil), sc.sleeps...)
}

// busySync appends a, holds a's fdatasync at the gate, appends b while it
// is held (so b arrives during a busy fdatasync), releases it and returns
// once a is durable. b is written and not yet acknowledged.
func (sc *paceScene) busySync(t *testing.T) Pending {
	t.Helper()
	a, err := sc.l.AppendAsync(mkBatch("a", 2, 100, -1, -1), false)
	if err != nil {
		t.Fatal(err)
	}
	sc.g.arm(func(op, name string) bool { return op == "sync" && strings.HasSuffix(name, logSuffix) })
	done := make(chan error, 1)
	go func() { _, err := a.Wait(); done <- err }()
	sc.g.waitBlocked(t)
	b, err := sc.l.AppendAsync(mkBatch("b", 2, 100, -1, -1), false)
	if err != nil {
		t.Fatal(err)
	}
	sc.g.open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b.Ready() {
		t.Fatal("b is acknowledged by the fdatasync it arrived during")
	}
	return b
}

// TestGroupCommitPacing: a group commit that follows an fdatasync during
// which appends arrived waits for the rest of the interval (and its
// appends are then durable); one that follows an idle log, an explicit
// Sync, and a log with no interval do not wait.
func TestGroupCommitPacing(t *testing.T) {
	t.Run("idle log syncs at once", func(t *testing.T) {
		sc := newPaceScene(t, time.Hour)
		for range 3 {
			if _, err := sc.l.Append(mkBatch("x", 2, 100, -1, -1)); err != nil {
				t.Fatal(err)
			}
		}
		if s := sc.slept(); len(s) != 0 {
			t.Fatalf("appends to an idle log waited %v", s)
		}
	})
	t.Run("back to back waits", func(t *testing.T) {
		sc := newPaceScene(t, time.Hour)
		b := sc.busySync(t)
		if s := sc.slept(); len(s) != 0 {
			t.Fatalf("the first commit waited %v", s)
		}
		if _, err := b.Wait(); err != nil {
			t.Fatal(err)
		}
		s := sc.slept()
		if len(s) != 1 || s[0] <= 0 || s[0] > time.Hour {
			t.Fatalf("the commit after a busy fdatasync waited %v, want one wait within the interval", s)
		}
		if sc.l.HighWatermark() != sc.l.NextOffset() {
			t.Fatalf("high watermark %d, next offset %d: the paced commit left appends behind", sc.l.HighWatermark(), sc.l.NextOffset())
		}
		// Nothing arrived during that commit's fdatasync: the next append
		// is synced at once.
		if _, err := sc.l.Append(mkBatch("c", 2, 100, -1, -1)); err != nil {
			t.Fatal(err)
		}
		if s := sc.slept(); len(s) != 1 {
			t.Fatalf("an append after a quiet fdatasync waited: %v", s)
		}
	})
	t.Run("Sync is not paced", func(t *testing.T) {
		sc := newPaceScene(t, time.Hour)
		b := sc.busySync(t)
		if err := sc.l.Sync(); err != nil {
			t.Fatal(err)
		}
		if !b.Ready() {
			t.Fatal("b is not acknowledged after Sync")
		}
		if s := sc.slept(); len(s) != 0 {
			t.Fatalf("Sync waited %v", s)
		}
	})
	t.Run("no interval", func(t *testing.T) {
		sc := newPaceScene(t, 0)
		b := sc.busySync(t)
		if _, err := b.Wait(); err != nil {
			t.Fatal(err)
		}
		if s := sc.slept(); len(s) != 0 {
			t.Fatalf("waited %v with no interval", s)
		}
	})
}

func TestGroupCommitIntervalValidated(t *testing.T) {
	for _, d := range []time.Duration{-time.Microsecond, MaxGroupCommitInterval + 1} {
		o := Options{GroupCommitInterval: d}
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "GroupCommitInterval") {
			t.Errorf("GroupCommitInterval %v: err %v, want one naming it", d, err)
		}
	}
}
