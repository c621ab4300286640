package processor

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sensehq/sense/event"
)

func (g *gate) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiters[0]) + len(g.waiters[1]) + len(g.waiters[2])
}

// TestGateServesCriticalFirst: with the budget spent, waiters are served
// critical, then medium, then low, whatever order they came in.
func TestGateServesCriticalFirst(t *testing.T) {
	g := newGate(10)
	ctx := t.Context()
	if err := g.acquire(ctx, event.Low, 10); err != nil {
		t.Fatal(err)
	}
	order := make(chan event.Priority, 3)
	for i, p := range []event.Priority{event.Low, event.Medium, event.Critical} {
		go func() {
			if err := g.acquire(ctx, p, 4); err == nil {
				order <- p
			}
		}()
		for g.waiting() != i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	g.release(4)
	if got := <-order; got != event.Critical {
		t.Fatalf("first served: %v", got)
	}
	g.release(4)
	if got := <-order; got != event.Medium {
		t.Fatalf("second served: %v", got)
	}
	g.release(4)
	if got := <-order; got != event.Low {
		t.Fatalf("third served: %v", got)
	}
	if g.inUse() != 10 {
		t.Fatalf("in use %d", g.inUse())
	}
}

// TestGateOversized: a request larger than the gate is granted alone, and
// a cancelled waiter leaves nothing behind.
func TestGateOversized(t *testing.T) {
	g := newGate(10)
	if err := g.acquire(t.Context(), event.Low, 25); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- g.acquire(ctx, event.Critical, 1) }()
	for g.waiting() != 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled acquire succeeded while the gate was full")
	}
	g.release(25)
	if g.inUse() != 0 || g.waiting() != 0 {
		t.Fatalf("in use %d, waiting %d", g.inUse(), g.waiting())
	}
}

// TestLimiterAdapts: refusals halve the rate down to its floor, slow
// answers cut it, and quick successes raise it only while it held
// deliveries back, never past the ceiling.
func TestLimiterAdapts(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(1000, 100, time.Second)
	l.now = func() time.Time { return now }
	if l.current() != 1000 {
		t.Fatalf("start %v", l.current())
	}
	l.refused()
	l.refused()
	if l.current() != 250 {
		t.Fatalf("after two refusals %v", l.current())
	}
	l.success(2 * time.Second)
	if l.current() != 200 {
		t.Fatalf("after a slow answer %v", l.current())
	}
	l.success(time.Millisecond)
	if l.current() != 200 {
		t.Fatalf("raised without having held anything back: %v", l.current())
	}
	l.limited = true
	l.success(time.Millisecond)
	if l.current() != 300 {
		t.Fatalf("after a quick success while limiting %v", l.current())
	}
	for i := 0; i < 100; i++ {
		l.limited = true
		l.success(time.Millisecond)
	}
	if l.current() != 1000 {
		t.Fatalf("past the ceiling: %v", l.current())
	}
	for i := 0; i < 100; i++ {
		l.refused()
	}
	if l.current() != 10 {
		t.Fatalf("below the floor: %v", l.current())
	}
}

// TestMetricsRegisterTwice: a second manager on one registry (processors
// stopped and started again on a node) shares the metrics.
func TestMetricsRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := newMetrics(reg), newMetrics(reg)
	a.delivered.WithLabelValues("x").Add(2)
	b.delivered.WithLabelValues("x").Add(3)
	if got := testutil.ToFloat64(a.delivered.WithLabelValues("x")); got != 5 {
		t.Fatalf("delivered %v", got)
	}
}
