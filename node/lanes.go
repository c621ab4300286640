package node

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/event"
)

// Lane scheduling defaults (router.target_delay, router.delay_interval).
const (
	DefaultTargetDelay   = 5 * time.Millisecond
	DefaultDelayInterval = 100 * time.Millisecond
)

// minAdmit is the smallest fraction of a shedding lane's requests still
// admitted: they keep measuring the lane's delay, so the lane notices when
// the load has fallen.
const minAdmit = 1.0 / 32

// lanes orders the appends of the three priority classes and judges
// overload by how long each class waits: a request's queueing delay is the
// time from the moment an edge has read it to the moment its append
// starts (after the request's turn on its connection and its place here).
//
// Order. Critical appends never wait here. Low and medium appends share
// slots places (GOMAXPROCS-1, at least one, so a core is left for critical
// work); a freed place goes to the oldest medium request first, then to
// the oldest low one.
//
// Shedding (CoDel-like). Each of the low and medium lanes admits a
// fraction of its requests, 1 while all is well. At the end of every
// interval a lane looks at the smallest delay it measured in the interval
// (or, with no measurement, at how long its oldest waiter has waited): a
// standing queue above target halves the fraction (at least minAdmit)
// when a class above the lane offered requests in the last two intervals
// and every lane below it that is offered requests is shed to minAdmit
// already (low goes first); otherwise the fraction grows back by a
// quarter, to 1. A lane is shed to
// make way for the classes above it: with none of them there, its standing
// queue is its own producers' pipelines (bounded by their windows and by
// the memory budget), and refusing it would only make them retry (a Kafka
// producer backs off, and its throughput fell tenfold). A lane idle for
// longer than an interval starts again at 1. A request past the fraction
// is refused at once (OVERLOADED) without waiting. Medium waits less than
// low (it goes first), so low is shed first, and medium only when medium
// and critical alone are more than the node can take. Critical is never
// refused: it gets backpressure (the memory budget) instead.
type lanes struct {
	target, interval time.Duration
	slots            int

	// seen is when each class last offered a request (unix nanoseconds).
	seen [3]atomic.Int64

	mu   sync.Mutex
	busy int
	lane [3]laneState
}

type laneState struct {
	admit    float64 // fraction of requests admitted
	credit   float64
	minDelay time.Duration // smallest delay measured this interval; -1: none
	until    time.Time     // end of the current interval; zero: never used
	waiters  []*laneWaiter // oldest first (low and medium)

	shedSince time.Time     // when admit fell below 1; zero while admitting all
	shedTotal time.Duration // time spent below 1 before shedSince
}

type laneWaiter struct {
	ready chan struct{} // receives when the waiter has a place
	since time.Time
}

var waiterPool = sync.Pool{New: func() any { return &laneWaiter{ready: make(chan struct{}, 1)} }}

func newLanes(target, interval time.Duration) *lanes {
	if target <= 0 {
		target = DefaultTargetDelay
	}
	if interval <= 0 {
		interval = DefaultDelayInterval
	}
	l := &lanes{target: target, interval: interval, slots: max(1, runtime.GOMAXPROCS(0)-1)}
	for i := range l.lane {
		l.lane[i].admit = 1
		l.lane[i].minDelay = -1
	}
	return l
}

// tickLocked ends the lane's interval if now is past it.
func (l *lanes) tickLocked(p event.Priority, now time.Time) {
	ln := &l.lane[p]
	if now.Before(ln.until) {
		return
	}
	switch {
	case ln.until.IsZero() || now.Sub(ln.until) > l.interval:
		// First use, or idle for more than an interval: start afresh.
		ln.setAdmit(1, now)
	default:
		standing := ln.minDelay
		if standing < 0 {
			standing = 0
			if len(ln.waiters) > 0 {
				standing = now.Sub(ln.waiters[0].since)
			}
		}
		if standing > l.target && l.aboveActive(p, now) && l.belowShed(p, now) {
			ln.setAdmit(max(ln.admit/2, minAdmit), now)
		} else if ln.admit < 1 {
			ln.setAdmit(min(1, ln.admit+0.25), now)
		}
	}
	ln.minDelay = -1
	ln.until = now.Add(l.interval)
}

// aboveActive reports whether a class above p offered a request within
// the last two intervals: a lane is shed to make way for the classes above
// it, and while none of them is there, its standing queue costs no one
// else anything (the memory budget still bounds it).
func (l *lanes) aboveActive(p event.Priority, now time.Time) bool {
	for q := p + 1; q <= event.Critical; q++ {
		if now.UnixNano()-l.seen[q].Load() <= int64(2*l.interval) {
			return true
		}
	}
	return false
}

