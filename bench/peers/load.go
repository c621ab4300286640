package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/bench"
	"github.com/sensehq/sense/event"
)

// drainSilence is how long a workload of the given duration waits, once
// it stopped publishing, while no answer arrives: a system still
// answering is waited for, one silent for this long has its missing
// answers counted as unanswered. It is generous because a system can be
// silent for long and still answer everything: under overload, JetStream
// with SyncAlways stores its whole ingest backlog (tens of seconds of it
// at 20,000 events/s on 2 cores) before it sends the acks.
var drainSilence = func(d time.Duration) time.Duration { return max(time.Minute, 6*d) }

// Outcome is what became of one workload's publishes. Every publish is
// acknowledged, failed or unanswered; DoubleAnswers counts callbacks
// beyond the first of an event.
type Outcome struct {
	Published     int64  `json:"published"`
	Acknowledged  int64  `json:"acknowledged"`
	Errors        int64  `json:"errors"`
	FirstError    string `json:"first_error,omitempty"`
	Unanswered    int64  `json:"unanswered"`
	DoubleAnswers int64  `json:"double_answers"`
}

// Verify reports an error unless every publish was answered exactly once.
func (o Outcome) Verify() error {
	switch {
	case o.Unanswered > 0:
		return fmt.Errorf("%d of %d publishes never answered", o.Unanswered, o.Published)
	case o.DoubleAnswers > 0:
		return fmt.Errorf("%d publishes answered more than once", o.DoubleAnswers)
	case o.Acknowledged+o.Errors != o.Published:
		return fmt.Errorf("%d acknowledged + %d errors != %d published", o.Acknowledged, o.Errors, o.Published)
	}
	return nil
}

// tracker counts one workload's publishes and answers.
type tracker struct {
	start      time.Time
	published  atomic.Int64
	acked      atomic.Int64
	failed     atomic.Int64
	doubled    atomic.Int64
	lastAnswer atomic.Int64 // unix nanoseconds
	mu         sync.Mutex
	firstErr   error
}

func newTracker(start time.Time) *tracker {
	t := &tracker{start: start}
	t.lastAnswer.Store(start.UnixNano())
	return t
}

// publish sends value through target; ok runs on the event's
// acknowledgement and always runs after the answer, whatever it is.
func (t *tracker) publish(ctx context.Context, target Target, value []byte, ok func(), always func()) {
	var answered atomic.Bool
	t.published.Add(1)
	target.Publish(ctx, value, func(err error) {
		if answered.Swap(true) {
			t.doubled.Add(1)
			return
		}
		if err != nil {
			t.mu.Lock()
			if t.firstErr == nil {
				t.firstErr = err
			}
			t.mu.Unlock()
			t.failed.Add(1)
		} else {
			if ok != nil {
				ok()
			}
			t.acked.Add(1)
		}
		t.lastAnswer.Store(time.Now().UnixNano())
		if always != nil {
			always()
		}
	})
}

func (t *tracker) answered() int64 { return t.acked.Load() + t.failed.Load() }

// drain waits until every publish is answered, until no answer arrived
// for silence, or until ctx ends. After 5 seconds it says once on
// progress (when not nil) what it is waiting for.
func (t *tracker) drain(ctx context.Context, silence time.Duration, progress io.Writer) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	start, told := time.Now(), progress == nil
	for t.answered() < t.published.Load() {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			last := time.Unix(0, t.lastAnswer.Load())
			if now.Sub(last) > silence {
				return
			}
			if !told && now.Sub(start) > 5*time.Second {
				told = true
				fmt.Fprintf(progress, "  waiting for %d of %d answers (giving up after %v without one)\n",
					t.published.Load()-t.answered(), t.published.Load(), silence)
			}
		}
	}
}

// outcome returns the counts; call it after drain.
func (t *tracker) outcome() Outcome {
	o := Outcome{
		Published:     t.published.Load(),
		Acknowledged:  t.acked.Load(),
		Errors:        t.failed.Load(),
		DoubleAnswers: t.doubled.Load(),
	}
	o.Unanswered = max(o.Published-o.Acknowledged-o.Errors, 0)
	t.mu.Lock()
	if t.firstErr != nil {
		o.FirstError = t.firstErr.Error()
	}
	t.mu.Unlock()
	return o
}

// elapsed is the time from the start to the last answer.
func (t *tracker) elapsed() time.Duration {
	return time.Unix(0, t.lastAnswer.Load()).Sub(t.start)
}

// Workload is the shape of one run, the same for every system.
type Workload struct {
	// Duration is how long each workload publishes.
	Duration time.Duration
	// Size is every event value's size in bytes, at least bench.HeaderSize.
	Size int
	// Rate is the uniform workload's offered rate in events/s.
	Rate int64
	// Window bounds the max-rate workload's unanswered events.
	Window int
}

