package processor

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/group"
)

// chunk is what one fetch read, with the credit it holds.
type chunk struct {
	records []client.Record
	next    int64 // offset after the chunk
	bytes   int64
}

// worker reads and delivers one partition for one session.
type worker struct {
	p      *Processor
	st     *partState
	ref    group.MemberRef
	chunks chan *chunk

	// span holds the batches being delivered, from the next one on: the
	// intent found at the start (replayed: retry) or the batches cut from
	// the records read. recorded: its intent is durable (or the sink
	// keeps its own offsets and needs none).
	span     *intent
	retry    bool
	recorded bool

	held    []*chunk        // chunks with records not yet committed
	pending []client.Record // records read and not yet in a batch
	readTo  int64           // offset after the last chunk taken

	commits  chan commitReq // to the committer, in order
	failed   atomic.Bool    // a commit was refused: the worker ends
	queued   int64          // the last position handed to the committer
	queuedMD string         // and its metadata
}

func (w *worker) run(ctx context.Context) {
	dctx, stopDeliver := context.WithCancel(ctx)
	rctx, stop := context.WithCancel(dctx)
	done := make(chan struct{})
	w.p.mu.Lock()
	start := w.st.pos
	w.p.mu.Unlock()
	go func() {
		defer close(done)
		w.read(rctx, start)
	}()
	w.commits = make(chan commitReq, commitQueue)
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		w.commitLoop(stopDeliver)
	}()
	w.readTo, w.queued = start, start
	w.deliverLoop(dctx)
	stop()
	<-done
	// The commits handed over are made (or refused) before the credit
	// they hold returns.
	close(w.commits)
	<-committed
	stopDeliver()
	// Give back the credit of what was read and not delivered, queued or
	// held.
	for {
		select {
		case c := <-w.chunks:
			w.p.budget.release(c.bytes)
			continue
		default:
		}
		break
	}
	for _, c := range w.held {
		w.p.budget.release(c.bytes)
	}
	w.held = nil
}

// read fetches the partition from off, paying for each chunk with credit.
// A reader that found nothing new waits for the next events with a fetch
// of idleFetchBytes: the credit it holds meanwhile is not denied to the
// partitions that lag.
func (w *worker) read(ctx context.Context, off int64) {
	p := w.p
	lane := w.st.sp.Lane
	// Chunks of a sixteenth of the budget: decoded, a chunk takes about
	// twice its bytes, and its credit returns only once all its events are
	// committed, so with fewer, larger chunks the reader waits while the
	// sink could take more.
	full := min(int64(maxFetchBytes), int64(p.cfg.MaxInFlightBytes)/16)
	want := full
	for ctx.Err() == nil {
		if err := p.budget.acquire(ctx, lane, want); err != nil {
			return
		}
		f, err := p.src.Fetch(ctx, p.cfg.From.Pipeline, w.st.sp.Partition, off, int(want))
		if errors.Is(err, ErrOffsetOutOfRange) {
			p.budget.release(want)
			parts, perr := p.src.Partitions(ctx, p.cfg.From.Pipeline)
			if perr == nil {
				for _, sp := range parts {
					if sp.Partition == w.st.sp.Partition && off < sp.Start {
						p.log.Warn("processor: events were removed by retention before the processor read them; going on from the first one left",
							"pipeline", p.cfg.From.Pipeline, "partition", sp.Partition, "from", off, "to", sp.Start)
						off = sp.Start
					}
				}
			}
			sleep(ctx, sourceRetryPause)
			continue
		}
		if err != nil {
			p.budget.release(want)
			if ctx.Err() == nil {
				p.fail("read", err)
				sleep(ctx, sourceRetryPause)
			}
			continue
		}
		if f.HighWatermark >= 0 {
			p.mu.Lock()
			w.st.hw = max(w.st.hw, f.HighWatermark)
			p.mu.Unlock()
		}
		if len(f.Records) == 0 && f.Next <= off {
			p.budget.release(want)
			want = min(full, idleFetchBytes)
			continue
		}
		// Pay for what was read: an oversized first batch comes alone.
		size := int64(f.Bytes)
		p.budget.release(want)
		want = full
		if len(f.Records) == 0 {
			size = 0
		} else if err := p.budget.acquire(ctx, lane, size); err != nil {
			return
		}
		for i := range f.Records {
			f.Records[i].Hub = w.st.sp.Hub
		}
		c := &chunk{records: f.Records, next: f.Next, bytes: size}
		select {
		case w.chunks <- c:
		case <-ctx.Done():
			p.budget.release(size)
			return
		}
		off = f.Next
	}
}

