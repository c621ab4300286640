package processor

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/sensehq/sense/event"
)

// limiter is an adaptive token bucket: events leave at most at rate per
// second, and the sink moves rate. A refusal (429, 503, an error, a
// timeout) halves it, a slow answer (past the slow threshold) cuts it by
// a fifth, and a quick success raises it by a tenth (at least minStep)
// when the rate made a delivery wait since the last raise, never past
// ceiling (the processor's rate; +Inf without one) nor below
// floor. Waiters of a higher priority class go first.
type limiter struct {
	mu      sync.Mutex
	rate    float64
	ceiling float64
	floor   float64
	tokens  float64
	burst   float64
	last    time.Time
	slow    time.Duration
	waiting [3]int
	limited bool // a wait was cut short by the rate since the last raise
	now     func() time.Time
}

const (
	limiterStart   = 100000.0 // events/s when no rate bounds it
	limiterMinStep = 100.0
)

func newLimiter(ceiling float64, batchMax int, slow time.Duration) *limiter {
	if ceiling <= 0 {
		ceiling = math.Inf(1)
	}
	l := &limiter{ceiling: ceiling, rate: math.Min(ceiling, limiterStart), burst: float64(batchMax),
		floor: math.Min(ceiling, 10), slow: slow, now: time.Now}
	l.tokens = l.burst
	l.last = l.now()
	return l
}

// wait takes n tokens (a batch of n events), waiting for them. A batch
// larger than the bucket waits until the bucket is full, then leaves the
// bucket in debt, so that the mean rate holds.
func (l *limiter) wait(ctx context.Context, prio event.Priority, n int) error {
	l.mu.Lock()
	l.waiting[prio]++
	defer func() { l.mu.Lock(); l.waiting[prio]--; l.mu.Unlock() }()
	for {
		l.refillLocked()
		need := math.Min(float64(n), l.burst)
		higher := false
		for q := int(prio) + 1; q <= int(event.Critical); q++ {
			higher = higher || l.waiting[q] > 0
		}
		if !higher && l.tokens >= need {
			l.tokens -= float64(n)
			l.mu.Unlock()
			return nil
		}
		l.limited = l.limited || !higher
		d := time.Duration((need - l.tokens) / l.rate * float64(time.Second))
		if higher || d < time.Millisecond {
			d = time.Millisecond
		}
		l.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		l.mu.Lock()
	}
}

func (l *limiter) refillLocked() {
	now := l.now()
	if math.IsInf(l.rate, 1) {
		l.tokens = l.burst
	} else {
		l.tokens = math.Min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
}

// success records a delivery that took latency.
func (l *limiter) success(latency time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.slow > 0 && latency > l.slow {
		l.rate = math.Max(l.floor, l.rate*0.8)
		return
	}
	// Raise the rate only when it is what held deliveries back: a
	// sink that sets the pace by its latency alone leaves it as it is.
	if l.limited {
		l.limited = false
		l.rate = math.Min(l.ceiling, l.rate+math.Max(limiterMinStep, l.rate/10))
	}
}

// refused records a refusal or a failure of the sink.
func (l *limiter) refused() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate = math.Max(l.floor, l.rate/2)
}

// current returns the rate in events per second.
func (l *limiter) current() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate
}
