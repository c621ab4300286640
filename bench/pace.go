package bench

import (
	"context"
	"fmt"
	"math/bits"
	"time"
)

// Schedule is an open-loop send schedule: event i of the run is due at
// Start + i/Rate seconds, whatever happened to the events before it.
type Schedule struct {
	Start time.Time
	// Rate is the target rate in events per second.
	Rate int64
}

// NewSchedule checks rate and returns the schedule starting at start.
func NewSchedule(rate int64, start time.Time) (Schedule, error) {
	if rate <= 0 {
		return Schedule{}, fmt.Errorf("bench: rate %d events/s: must be at least 1", rate)
	}
	return Schedule{Start: start, Rate: rate}, nil
}

// Offset returns how long after Start event i is due: floor(i*1e9/Rate)
// nanoseconds, computed without overflow.
func (s Schedule) Offset(i uint64) time.Duration {
	hi, lo := bits.Mul64(i, uint64(time.Second))
	if hi >= uint64(s.Rate) {
		// Beyond any representable time.Duration.
		return time.Duration(1<<63 - 1)
	}
	q, _ := bits.Div64(hi, lo, uint64(s.Rate))
	if q > 1<<63-1 {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(q)
}

// Intended returns the time event i is due.
func (s Schedule) Intended(i uint64) time.Time { return s.Start.Add(s.Offset(i)) }

// Count returns how many events are due in [Start, Start+d): the number of
// i with Offset(i) < d, that is ceil(d*Rate/1e9).
func (s Schedule) Count(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(d), uint64(s.Rate))
	q, r := bits.Div64(hi, lo, uint64(time.Second))
	if r != 0 {
		q++
	}
	return q
}

// Pacer hands one sender its share of a Schedule: with Senders senders,
// sender k sends events k, k+Senders, k+2*Senders, ... below Limit, each
// at its intended time. It never skips an event: when behind schedule it
// returns the next one at once, and the lateness shows in the latency
// measured from the intended time. A Pacer is used by one goroutine.
type Pacer struct {
	sched  Schedule
	next   uint64
	stride uint64
	limit  uint64
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	behind uint64
}

// NewPacer returns the pacer of sender k of senders over the events
// [0, limit) of sched.
func NewPacer(sched Schedule, k, senders int, limit uint64) (*Pacer, error) {
	if sched.Rate <= 0 {
		return nil, fmt.Errorf("bench: rate %d events/s: must be at least 1", sched.Rate)
	}
	if senders < 1 || k < 0 || k >= senders {
		return nil, fmt.Errorf("bench: sender %d of %d: want 0 <= sender < senders", k, senders)
	}
	return &Pacer{
		sched:  sched,
		next:   uint64(k),
		stride: uint64(senders),
		limit:  limit,
		now:    time.Now,
		sleep:  sleepCtx,
	}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Peek returns the next event's sequence number and intended time without
// consuming it; ok is false when the pacer's share is exhausted.
func (p *Pacer) Peek() (seq uint64, intended time.Time, ok bool) {
	if p.next >= p.limit {
		return 0, time.Time{}, false
	}
	return p.next, p.sched.Intended(p.next), true
}

// Next waits until the next event is due (not at all when it is already
// late) and returns its sequence number and intended send time. ok is
// false when the share is exhausted; err is ctx's error when ctx ended
// while waiting.
func (p *Pacer) Next(ctx context.Context) (seq uint64, intended time.Time, ok bool, err error) {
	seq, intended, ok = p.Peek()
	if !ok {
		return 0, time.Time{}, false, nil
	}
	if wait := intended.Sub(p.now()); wait > 0 {
		if err := p.sleep(ctx, wait); err != nil {
			return 0, time.Time{}, false, err
		}
	} else {
		p.behind++
	}
	p.next += p.stride
	return seq, intended, true, nil
}

// Behind returns how many events Next returned already late (sent at
// once, without waiting).
func (p *Pacer) Behind() uint64 { return p.behind }
