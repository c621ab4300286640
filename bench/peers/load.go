package main

import (
	"bytes"
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
// beyond the first of an event. Every acknowledged event must also be
// read back, once.
type Outcome struct {
	Published     int64  `json:"published"`
	Acknowledged  int64  `json:"acknowledged"`
	Errors        int64  `json:"errors"`
	FirstError    string `json:"first_error,omitempty"`
	Unanswered    int64  `json:"unanswered"`
	DoubleAnswers int64  `json:"double_answers"`
	// Read counts this workload's events read back by the consumer,
	// each once; Unread the acknowledged events it never read.
	// DuplicateReads counts reads of an event beyond its first, and
	// BadReads values read that are not this workload's events as
	// published (another run's, or bytes that differ).
	Read           int64 `json:"read"`
	Unread         int64 `json:"unread"`
	DuplicateReads int64 `json:"duplicate_reads"`
	BadReads       int64 `json:"bad_reads"`
}

// Verify reports an error unless every publish was answered exactly once
// and every acknowledged event was read back exactly once.
func (o Outcome) Verify() error {
	switch {
	case o.Unanswered > 0:
		return fmt.Errorf("%d of %d publishes never answered", o.Unanswered, o.Published)
	case o.DoubleAnswers > 0:
		return fmt.Errorf("%d publishes answered more than once", o.DoubleAnswers)
	case o.Acknowledged+o.Errors != o.Published:
		return fmt.Errorf("%d acknowledged + %d errors != %d published", o.Acknowledged, o.Errors, o.Published)
	case o.Unread > 0:
		return fmt.Errorf("%d of %d acknowledged events never read back", o.Unread, o.Acknowledged)
	case o.DuplicateReads > 0:
		return fmt.Errorf("%d events read back more than once", o.DuplicateReads)
	case o.BadReads > 0:
		return fmt.Errorf("%d values read back that this workload did not publish as read", o.BadReads)
	}
	return nil
}

// The state of one event in tracker.events.
const (
	eventAcked uint8 = 1 << iota
	eventRead
)

// tracker counts one workload's publishes, answers and reads.
type tracker struct {
	start      time.Time
	runID      uint64
	published  atomic.Int64
	acked      atomic.Int64
	failed     atomic.Int64
	doubled    atomic.Int64
	lastAnswer atomic.Int64 // unix nanoseconds
	lastRead   atomic.Int64 // unix nanoseconds
	mu         sync.Mutex
	firstErr   error

	// e2e records each event's latency from its intended send time to its
	// first read.
	e2e *bench.Recorder

	readMu sync.Mutex
	size   int     // every value's size
	want   []byte  // the value expected for the event being read
	events []uint8 // by sequence number: eventAcked | eventRead
	both   int64   // events acknowledged and read
	read   int64
	dupes  int64
	bad    int64
}

func newTracker(start time.Time, runID uint64, size int) *tracker {
	t := &tracker{start: start, runID: runID, size: size, e2e: bench.NewRecorder("e2e")}
	t.lastAnswer.Store(start.UnixNano())
	t.lastRead.Store(start.UnixNano())
	return t
}

// mark sets flag on event seq and reports whether it was set already.
func (t *tracker) mark(seq uint64, flag uint8) (already bool) {
	t.readMu.Lock()
	defer t.readMu.Unlock()
	return t.markLocked(seq, flag)
}

// markLocked is mark with t.readMu held.
func (t *tracker) markLocked(seq uint64, flag uint8) (already bool) {
	if seq >= uint64(len(t.events)) {
		t.events = append(t.events, make([]uint8, int(seq)+1-len(t.events)+len(t.events)/2)...)
	}
	st := t.events[seq]
	if st&flag != 0 {
		return true
	}
	t.events[seq] = st | flag
	if st|flag == eventAcked|eventRead {
		t.both++
	}
	return false
}

// onEvent is the target's consumer callback: it pairs the value read back
// with its publish, checks that it holds the bytes published, and records
// its end-to-end latency on its first read.
func (t *tracker) onEvent(value []byte) {
	now := time.Now()
	t.lastRead.Store(now.UnixNano())
	h, err := bench.DecodeHeader(value)
	t.readMu.Lock()
	defer t.readMu.Unlock()
	if err == nil && h.RunID == t.runID && len(value) == t.size {
		t.want, err = bench.AppendValue(t.want[:0], h, t.size)
	}
	switch {
	case err != nil || h.RunID != t.runID || !bytes.Equal(value, t.want):
		t.bad++
	case t.markLocked(h.Seq, eventRead):
		t.dupes++
	default:
		t.read++
		t.e2e.Record(event.Low, now.Sub(h.Intended))
	}
}

// publish sends event seq's value through target; ok runs on the event's
// acknowledgement and always runs after the answer, whatever it is.
func (t *tracker) publish(ctx context.Context, target Target, seq uint64, value []byte, ok func(), always func()) {
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
			t.mark(seq, eventAcked)
			t.acked.Add(1)
		}
		t.lastAnswer.Store(time.Now().UnixNano())
		if always != nil {
			always()
		}
	})
}

