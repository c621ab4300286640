package bench

import (
	"context"
	"fmt"
	"math/bits"
	"time"
)

// Schedule is an open-loop send schedule: event i of the run is due at
// Start + i/Rate seconds, whatever happened to the events before it. A
// phased schedule (NewPhasedSchedule) changes rate from phase to phase.
type Schedule struct {
	Start time.Time
	// Rate is the target rate in events per second (of the first phase,
	// in a phased schedule).
	Rate int64

	phases []Phase
	// first[k] is the number of events due before phase k; at[k] the
	// offset phase k starts at.
	first []uint64
	at    []time.Duration
}

// Phase is a stretch of a phased schedule at one rate.
type Phase struct {
	Duration time.Duration
	// Rate is in events per second.
	Rate int64
	// Spike marks a burst (reported apart by the bursty profile).
	Spike bool
}

// NewPhasedSchedule returns a schedule that runs each phase in turn from
// start. Events past the last phase keep its rate.
func NewPhasedSchedule(start time.Time, phases []Phase) (Schedule, error) {
	if len(phases) == 0 {
		return Schedule{}, fmt.Errorf("bench: a phased schedule needs at least one phase")
	}
	s := Schedule{Start: start, Rate: phases[0].Rate, phases: phases}
	var n uint64
	var at time.Duration
	for i, p := range phases {
		if p.Rate <= 0 {
			return Schedule{}, fmt.Errorf("bench: phase %d rate %d events/s: must be at least 1", i, p.Rate)
		}
		if p.Duration <= 0 {
			return Schedule{}, fmt.Errorf("bench: phase %d duration %v: must be positive", i, p.Duration)
		}
		s.first = append(s.first, n)
		s.at = append(s.at, at)
		n += constCount(p.Duration, p.Rate)
		at += p.Duration
	}
	return s, nil
}

// Phases returns the schedule's phases (none for a constant schedule).
func (s Schedule) Phases() []Phase { return s.phases }

// Length returns the sum of the phases' durations (0 for a constant
// schedule).
func (s Schedule) Length() time.Duration {
	if len(s.phases) == 0 {
		return 0
	}
	k := len(s.phases) - 1
	return s.at[k] + s.phases[k].Duration
}

// RateAt returns the offered rate at offset d from Start.
func (s Schedule) RateAt(d time.Duration) int64 {
	for k := len(s.phases) - 1; k >= 0; k-- {
		if d >= s.at[k] {
			return s.phases[k].Rate
		}
	}
	return s.Rate
}

// NewSchedule checks rate and returns the schedule starting at start.
func NewSchedule(rate int64, start time.Time) (Schedule, error) {
	if rate <= 0 {
		return Schedule{}, fmt.Errorf("bench: rate %d events/s: must be at least 1", rate)
	}
	return Schedule{Start: start, Rate: rate}, nil
}

// Offset returns how long after Start event i is due: floor(i*1e9/Rate)
// nanoseconds, computed without overflow (per phase in a phased schedule).
func (s Schedule) Offset(i uint64) time.Duration {
	if len(s.phases) == 0 {
		return constOffset(i, s.Rate)
	}
	k := len(s.first) - 1
	for k > 0 && i < s.first[k] {
		k--
	}
	off := constOffset(i-s.first[k], s.phases[k].Rate)
	if off > time.Duration(1<<63-1)-s.at[k] {
		return time.Duration(1<<63 - 1)
	}
	return s.at[k] + off
}

func constOffset(i uint64, rate int64) time.Duration {
	hi, lo := bits.Mul64(i, uint64(time.Second))
	if hi >= uint64(rate) {
		// Beyond any representable time.Duration.
		return time.Duration(1<<63 - 1)
	}
	q, _ := bits.Div64(hi, lo, uint64(rate))
	if q > 1<<63-1 {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(q)
}

// Intended returns the time event i is due.
func (s Schedule) Intended(i uint64) time.Time { return s.Start.Add(s.Offset(i)) }

// Count returns how many events are due in [Start, Start+d): the number of
// i with Offset(i) < d, that is ceil(d*Rate/1e9) at a constant rate.
func (s Schedule) Count(d time.Duration) uint64 {
	if len(s.phases) == 0 {
		return constCount(d, s.Rate)
	}
	k := len(s.at) - 1
	for k > 0 && d <= s.at[k] {
		k--
	}
	return s.first[k] + constCount(d-s.at[k], s.phases[k].Rate)
}

func constCount(d time.Duration, rate int64) uint64 {
	if d <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(d), uint64(rate))
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
	timer  *time.Timer
	behind uint64
	// seen is a time the clock has reached (the last it read, or the end
	// of the last wait): an event due by then is late without reading the
	// clock again, which at a high rate is most of them.
	seen time.Time
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
	p := &Pacer{
		sched:  sched,
		next:   uint64(k),
		stride: uint64(senders),
		limit:  limit,
		now:    time.Now,
	}
	p.sleep = p.timerSleep
	return p, nil
}

// timerSleep waits d on the pacer's one timer, reused from event to
// event: a new timer per event costs more than the send at high rates.
func (p *Pacer) timerSleep(ctx context.Context, d time.Duration) error {
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-p.timer.C:
		return nil
	case <-ctx.Done():
		p.timer.Stop()
		return ctx.Err()
	}
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
	late := !intended.After(p.seen)
	if !late {
		p.seen = p.now()
		late = !intended.After(p.seen)
	}
	if late {
		p.behind++
	} else {
		if err := p.sleep(ctx, intended.Sub(p.seen)); err != nil {
			return 0, time.Time{}, false, err
		}
		p.seen = intended
	}
	p.next += p.stride
	return seq, intended, true, nil
}

// Skip passes over the next event without waiting for it (another sender
// sends it).
func (p *Pacer) Skip() {
	if p.next < p.limit {
		p.next += p.stride
	}
}

// Behind returns how many events Next returned already late (sent at
// once, without waiting).
func (p *Pacer) Behind() uint64 { return p.behind }