// Validate rejects values the workloads cannot run with.
func (w Workload) Validate() error {
	switch {
	case w.Duration <= 0:
		return fmt.Errorf("--duration %v: must be positive", w.Duration)
	case w.Size < bench.HeaderSize:
		return fmt.Errorf("--size %d: must be at least %d bytes (the measurement header)", w.Size, bench.HeaderSize)
	case w.Rate <= 0:
		return fmt.Errorf("--rate %d: must be at least 1 event/s", w.Rate)
	case w.Window <= 0:
		return fmt.Errorf("--window %d: must be at least 1 event", w.Window)
	}
	return nil
}

// MaxRate is the result of the max-rate workload.
type MaxRate struct {
	Outcome
	// PublishRate is acknowledged events over the time from the first
	// publish to the last answer, in events/s.
	PublishRate float64 `json:"publish_rate"`
	ElapsedS    float64 `json:"elapsed_s"`
	// AckLatencyMs is measured from each event's actual send: the
	// workload is closed-loop, so this says how deep the window ran, not
	// what a paced sender would see.
	AckLatencyMs bench.Percentiles `json:"ack_latency_ms"`
}

// runMaxRate publishes as fast as acknowledgements allow, with at most
// w.Window events unanswered, for w.Duration, then waits for the answers
// (telling progress, which may be nil, when that takes long).
func runMaxRate(ctx context.Context, target Target, w Workload, progress io.Writer) (MaxRate, error) {
	runID := rand.Uint64()
	slots := make(chan struct{}, w.Window)
	release := func() { <-slots }
	rec := bench.NewRecorder("ack")
	start := time.Now()
	t := newTracker(start)
	end := start.Add(w.Duration)
	var err error
publish:
	for seq := uint64(0); ; seq++ {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			err = ctx.Err()
			break publish
		}
		sent := time.Now()
		if !sent.Before(end) {
			<-slots
			break
		}
		value, verr := bench.AppendValue(make([]byte, 0, w.Size), bench.Header{RunID: runID, Seq: seq, Intended: sent}, w.Size)
		if verr != nil {
			<-slots
			err = verr
			break
		}
		t.publish(ctx, target, value, func() { rec.Record(event.Low, time.Since(sent)) }, release)
	}
	t.drain(ctx, drainSilence(w.Duration), progress)
	res := MaxRate{Outcome: t.outcome(), AckLatencyMs: rec.Report().Percentiles}
	if el := t.elapsed(); el > 0 {
		res.ElapsedS = el.Seconds()
		res.PublishRate = float64(res.Acknowledged) / el.Seconds()
	}
	if err == nil {
		err = ctx.Err()
	}
	return res, err
}

// Uniform is the result of the uniform workload.
type Uniform struct {
	Outcome
	// OfferedRate is the schedule's rate; PublishRate what was
	// acknowledged over the time from the schedule's start to the last
	// answer, in events/s.
	OfferedRate int64   `json:"offered_rate"`
	PublishRate float64 `json:"publish_rate"`
	// Behind counts events the sender sent late, at once, because it had
	// fallen behind the schedule (their lateness is in the latency).
	Behind uint64 `json:"behind"`
	// AckLatencyMs is measured from each event's intended send time.
	AckLatencyMs bench.Percentiles `json:"ack_latency_ms"`
}

// runUniform publishes open-loop at w.Rate for w.Duration, never skipping
// a late event, and records each acknowledgement's latency from the
// event's intended send time (coordinated omission corrected). Like
// runMaxRate it then waits for the answers.
func runUniform(ctx context.Context, target Target, w Workload, progress io.Writer) (Uniform, error) {
	runID := rand.Uint64()
	sched, err := bench.NewSchedule(w.Rate, time.Now().Add(20*time.Millisecond))
	if err != nil {
		return Uniform{}, err
	}
	pacer, err := bench.NewPacer(sched, 0, 1, sched.Count(w.Duration))
	if err != nil {
		return Uniform{}, err
	}
	rec := bench.NewRecorder("ack")
	t := newTracker(sched.Start)
	for {
		seq, intended, ok, nerr := pacer.Next(ctx)
		if nerr != nil {
			err = nerr
			break
		}
		if !ok {
			break
		}
		value, verr := bench.AppendValue(make([]byte, 0, w.Size), bench.Header{RunID: runID, Seq: seq, Intended: intended}, w.Size)
		if verr != nil {
			err = verr
			break
		}
		t.publish(ctx, target, value, func() { rec.Record(event.Low, time.Since(intended)) }, nil)
	}
	t.drain(ctx, drainSilence(w.Duration), progress)
	res := Uniform{
		Outcome:      t.outcome(),
		OfferedRate:  w.Rate,
		Behind:       pacer.Behind(),
		AckLatencyMs: rec.Report().Percentiles,
	}
	if el := t.elapsed(); el > 0 {
		res.PublishRate = float64(res.Acknowledged) / el.Seconds()
	}
	if err == nil {
		err = ctx.Err()
	}
	return res, err
}
