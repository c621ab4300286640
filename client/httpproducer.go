package client

import (
	"context"
	"errors"
	"time"

	"github.com/sensehq/sense/edge/native/wire"
)

// The Producer over HTTP: batching, the buffer budget, per-event retries
// and callbacks are the same code as over the native protocol; what
// differs is that a sealed request is POSTed (its batch body, the tail of
// the PRODUCE frame it was encoded as) on a goroutine of its own, at most
// MaxInFlight at a time, and that there is no producer id.

// newHTTPProducer returns a producer over the client's HTTP transport.
func (c *Client) newHTTPProducer(opts ProducerOptions) (*Producer, error) {
	p := &Producer{c: c, opts: opts, pid: -1, epoch: -1, nextSeq: -1,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), dwake: make(chan struct{}, 1),
		loopDone: make(chan struct{}), cbDone: make(chan struct{})}
	p.space.L = &p.mu
	p.hctx, p.hcancel = context.WithCancel(c.h.ctx)
	p.overhead = wire.FrameHeaderSize + wire.BatchBodyPrefixLen(opts.Pipeline)
	p.maxEvents = min(opts.BatchEvents, httpMaxEvents)
	p.maxFrame = p.overhead + httpMaxBodyBytes
	p.maxBytes = min(opts.BatchBytes, p.maxFrame)
	p.maxEventLen = wire.DefaultMaxEventBytes
	p.linger = time.AfterFunc(time.Hour, p.lingerExpired)
	p.linger.Stop()
	go p.run()
	go p.callbacks()
	return p, nil
}

// postReady starts POSTs of queued requests (and of the open batch when
// it is due) while request slots are free.
func (p *Producer) postReady(now time.Time) {
	if p.hclosed || now.Before(p.holdUntil) {
		return
	}
	p.holdUntil = time.Time{}
	for len(p.inflight) < p.opts.MaxInFlight {
		r := p.takeNext()
		if r == nil {
			return
		}
		p.hcorr++
		r.corr = p.hcorr
		p.inflight = append(p.inflight, r)
		p.posts.Add(1)
		go p.post(r, r.corr)
	}
}

// post sends r and hands its answer to the loop.
func (p *Producer) post(r *request, corr uint32) {
	defer p.posts.Done()
	a := p.c.h.produce(p.hctx, p.opts.Pipeline, wire.ProduceBatchBody(r.buf, p.opts.Pipeline), r.n)
	p.cmu.Lock()
	p.comps = append(p.comps, completion{r: r, corr: corr, http: &a})
	p.cmu.Unlock()
	p.signal()
}

// httpAnswer handles the outcome of a POST.
func (p *Producer) httpAnswer(r *request, a *httpAnswer, now time.Time) {
	fail := func(err error) {
		p.complete(r, func(int) Result { return Result{Partition: -1, Offset: -1, Err: err} })
	}
	switch {
	case a.err != nil && (p.c.h.closed() || errors.Is(a.err, context.Canceled) && p.hctx.Err() != nil):
		fail(ErrClosed)
	case a.err != nil && !a.sent:
		// The request never reached a connection: nothing was stored,
		// resending is safe.
		r.attempts++
		if r.attempts > p.opts.MaxRetries {
			fail(&ConnError{Addr: p.c.h.base, Err: a.err})
			return
		}
		p.requeue(r)
		p.holdUntil = now.Add(backoff(p.opts.RetryBackoff, r.attempts))
	case a.err != nil:
		// Sent, answer lost: stored or not, nobody knows.
		if p.opts.AtLeastOnce && r.attempts < p.opts.MaxRetries {
			r.attempts++
			p.requeue(r)
			p.holdUntil = now.Add(backoff(p.opts.RetryBackoff, r.attempts))
			return
		}
		fail(&UnknownOutcomeError{URL: p.c.h.eventsURL(p.opts.Pipeline), Events: r.n, Err: a.err})
	case a.results != nil:
		p.finish(r, httpResults(a.results), now)
	default:
		// Refused whole (429 and 503 included): nothing was stored, and a
		// retriable code is retried like an ERROR answer over TCP.
		p.requestError(r, a.reqErr, now)
	}
}
