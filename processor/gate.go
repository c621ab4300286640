package processor

import (
	"context"
	"sync"

	"github.com/sensehq/sense/event"
)

// gate is a counting semaphore whose waiters are served by priority
// class: critical before medium before low, and in arrival order within
// a class. The processor's memory budget (bytes) and its delivery slots
// are gates.
type gate struct {
	mu      sync.Mutex
	size    int64
	used    int64
	waiters [3][]*gateWaiter
}

type gateWaiter struct {
	n     int64
	ready chan struct{}
}

func newGate(size int64) *gate { return &gate{size: size} }

// acquire takes n units, waiting until they are free and no waiter of a
// higher class (or an earlier one of the same) is waiting. A request for
// more than the size is granted alone, when nothing else is held, so
// that an oversized chunk cannot stall a reader for ever.
func (g *gate) acquire(ctx context.Context, prio event.Priority, n int64) error {
	g.mu.Lock()
	if g.fitsLocked(n) && !g.waitingAtOrAbove(prio) {
		g.used += n
		g.mu.Unlock()
		return nil
	}
	w := &gateWaiter{n: n, ready: make(chan struct{})}
	g.waiters[prio] = append(g.waiters[prio], w)
	g.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		select {
		case <-w.ready:
			// Granted meanwhile: give it back.
			g.used -= n
			g.grantLocked()
		default:
			q := g.waiters[prio]
			for i, x := range q {
				if x == w {
					g.waiters[prio] = append(q[:i:i], q[i+1:]...)
					break
				}
			}
			g.grantLocked()
		}
		return ctx.Err()
	}
}

func (g *gate) fitsLocked(n int64) bool { return g.used+n <= g.size || g.used == 0 }

func (g *gate) waitingAtOrAbove(p event.Priority) bool {
	for q := int(event.Critical); q >= int(p); q-- {
		if len(g.waiters[q]) > 0 {
			return true
		}
	}
	return false
}

// starved reports whether someone waits for units.
func (g *gate) starved() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waitingAtOrAbove(event.Low)
}

// release returns n units.
func (g *gate) release(n int64) {
	g.mu.Lock()
	g.used -= n
	g.grantLocked()
	g.mu.Unlock()
}

// grantLocked wakes waiters in priority order while the head fits.
func (g *gate) grantLocked() {
	for q := int(event.Critical); q >= 0; q-- {
		for len(g.waiters[q]) > 0 {
			w := g.waiters[q][0]
			if !g.fitsLocked(w.n) {
				return // the head of the highest class waits; nobody passes it
			}
			g.used += w.n
			g.waiters[q] = g.waiters[q][1:]
			close(w.ready)
		}
	}
}

// inUse returns the units held.
func (g *gate) inUse() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.used
}