func (t *tracker) answered() int64 { return t.acked.Load() + t.failed.Load() }

// pending is the number of publishes unanswered plus acknowledged events
// not read back yet.
func (t *tracker) pending() int64 {
	t.readMu.Lock()
	both := t.both
	t.readMu.Unlock()
	return t.published.Load() - t.answered() + t.acked.Load() - both
}

// drain waits until every publish is answered and every acknowledged
// event read back, until neither an answer nor a read arrived for
// silence, or until ctx ends. After 5 seconds it says once on progress
// (when not nil) what it is waiting for.
func (t *tracker) drain(ctx context.Context, silence time.Duration, progress io.Writer) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	start, told := time.Now(), progress == nil
	for t.pending() > 0 {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			last := time.Unix(0, max(t.lastAnswer.Load(), t.lastRead.Load()))
			if now.Sub(last) > silence {
				return
			}
			if !told && now.Sub(start) > 5*time.Second {
				told = true
				fmt.Fprintf(progress, "  waiting for %d of %d answers and %d reads (giving up after %v without either)\n",
					t.published.Load()-t.answered(), t.published.Load(), t.unread(), silence)
			}
		}
	}
}

// unread is the number of acknowledged events not read back yet.
func (t *tracker) unread() int64 {
	t.readMu.Lock()
	defer t.readMu.Unlock()
	return t.acked.Load() - t.both
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
	t.readMu.Lock()
	o.Read, o.DuplicateReads, o.BadReads = t.read, t.dupes, t.bad
	o.Unread = max(o.Acknowledged-t.both, 0)
	t.readMu.Unlock()
	return o
}

// elapsed is the time from the start to the last answer.
func (t *tracker) elapsed() time.Duration {
	return time.Unix(0, t.lastAnswer.Load()).Sub(t.start)
}

// ServerCPU is the server process's CPU time over a workload: from just
// before the first publish to the end of the drain, when every
// acknowledged event had been stored and read back. The fields are null
// when it could not be measured, and Note says why.
type ServerCPU struct {
	// UsPerEvent is the CPU time over the acknowledged events, in µs.
	UsPerEvent *float64 `json:"server_cpu_us_per_event"`
	UserS      *float64 `json:"server_cpu_user_s"`
	SystemS    *float64 `json:"server_cpu_system_s"`
	Note       string   `json:"server_cpu_note,omitempty"`
}