// next moves the next chunk into pending, waiting until one arrives,
// until the timer fires (false) or ctx ends.
func (w *worker) next(ctx context.Context, timer <-chan time.Time) (bool, error) {
	select {
	case c := <-w.chunks:
		w.held = append(w.held, c)
		w.pending = append(w.pending, c.records...)
		w.readTo = c.next
		if len(c.records) > 0 {
			w.p.mu.Lock()
			if w.st.oldest.IsZero() {
				w.st.oldest = c.records[0].Timestamp
			}
			w.p.mu.Unlock()
		}
		// pending has the records now; the chunk keeps its credit only,
		// so that its decoded records go once delivered.
		c.records = nil
		return true, nil
	case <-timer:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// deliverLoop cuts batches and delivers them until ctx ends or a commit
// is refused (a rebalance).
func (w *worker) deliverLoop(ctx context.Context) {
	p := w.p
	for ctx.Err() == nil && !w.failed.Load() {
		if w.span == nil {
			sp, err := w.cut(ctx)
			if err != nil {
				return
			}
			if sp == nil {
				// Nothing but offsets without records (control batches):
				// move the position past them.
				if err := w.commit(w.readTo, "", false); err != nil {
					return
				}
				continue
			}
			w.span, w.retry, w.recorded = sp, false, p.keeper != nil
		}
		first, last := w.span.head()
		recs, err := w.take(ctx, last)
		if err != nil {
			return
		}
		pass := recs[:0:0]
		for i := range recs {
			if p.filter.pass(&recs[i]) {
				pass = append(pass, recs[i])
			}
		}
		p.filtered.Add(uint64(len(recs) - len(pass)))
		p.m.filtered.WithLabelValues(p.cfg.Name).Add(float64(len(recs) - len(pass)))
		b := &Batch{Processor: p.cfg.Name, Pipeline: p.cfg.From.Pipeline, Partition: w.st.sp.Partition, First: first, Last: last, Records: pass}
		dead := false
		if len(pass) > 0 {
			if dead, err = w.deliver(ctx, b); err != nil {
				if ctx.Err() == nil && !w.failed.Load() {
					p.fail("deliver", err)
				}
				return
			}
		}
		// The position moves past the batch; the rest of the span keeps
		// its intent, so that a crash never loses its batches' ranges.
		rest := w.span.rest()
		md := ""
		if rest != nil && w.recorded && p.keeper == nil {
			md = rest.metadata()
		}
		w.span = rest
		// After a dead letter the commit replaces the dead-letter intent
		// before anything else is delivered: a crash must not replay the
		// dead letter and then deliver again what came after it.
		if err := w.commit(last+1, md, dead); err != nil {
			return
		}
	}
}

// cut returns the next batches to deliver, cut from the records read:
// up to max_events of them, or what came within linger of the first.
// When more than max_events records wait (the processor lags), it
// returns a span of up to maxSpan batches of max_events records each,
// of the records already read only. The records stay pending (take
// hands them out). The span is nil when the chunks held offsets but no
// records.
func (w *worker) cut(ctx context.Context) (*intent, error) {
	p := w.p
	max := p.cfg.Batch.MaxEvents
	var timer *time.Timer
	var timerC <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		n := min(len(w.pending), max)
		if n == max {
			return w.spanOf(max), nil
		}
		if n > 0 && len(w.chunks) == 0 && p.budget.starved() {
			// A reader waits for credit, which these records' chunk
			// holds until they are delivered: lingering for more would
			// only stall it. (With a tight budget every chunk's last
			// batch waited out the linger: a third of the throughput.)
			return &intent{first: w.pending[0].Offset, last: w.pending[n-1].Offset}, nil
		}
		if n > 0 && timer == nil {
			timer = time.NewTimer(time.Duration(p.cfg.Batch.Linger))
			timerC = timer.C
		}
		ok, err := w.next(ctx, timerC)
		if err != nil {
			return nil, err
		}
		if !ok {
			// Linger is over.
			n = min(len(w.pending), max)
			return &intent{first: w.pending[0].Offset, last: w.pending[n-1].Offset}, nil
		}
		if len(w.pending) == 0 && timer == nil {
			return nil, nil // a chunk without records
		}
	}
}

// spanOf returns the span of the full batches of max records pending, at
// most maxSpan of them; one batch for a sink that keeps its offsets (it
// has no intents). A batch's range runs from the offset after the one
// before to its last record.
func (w *worker) spanOf(max int) *intent {
	k := 1
	if w.p.keeper == nil {
		k = min(maxSpan, len(w.pending)/max)
	}
	in := &intent{first: w.pending[0].Offset, last: w.pending[k*max-1].Offset}
	from := in.first
	for i := 1; i < k; i++ {
		end := w.pending[i*max-1].Offset
		in.sizes = append(in.sizes, end-from+1)
		from = end + 1
	}
	return in
}

// take removes from pending the records up to offset last, reading
// until the chunks reach past it.
func (w *worker) take(ctx context.Context, last int64) ([]client.Record, error) {
	n := 0
	for {
		for n < len(w.pending) && w.pending[n].Offset <= last {
			n++
		}
		if n < len(w.pending) || w.readTo > last {
			return w.split(n), nil
		}
		if _, err := w.next(ctx, nil); err != nil {
			return nil, err
		}
	}
}

// split removes the first n pending records and returns them.
func (w *worker) split(n int) []client.Record {
	out := w.pending[:n:n]
	w.pending = w.pending[n:]
	if len(w.pending) == 0 {
		// The next records start a new array: the delivered ones are not
		// kept alive by it.
		w.pending = nil
	}
	if n == 0 {
		return []client.Record{}
	}
	return out
}

// commitQueue is how many commits a worker may hand to its committer
// before it waits.
const commitQueue = 64

// commitReq is a position (with an intent's metadata) to commit, and
// the chunks wholly before it, whose credit returns once it is durable.
type commitReq struct {
	pos    int64
	md     string
	chunks []*chunk
	done   chan error // answered once durable (or refused); nil: nobody waits
}

// commit hands the position pos (with metadata md) to the committer, with
// the credit of the chunks wholly before it. With wait it returns once the
// commit is durable; without, at once: a refusal comes back from a later
// call, and ends the worker.
func (w *worker) commit(pos int64, md string, wait bool) error {
	if w.failed.Load() {
		return errCommitRefused
	}
	if !wait && pos <= w.queued && md == "" && w.queuedMD == "" {
		return nil
	}
	i := 0
	for i < len(w.held) && w.held[i].next <= pos {
		i++
	}
	req := commitReq{pos: pos, md: md, chunks: w.held[:i:i]}
	w.held = w.held[i:]
	if wait {
		req.done = make(chan error, 1)
	}
	w.queued, w.queuedMD = max(w.queued, pos), md
	// The oldest record not committed, as describe shows it (the batch
	// delivered last counts as committed a little early).
	w.p.mu.Lock()
	w.st.oldest = time.Time{}
	if len(w.pending) > 0 {
		w.st.oldest = w.pending[0].Timestamp
	}
	w.p.mu.Unlock()
	w.commits <- req
	if wait {
		return <-req.done
	}
	return nil
}

// errCommitRefused stops a worker whose committer had a commit refused.
var errCommitRefused = errors.New("processor: a commit was refused")

// commitLoop makes the worker's commits in order, one at a time. The
// commits that queued while one was made are made as one: the last
// holds the position and intent that count, and every state committed
// on the way is one a restart may start from. Credit returns once the
// commit covering it is durable. After a refusal (a rebalance, or the
// offsets store could not take it) it commits nothing more, answers the
// waiters with the error, and stops the deliveries (stop).
func (w *worker) commitLoop(stop context.CancelFunc) {
	p := w.p
	var failed error
	for req := range w.commits {
		reqs := []commitReq{req}
	more:
		for {
			select {
			case r, ok := <-w.commits:
				if !ok {
					break more
				}
				reqs = append(reqs, r)
			default:
				break more
			}
		}
		last := reqs[len(reqs)-1]
		err := failed
		if err == nil {
			err = p.commit(w.ref, w.st.sp.Partition, last.pos, last.md)
			if err != nil {
				failed = err
				w.failed.Store(true)
				stop()
			} else {
				p.mu.Lock()
				w.st.pos = last.pos
				p.mu.Unlock()
			}
		}
		for _, r := range reqs {
			for _, c := range r.chunks {
				p.budget.release(c.bytes)
			}
			if r.done != nil {
				r.done <- err
			}
		}
	}
}

// deliver hands b, the span's first batch, to the sink until it takes it,
// or to the dead letter when it refuses it for good (dead). Before the
// first attempt of the first batch with events of a span cut afresh it
// records the span's intent, with, for a Preparer, the state the span's
// batches share: the sinks that prepare (kafka, pipeline) look in their
// target only for the events of the batch's own range, so a state taken
// before an earlier batch of the span serves as well.
func (w *worker) deliver(ctx context.Context, b *Batch) (dead bool, err error) {
	p := w.p
	lane := w.st.sp.Lane
	in := w.span
	if w.retry {
		b.Retry, b.State = true, in.state
		if in.dead {
			return true, w.deadLetter(ctx, b, in)
		}
	} else if p.keeper == nil {
		if !w.recorded {
			if p.preparer != nil {
				state, err := retry(ctx, p, "prepare", func() (string, error) { return p.preparer.Prepare(ctx, b) })
				if err != nil {
					return false, err
				}
				in.state = state
			}
			if len(in.metadata()) > maxIntentMetadata {
				// Too long for the offsets store with this state: the
				// span is its first batch, the rest is cut again.
				_, in.last = in.head()
				in.sizes = nil
			}
			// The intent's commit also moves the position to the span.
			if err := w.commit(in.first, in.metadata(), true); err != nil {
				return false, err
			}
			w.recorded = true
		}
		b.State = in.state
	}
	wait := retryFirst
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			b.Retry = true
			p.retries.Add(1)
			p.m.retries.WithLabelValues(p.cfg.Name).Inc()
			if !sleep(ctx, wait) {
				return false, ctx.Err()
			}
			wait = min(2*wait, retryMax)
		}
		if err := p.lim.wait(ctx, lane, len(b.Records)); err != nil {
			return false, err
		}
		if err := p.slots.acquire(ctx, lane, 1); err != nil {
			return false, err
		}
		t0 := time.Now()
		err := p.sink.Deliver(ctx, b)
		lat := time.Since(t0)
		p.slots.release(1)
		p.m.latency.WithLabelValues(p.cfg.Name).Observe(lat.Seconds())
		p.lat.add(lat)
		if err == nil {
			p.lim.success(lat)
			p.delivered.Add(uint64(len(b.Records)))
			p.m.delivered.WithLabelValues(p.cfg.Name).Add(float64(len(b.Records)))
			return false, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if r, ok := isRefusal(err); ok {
			p.log.Warn("processor: the sink refused a batch; it goes to the dead letter", "range", b.IdempotencyKey(), "reason", r.Reason, "dead_letter", p.cfg.DeadLetter)
			state, err := retry(ctx, p, "prepare the dead letter", func() (string, error) { return p.dead.Prepare(ctx, b) })
			if err != nil {
				return false, err
			}
			// The dead-letter intent replaces the span's: the batches
			// after this one were never attempted, and the commit after
			// the dead letter records their intent again.
			din := &intent{first: b.First, last: b.Last, dead: true, state: state, reason: truncate(r.Reason, 1024)}
			if err := w.commit(b.First, din.metadata(), true); err != nil {
				return false, err
			}
			b.Retry, b.State = false, state
			return true, w.deadLetter(ctx, b, din)
		}
		p.lim.refused()
		var bo *Backoff
		if errors.As(err, &bo) && bo.After > wait {
			wait = min(bo.After, time.Minute)
		}
		p.fail("delivery of "+b.IdempotencyKey(), err)
	}
}