// belowShed reports whether every lane below p that is offered requests
// is already shed as far as it goes (minAdmit): low is shed before medium,
// whatever their delays say at one instant, and medium only once low
// takes no more than its trickle (or is not there). Called with l.mu
// held.
func (l *lanes) belowShed(p event.Priority, now time.Time) bool {
	for q := event.Low; q < p; q++ {
		if now.UnixNano()-l.seen[q].Load() <= int64(2*l.interval) && l.lane[q].admit > minAdmit {
			return false
		}
	}
	return true
}

func (ln *laneState) setAdmit(f float64, now time.Time) {
	switch {
	case f < 1 && ln.admit >= 1:
		ln.shedSince = now
		ln.credit = 0
	case f >= 1 && ln.admit < 1:
		ln.shedTotal += now.Sub(ln.shedSince)
		ln.shedSince = time.Time{}
	}
	ln.admit = f
}

// admit reports whether a request's events of class p are taken (true)
// or refused as overloaded (false). Critical is always taken.
func (l *lanes) admit(p event.Priority, now time.Time) bool {
	if ns := now.UnixNano(); l.seen[p].Load() < ns {
		l.seen[p].Store(ns)
	}
	if p == event.Critical {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tickLocked(p, now)
	ln := &l.lane[p]
	if ln.admit >= 1 {
		return true
	}
	ln.credit += ln.admit
	if ln.credit >= 1 {
		ln.credit--
		return true
	}
	return false
}

// acquire waits for a place to append a request whose highest class is p
// (critical does not wait). It fails only when ctx ends first; otherwise
// release must follow.
func (l *lanes) acquire(ctx context.Context, p event.Priority) error {
	if p == event.Critical {
		return nil
	}
	l.mu.Lock()
	if l.busy < l.slots && len(l.lane[event.Medium].waiters) == 0 && (p == event.Medium || len(l.lane[event.Low].waiters) == 0) {
		l.busy++
		l.mu.Unlock()
		return nil
	}
	w := waiterPool.Get().(*laneWaiter)
	w.since = time.Now()
	ln := &l.lane[p]
	ln.waiters = append(ln.waiters, w)
	l.mu.Unlock()
	select {
	case <-w.ready:
		waiterPool.Put(w)
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	for i, x := range ln.waiters {
		if x == w {
			ln.waiters = append(ln.waiters[:i], ln.waiters[i+1:]...)
			l.mu.Unlock()
			waiterPool.Put(w)
			return ctx.Err()
		}
	}
	l.mu.Unlock()
	// The place was handed over as ctx ended: give it on.
	<-w.ready
	waiterPool.Put(w)
	l.release(p)
	return ctx.Err()
}

// free reports whether a request of any class would get a place at once
// (a moment later another may have taken it).
func (l *lanes) free() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.busy < l.slots && len(l.lane[event.Medium].waiters) == 0 && len(l.lane[event.Low].waiters) == 0
}

// release gives back a place taken by acquire, to the oldest medium
// waiter, else the oldest low one.
func (l *lanes) release(p event.Priority) {
	if p == event.Critical {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, q := range [...]event.Priority{event.Medium, event.Low} {
		ln := &l.lane[q]
		if len(ln.waiters) > 0 {
			w := ln.waiters[0]
			ln.waiters[0] = nil
			ln.waiters = ln.waiters[1:]
			w.ready <- struct{}{}
			return
		}
	}
	l.busy--
}

// observe records the queueing delay of a request of lane p whose append
// starts now.
func (l *lanes) observe(p event.Priority, delay time.Duration, now time.Time) {
	if p == event.Critical {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tickLocked(p, now)
	ln := &l.lane[p]
	if ln.minDelay < 0 || delay < ln.minDelay {
		ln.minDelay = delay
	}
}

// LaneStats is one priority lane's state.
type LaneStats struct {
	// Admitted is the fraction of the lane's requests taken now: 1 when
	// the lane is not shedding.
	Admitted float64
	// Shedding is the total time the lane has spent shedding.
	Shedding time.Duration
	// Waiting is the lane's requests waiting for a place to append.
	Waiting int
}

// stats returns lane p's state at now.
func (l *lanes) stats(p event.Priority, now time.Time) LaneStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := &l.lane[p]
	st := LaneStats{Admitted: ln.admit, Shedding: ln.shedTotal, Waiting: len(ln.waiters)}
	if !ln.shedSince.IsZero() {
		st.Shedding += now.Sub(ln.shedSince)
	}
	return st
}