// startCPU reads the server's CPU time now; the function it returns reads
// it again and computes the figures over acked events.
func startCPU(target Target) func(acked int64) ServerCPU {
	before, err := target.ServerCPU()
	return func(acked int64) ServerCPU {
		if err != nil {
			return ServerCPU{Note: "not measured: " + err.Error()}
		}
		after, err := target.ServerCPU()
		if err != nil {
			return ServerCPU{Note: "not measured: " + err.Error()}
		}
		d := after.Sub(before)
		user, system := d.User.Seconds(), d.System.Seconds()
		c := ServerCPU{UserS: &user, SystemS: &system}
		if acked > 0 {
			us := float64(d.Total().Nanoseconds()) / 1e3 / float64(acked)
			c.UsPerEvent = &us
		} else {
			c.Note = "no event acknowledged"
		}
		return c
	}
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
	// what a paced sender would see. E2ELatencyMs runs from the same send
	// to the event's first read.
	AckLatencyMs bench.Percentiles `json:"ack_latency_ms"`
	E2ELatencyMs bench.Percentiles `json:"e2e_latency_ms"`
	ServerCPU
}

// runMaxRate publishes as fast as acknowledgements allow, with at most
// w.Window events unanswered, for w.Duration, then waits for the answers
// (telling progress, which may be nil, when that takes long).
func runMaxRate(ctx context.Context, target Target, w Workload, progress io.Writer) (MaxRate, error) {
	runID := rand.Uint64()
	slots := make(chan struct{}, w.Window)
	release := func() { <-slots }
	rec := bench.NewRecorder("ack")
	t := newTracker(time.Now(), runID, w.Size)
	if err := target.Read(ctx, t.onEvent); err != nil {
		return MaxRate{}, err
	}
	cpu := startCPU(target)
	start := time.Now()
	t.start = start
	t.lastAnswer.Store(start.UnixNano())
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
		t.publish(ctx, target, seq, value, func() { rec.Record(event.Low, time.Since(sent)) }, release)
	}
	t.drain(ctx, drainSilence(w.Duration), progress)
	res := MaxRate{Outcome: t.outcome(), AckLatencyMs: rec.Report().Percentiles, E2ELatencyMs: t.e2e.Report().Percentiles}
	res.ServerCPU = cpu(res.Acknowledged)
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
	// AckLatencyMs is measured from each event's intended send time to
	// its acknowledgement, E2ELatencyMs from the same time to its first
	// read.
	AckLatencyMs bench.Percentiles `json:"ack_latency_ms"`
	E2ELatencyMs bench.Percentiles `json:"e2e_latency_ms"`
	ServerCPU
}

// runUniform publishes open-loop at w.Rate for w.Duration, never skipping
// a late event, and records each acknowledgement's latency from the
// event's intended send time (coordinated omission corrected). Like
// runMaxRate it then waits for the answers.
func runUniform(ctx context.Context, target Target, w Workload, progress io.Writer) (Uniform, error) {
	runID := rand.Uint64()
	t := newTracker(time.Now(), runID, w.Size)
	if err := target.Read(ctx, t.onEvent); err != nil {
		return Uniform{}, err
	}
	sched, err := bench.NewSchedule(w.Rate, time.Now().Add(20*time.Millisecond))
	if err != nil {
		return Uniform{}, err
	}
	pacer, err := bench.NewPacer(sched, 0, 1, sched.Count(w.Duration))
	if err != nil {
		return Uniform{}, err
	}
	rec := bench.NewRecorder("ack")
	t.start = sched.Start
	t.lastAnswer.Store(sched.Start.UnixNano())
	cpu := startCPU(target)
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
		t.publish(ctx, target, seq, value, func() { rec.Record(event.Low, time.Since(intended)) }, nil)
	}
	t.drain(ctx, drainSilence(w.Duration), progress)
	res := Uniform{
		Outcome:      t.outcome(),
		OfferedRate:  w.Rate,
		Behind:       pacer.Behind(),
		AckLatencyMs: rec.Report().Percentiles,
		E2ELatencyMs: t.e2e.Report().Percentiles,
	}
	res.ServerCPU = cpu(res.Acknowledged)
	if el := t.elapsed(); el > 0 {
		res.PublishRate = float64(res.Acknowledged) / el.Seconds()
	}
	if err == nil {
		err = ctx.Err()
	}
	return res, err
}