// deadLetter writes b's events into the dead-letter pipeline, with the
// reason of the refusal.
func (w *worker) deadLetter(ctx context.Context, b *Batch, in *intent) error {
	p := w.p
	_, err := retry(ctx, p, "write to the dead letter "+p.cfg.DeadLetter, func() (string, error) {
		err := p.dead.write(ctx, b, []client.Header{{Key: HeaderDeadLetterReason, Value: []byte(in.reason)}, {Key: HeaderDeadLetterProcessor, Value: []byte(p.cfg.Name)}})
		if err != nil {
			b.Retry = true
		}
		return "", err
	})
	if err != nil {
		return err
	}
	p.deadLettered.Add(uint64(len(b.Records)))
	p.m.deadLettered.WithLabelValues(p.cfg.Name).Add(float64(len(b.Records)))
	return nil
}

// retry calls f until it succeeds or ctx ends, backing off.
func retry(ctx context.Context, p *Processor, what string, f func() (string, error)) (string, error) {
	wait := retryFirst
	for {
		s, err := f()
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		p.fail(what, err)
		p.retries.Add(1)
		p.m.retries.WithLabelValues(p.cfg.Name).Inc()
		if !sleep(ctx, wait) {
			return "", ctx.Err()
		}
		wait = min(2*wait, retryMax)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
