package node

import (
	"context"
	"sync"

	"github.com/sensehq/sense/event"
)

// budget bounds the ingress bytes held in memory at once (router
// memory_limit). Low events are refused (OVERLOADED) once the bytes in use
// pass shedLow, medium ones past shedMedium; critical events wait for room
// (the edge stops reading their connection: backpressure) and are never
// refused. Waiters are served in arrival order.
type budget struct {
	mu         sync.Mutex
	cond       *sync.Cond
	limit      int64
	shedLow    int64
	shedMedium int64
	used       int64
	waiting    int // critical requests waiting for room
}

func newBudget(limit int64, lowAt, mediumAt float64) *budget {
	b := &budget{limit: limit, shedLow: int64(float64(limit) * lowAt), shedMedium: int64(float64(limit) * mediumAt)}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire takes room for the bytes of each class that may proceed and
// returns what it took; a class with need > 0 and grant 0 is shed.
// Critical bytes always get room eventually; acquire returns an error only
// if ctx ends while it waits.
func (b *budget) acquire(ctx context.Context, need [3]int64) ([3]int64, error) {
	var grant [3]int64
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := need[event.Critical]; c > 0 {
		// A request larger than the whole budget still passes alone.
		c = min(c, b.limit)
		if b.used+c > b.limit {
			b.waiting++
			stop := context.AfterFunc(ctx, func() {
				b.mu.Lock()
				b.cond.Broadcast()
				b.mu.Unlock()
			})
			for b.used+c > b.limit && ctx.Err() == nil {
				b.cond.Wait()
			}
			stop()
			b.waiting--
			if err := ctx.Err(); err != nil {
				return grant, err
			}
		}
		b.used += c
		grant[event.Critical] = c
	}
	// Lower classes never take room a waiting critical request needs.
	if m := need[event.Medium]; m > 0 && b.waiting == 0 && b.used+m <= b.shedMedium {
		b.used += m
		grant[event.Medium] = m
	}
	if l := need[event.Low]; l > 0 && b.waiting == 0 && b.used+l <= b.shedLow {
		b.used += l
		grant[event.Low] = l
	}
	return grant, nil
}

func (b *budget) release(grant [3]int64) {
	b.mu.Lock()
	b.used -= grant[0] + grant[1] + grant[2]
	b.cond.Broadcast()
	b.mu.Unlock()
}

// Used returns the bytes held now.
func (b *budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
