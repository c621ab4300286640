package processor

import (
	"context"
	"errors"
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
	intent *intent
	chunks chan *chunk

	held    []*chunk        // chunks with records not yet committed
	pending []client.Record // records read and not yet in a batch
	readTo  int64           // offset after the last chunk taken
}

func (w *worker) run(ctx context.Context) {
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	w.p.mu.Lock()
	start := w.st.pos
	w.p.mu.Unlock()
	go func() {
		defer close(done)
		w.read(rctx, start)
	}()
	w.readTo = start
	w.deliverLoop(ctx)
	stop()
	<-done
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
func (w *worker) read(ctx context.Context, off int64) {
	p := w.p
	lane := w.st.sp.Lane
	want := min(int64(maxFetchBytes), int64(p.cfg.MaxInFlightBytes)/4)
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
			continue
		}
		// Pay for what was read: an oversized first batch comes alone.
		size := int64(f.Bytes)
		p.budget.release(want)
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

// take moves the next chunk into pending, waiting until one arrives,
// until the timer fires (false) or ctx ends.
func (w *worker) take(ctx context.Context, timer <-chan time.Time) (bool, error) {
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
	for ctx.Err() == nil {
		recs, first, last, err := w.cut(ctx)
		if err != nil {
			return
		}
		if recs == nil {
			// Nothing but offsets without records (control batches):
			// move the position past them.
			if err := w.advance(w.readTo, ""); err != nil {
				return
			}
			continue
		}
		pass := recs[:0:0]
		for i := range recs {
			if p.filter.pass(&recs[i]) {
				pass = append(pass, recs[i])
			}
		}
		p.filtered.Add(uint64(len(recs) - len(pass)))
		p.m.filtered.WithLabelValues(p.cfg.Name).Add(float64(len(recs) - len(pass)))
		in := w.intent
		w.intent = nil
		b := &Batch{Processor: p.cfg.Name, Pipeline: p.cfg.From.Pipeline, Partition: w.st.sp.Partition, First: first, Last: last, Records: pass}
		if len(pass) > 0 {
			if err := w.deliver(ctx, b, in); err != nil {
				if ctx.Err() == nil {
					p.fail("deliver", err)
				}
				return
			}
		}
		if err := w.advance(last+1, ""); err != nil {
			return
		}
	}
}

// cut takes the next batch's records from pending and the chunks: those
// of the intent's range when there is one, else up to max_events of them
// or what came within linger of the first. recs is nil when the chunks
// held offsets but no records.
func (w *worker) cut(ctx context.Context) (recs []client.Record, first, last int64, err error) {
	p := w.p
	max := p.cfg.Batch.MaxEvents
	var timer *time.Timer
	var timerC <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	n := 0
	for {
		if in := w.intent; in != nil {
			for n < len(w.pending) && w.pending[n].Offset <= in.last {
				n++
			}
			if n < len(w.pending) || w.readTo > in.last {
				return w.split(n), in.first, in.last, nil
			}
		} else {
			n = min(len(w.pending), max)
			if n == max {
				first, last := w.pending[0].Offset, w.pending[n-1].Offset
				return w.split(n), first, last, nil
			}
			if n > 0 && timer == nil {
				timer = time.NewTimer(time.Duration(p.cfg.Batch.Linger))
				timerC = timer.C
			}
		}
		ok, err := w.take(ctx, timerC)
		if err != nil {
			return nil, 0, 0, err
		}
		if !ok {
			// Linger is over.
			n = min(len(w.pending), max)
			first, last := w.pending[0].Offset, w.pending[n-1].Offset
			return w.split(n), first, last, nil
		}
		if w.intent == nil && len(w.pending) == 0 && timer == nil {
			return nil, 0, 0, nil // a chunk without records
		}
	}
}

// split removes the first n pending records and returns them.
func (w *worker) split(n int) []client.Record {
	out := w.pending[:n:n]
	w.pending = w.pending[n:]
	if n == 0 {
		return []client.Record{}
	}
	return out
}

// advance commits the position pos and gives back the credit of the
// chunks wholly before it.
func (w *worker) advance(pos int64, md string) error {
	p := w.p
	p.mu.Lock()
	cur := w.st.pos
	p.mu.Unlock()
	if pos <= cur && md == "" {
		return nil
	}
	if err := p.commit(w.ref, w.st.sp.Partition, pos, md); err != nil {
		return err
	}
	i := 0
	for ; i < len(w.held) && w.held[i].next <= pos; i++ {
		p.budget.release(w.held[i].bytes)
	}
	w.held = w.held[i:]
	p.mu.Lock()
	w.st.pos = pos
	w.st.oldest = time.Time{}
	if len(w.pending) > 0 {
		w.st.oldest = w.pending[0].Timestamp
	}
	p.mu.Unlock()
	return nil
}

// deliver hands b to the sink until it takes it, or to the dead letter
// when it refuses it for good. in is the intent an earlier run left for
// b's range, if any.
func (w *worker) deliver(ctx context.Context, b *Batch, in *intent) error {
	p := w.p
	lane := w.st.sp.Lane
	if in != nil {
		b.Retry, b.State = true, in.state
		if in.dead {
			return w.deadLetter(ctx, b, in)
		}
	} else if p.keeper == nil {
		if p.preparer != nil {
			state, err := retry(ctx, p, "prepare", func() (string, error) { return p.preparer.Prepare(ctx, b) })
			if err != nil {
				return err
			}
			b.State = state
		}
		in = &intent{first: b.First, last: b.Last, state: b.State}
		if err := p.commit(w.ref, b.Partition, b.First, in.metadata()); err != nil {
			return err
		}
	}
	wait := retryFirst
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			b.Retry = true
			p.retries.Add(1)
			p.m.retries.WithLabelValues(p.cfg.Name).Inc()
			if !sleep(ctx, wait) {
				return ctx.Err()
			}
			wait = min(2*wait, retryMax)
		}
		if err := p.lim.wait(ctx, lane, len(b.Records)); err != nil {
			return err
		}
		if err := p.slots.acquire(ctx, lane, 1); err != nil {
			return err
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
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if r, ok := isRefusal(err); ok {
			p.log.Warn("processor: the sink refused a batch; it goes to the dead letter", "range", b.IdempotencyKey(), "reason", r.Reason, "dead_letter", p.cfg.DeadLetter)
			state, err := retry(ctx, p, "prepare the dead letter", func() (string, error) { return p.dead.Prepare(ctx, b) })
			if err != nil {
				return err
			}
			din := &intent{first: b.First, last: b.Last, dead: true, state: state, reason: truncate(r.Reason, 1024)}
			if err := p.commit(w.ref, b.Partition, b.First, din.metadata()); err != nil {
				return err
			}
			b.Retry, b.State = false, state
			return w.deadLetter(ctx, b, din)
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
