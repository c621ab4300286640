package node

import (
	"context"
	"sync"

	"github.com/sensehq/sense/event"
)

// budget bounds the ingress bytes held in memory at once (router
// memory_limit): a request's bytes are reserved before it is read into
// memory and released once it is answered. Reserving blocks while the
// budget is full, so the edge stops reading: the backpressure producers
// feel. Once the bytes held pass shedLow, low events are refused
// (OVERLOADED) instead of stored, and past shedMedium medium ones too;
// critical events are never refused.
//
// Critical requests go first: the last eighth of the budget (headroom) is
// theirs alone, and while one waits, no other request is given bytes.
type budget struct {
	mu          sync.Mutex
	cond        *sync.Cond
	limit       int64
	headroom    int64
	shedLow     int64
	shedMedium  int64
	used        int64
	critWaiting int
}

func newBudget(limit int64, lowAt, mediumAt float64) *budget {
	b := &budget{limit: limit, headroom: limit / 8, shedLow: int64(float64(limit) * lowAt), shedMedium: int64(float64(limit) * mediumAt)}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// reserve takes n bytes, waiting while they do not fit. A request larger
// than the whole budget passes alone. lane, when not nil, tells the
// request's class; it is asked only when the request cannot have its
// bytes at once. It fails only if ctx ends first.
func (b *budget) reserve(ctx context.Context, n int64, lane func() event.Priority) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fits(n, false) {
		b.used += n
		return nil
	}
	critical := lane != nil && lane() == event.Critical
	if !b.fits(n, critical) {
		stop := context.AfterFunc(ctx, func() {
			b.mu.Lock()
			b.cond.Broadcast()
			b.mu.Unlock()
		})
		defer stop()
		if critical {
			b.critWaiting++
			defer func() { b.critWaiting-- }()
		}
		for !b.fits(n, critical) && ctx.Err() == nil {
			b.cond.Wait()
		}
		if err := ctx.Err(); err != nil {
			b.cond.Broadcast() // the others may go now
			return err
		}
	}
	b.used += n
	return nil
}

// fits reports whether n more bytes may be taken now by a critical request
// or another one. Called with mu held.
func (b *budget) fits(n int64, critical bool) bool {
	if b.used == 0 {
		return true // alone, whatever its size
	}
	if critical {
		return b.used+n <= b.limit
	}
	return b.critWaiting == 0 && b.used+n <= b.limit-b.headroom
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.cond.Broadcast()
	b.mu.Unlock()
}

// shed reports whether events of class p are refused at the current level.
func (b *budget) shed(p event.Priority) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch p {
	case event.Low:
		return b.used > b.shedLow
	case event.Medium:
		return b.used > b.shedMedium
	}
	return false
}

// Used returns the bytes held now.
func (b *budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
