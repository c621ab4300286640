package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
)

// Header is one user header of an event or record.
type Header struct {
	Key   string
	Value []byte
}

// Event is one event to produce. A nil Key is no key (the server spreads
// such events over the eligible partitions); a nil Value is a null value.
type Event struct {
	Key, Value []byte
	Headers    []Header
	// Mask is the set of jurisdictions the event may be stored in; 0 means
	// the pipeline's default. Client.Registry turns codes into masks.
	Mask jurisdiction.Mask
	// HasPriority sends Priority; without it the pipeline's default
	// priority applies.
	HasPriority bool
	Priority    event.Priority
	// Timestamp is the event time (millisecond precision); the zero value
	// means the time the server receives it.
	Timestamp time.Time
}

// Result is the outcome of one event.
type Result struct {
	Partition int32
	Offset    int64
	// Err is nil when the event is stored (durably, under the server's
	// policy). Otherwise Partition and Offset are -1 and Err is a
	// *result.Error (errors.Is(err, result.ErrNoCompliantHub), ...; see
	// result.CodeOf), ErrClosed, or a *ConnError after the retries ran out.
	// An event answered DUPLICATE_SEQUENCE was stored by an earlier
	// attempt whose offsets the server no longer knows: its Err is nil and
	// its Partition and Offset are -1.
	Err error
	// Answered is when the client read the server's answer that settled
	// the event (one clock reading per answer); zero when no answer did
	// (the connection failed, the producer closed).
	Answered time.Time
}

// ProducerOptions configure a Producer.
type ProducerOptions struct {
	// Pipeline is the pipeline to produce to (required). In dev mode the
	// server creates it on the first event.
	Pipeline string
	// Linger is how long a batch may wait for more events before it is
	// sent. 0 means the default (2ms); a negative value means no wait: a
	// batch is sent as soon as a request slot is free, and events
	// accumulate only while MaxInFlight requests are outstanding.
	Linger time.Duration
	// BatchEvents bounds the events of one PRODUCE request. Default 1000;
	// never more than the server's max events per produce.
	BatchEvents int
	// BatchBytes bounds the size of one PRODUCE request. Default 1 MiB;
	// never more than the server's max frame. A single larger event is sent
	// alone.
	BatchBytes int
	// DisableIdempotence turns off the producer id and sequence numbers
	// (INIT_PRODUCER): a resent request may then be stored twice.
	DisableIdempotence bool
	// MaxRetries bounds the retries of a request whose answer was a
	// retriable error or was lost with the connection, and of each event
	// refused with a retriable code. Default 10; negative: no retries.
	MaxRetries int
	// RetryBackoff is the wait before the first retry, doubling with each
	// further retry up to 1s. Default 50ms.
	RetryBackoff time.Duration
	// MaxInFlight bounds the PRODUCE requests outstanding on the
	// connection. Default 4; at most 5 (the protocol's limit).
	MaxInFlight int
	// MaxBufferedBytes bounds the encoded bytes of events accepted by Send
	// and not yet answered; Send blocks while it is exceeded. Default 64 MiB.
	MaxBufferedBytes int
	// AtLeastOnce matters over HTTP only, which has no idempotence: a
	// produce request that reached the node but whose answer was lost is
	// then resent (up to MaxRetries times), and its events may be stored
	// twice. Without it such events fail with an *UnknownOutcomeError
	// (ErrUnknownOutcome): stored once or not at all, never twice. Over
	// tcp and quic resends are safe (idempotent) and this has no effect.
	AtLeastOnce bool
}

// Producer defaults.
const (
	DefaultLinger           = 2 * time.Millisecond
	DefaultBatchEvents      = 1000
	DefaultBatchBytes       = 1 << 20
	DefaultMaxRetries       = 10
	DefaultRetryBackoff     = 50 * time.Millisecond
	DefaultMaxInFlight      = 4
	DefaultMaxBufferedBytes = 64 << 20
	maxInFlightLimit        = 5
)

func (o *ProducerOptions) normalize() error {
	if err := event.ValidatePipelineName(o.Pipeline); err != nil {
		return fmt.Errorf("client: ProducerOptions.Pipeline: %w", err)
	}
	if o.Linger == 0 {
		o.Linger = DefaultLinger
	}
	if o.BatchEvents <= 0 {
		o.BatchEvents = DefaultBatchEvents
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = DefaultMaxRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = DefaultRetryBackoff
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	o.MaxInFlight = min(o.MaxInFlight, maxInFlightLimit)
	if o.MaxBufferedBytes <= 0 {
		o.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	return nil
}

// Producer sends events to one pipeline, in batches, with a result per
// event. It is safe for concurrent use.
//
// # Batching
//
// Send encodes the event at once into the open batch (one PRODUCE request
// being built). A batch is sent when it holds BatchEvents events or
// BatchBytes bytes, when Linger has passed since its first event, or at
// once on Flush, Produce and Close. At most MaxInFlight requests are
// outstanding; the server applies a connection's requests in order.
//
// # Idempotence and retries
//
// Unless DisableIdempotence is set, the producer gets a producer id from
// the server (INIT_PRODUCER) and numbers its events: event i of a request
// has sequence BaseSequence+i, and each request continues where the
// previous one stopped. A request that got no answer because the
// connection broke is resent on a new connection byte for byte (same
// producer id, epoch, base sequence and events), and so is a request
// answered with a retriable ERROR: the server recognises a request it has
// already stored and answers with the original offsets, so nothing is
// stored twice. Requests are resent in their original order, up to
// MaxRetries times each, with backoff.
//
// An event refused inside a PRODUCE_RESULT with a retriable code
// (NO_COMPLIANT_HUB, OVERLOADED, NOT_READY, STORAGE_ERROR, TIMEOUT,
// NOT_LEADER) used its sequence number: it is sent again, after a backoff,
// in a later request with a new sequence number, up to MaxRetries times.
// Other codes go straight to the event's callback.
//
// # Ordering
//
// Events reach a partition in the order of Send, with two exceptions: an
// event refused with a retriable code and sent again comes after the
// events sent in between (while a partition's leader changes, the server
// itself tries a batch again in its place, for up to 10 s, so this takes
// a longer outage: docs/cluster.md, "Forwarding"); and a request refused
// as a whole with a retriable code (an ERROR answer: OVERLOADED, NOT_READY)
// may be stored after requests sent after it, the server accepting gaps
// in the sequence numbers of one partition.
// A key keeps its partition while the set of eligible partitions is
// stable.
//
// # Callbacks
//
// Callbacks run on one goroutine of the producer, one at a time, in the
// order the answers arrive (within a request, in event order). They should
// be quick. A callback may call Send, but not Flush, Produce or Close,
// which wait for callbacks and would deadlock.
type Producer struct {
	c    *Client
	opts ProducerOptions

	maxEvents   int // per request
	maxBytes    int // per request frame
	maxEventLen int // key + value + headers
	maxFrame    int // largest whole frame the server accepts
	overhead    int // frame bytes before the first event

	pid   int64
	epoch int16

	mu       sync.Mutex
	space    sync.Cond // signalled when buffered drops
	open     *request  // batch being filled
	ready    bool      // the open batch may be sent now
	queue    []*request
	order    uint64 // order of the next sealed request
	nextSeq  int32
	buffered int // encoded bytes of unanswered events
	pending  int // events accepted and not yet called back
	idle     chan struct{}
	flushers int
	closing  bool
	fatal    error // the producer can no longer send
	free     []*request
	hdrs     []wire.Header // scratch for Send
	linger   *time.Timer

	wake chan struct{}
	quit chan struct{}

	// Loop goroutine only.
	cn          *conn
	inflight    []*request
	retries     []retryEvent
	connFails   int
	reconnectAt time.Time
	holdUntil   time.Time

	// HTTP only: requests are POSTs on goroutines of their own.
	hctx    context.Context // ends at Close or with the Client
	hcancel context.CancelFunc
	posts   sync.WaitGroup
	hcorr   uint32 // tells the attempts of a request apart
	hclosed bool   // the Client was closed (loop goroutine)

	cmu   sync.Mutex
	comps []completion
	bufs  [][]byte // recycled answer payloads

	dmu      sync.Mutex
	dq       []*delivery
	dwake    chan struct{}
	dfree    []*delivery
	loopDone chan struct{}
	cbDone   chan struct{}
}

// request is one PRODUCE request.
type request struct {
	p        *Producer
	enc      wire.ProduceEncoder
	buf      []byte // the whole frame, once sealed
	n        int
	bytes    int // encoded bytes of its events
	order    uint64
	dones    []func(Result)
	tries    []int32 // times each event was refused and re-sent; nil: all 0
	attempts int     // times it was sent without a usable answer
	corr     uint32  // while outstanding
}

// completion is an answer to a request, handed from the reader goroutine
// to the loop.
type completion struct {
	r       *request
	corr    uint32
	typ     wire.Type
	payload []byte
	http    *httpAnswer // over HTTP, instead of typ and payload
}

// delivery is a set of results for the callback goroutine.
type delivery struct {
	dones   []func(Result)
	results []Result
}

// retryEvent is an event refused with a retriable code, waiting to be sent
// again.
type retryEvent struct {
	ev    Event
	done  func(Result)
	tries int32
	due   time.Time
}

// NewProducer returns a producer for opts.Pipeline. Unless idempotence is
// disabled it asks the server for a producer id first.
func (c *Client) NewProducer(ctx context.Context, opts ProducerOptions) (*Producer, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	if c.h != nil {
		return c.newHTTPProducer(opts)
	}
	cn, err := c.flowConn(ctx)
	if err != nil {
		return nil, err
	}
	p := &Producer{c: c, opts: opts, cn: cn, pid: -1, epoch: -1, nextSeq: -1,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), dwake: make(chan struct{}, 1),
		loopDone: make(chan struct{}), cbDone: make(chan struct{})}
	p.space.L = &p.mu
	if !opts.DisableIdempotence {
		out, err := cn.roundTrip(ctx, wire.TypeInitProducerOK, func(dst []byte, corr uint32) []byte {
			return wire.AppendInitProducer(dst, corr, wire.InitProducer{})
		})
		if err != nil {
			c.releaseFlow(cn)
			return nil, fmt.Errorf("client: INIT_PRODUCER: %w", err)
		}
		m, err := wire.DecodeInitProducerOK(out)
		if err != nil {
			cn.fail(err)
			c.releaseFlow(cn)
			return nil, err
		}
		p.pid, p.epoch, p.nextSeq = m.ProducerID, m.Epoch, 0
	}
	h := cn.hello
	p.maxEvents = min(opts.BatchEvents, int(h.MaxEventsPerProduce))
	p.maxBytes = min(opts.BatchBytes, int(h.MaxFrameBytes)+wire.LengthSize)
	p.maxEventLen = int(h.MaxEventBytes)
	p.overhead = wire.FrameHeaderSize + 4 + len(opts.Pipeline) + 8 + 2 + 4 + 4
	p.maxFrame = int(h.MaxFrameBytes) + wire.LengthSize
	p.linger = time.AfterFunc(time.Hour, p.lingerExpired)
	p.linger.Stop()
	go p.run()
	go p.callbacks()
	return p, nil
}

// ProducerID returns the producer id and epoch the server gave, or -1, -1
// when idempotence is disabled.
func (p *Producer) ProducerID() (int64, int16) { return p.pid, p.epoch }

// Send queues ev and returns; done (which may be nil) is called with its
// result once the server has answered, or once the producer gave up. Send
// copies ev's bytes before it returns: the caller may reuse them at once.
// Send blocks while MaxBufferedBytes of events are unanswered. After
// Close, done is called at once with ErrClosed.
func (p *Producer) Send(ev Event, done func(Result)) {
	p.send(ev, done, false)
}

// Produce sends ev at once (without lingering) and waits for its result.
// If ctx ends first it returns ctx's error in Result.Err; the event may
// still be stored.
func (p *Producer) Produce(ctx context.Context, ev Event) Result {
	ch := make(chan Result, 1)
	p.send(ev, func(r Result) { ch <- r }, true)
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		return Result{Partition: -1, Offset: -1, Err: ctx.Err()}
	}
}

func noop(Result) {}

func (p *Producer) send(ev Event, done func(Result), urgent bool) {
	if done == nil {
		done = noop
	}
	p.mu.Lock()
	in := p.eventInLocked(&ev)
	if code, msg := p.check(&ev, &in); code != result.OK {
		if p.closing {
			p.mu.Unlock()
			done(Result{Partition: -1, Offset: -1, Err: ErrClosed})
			return
		}
		p.pendingAddLocked(1)
		p.mu.Unlock()
		p.deliverOne(done, Result{Partition: -1, Offset: -1, Err: &result.Error{Code: code, Message: msg}})
		return
	}
	if p.buffered > 0 && p.buffered+in.EncodedLen() > p.opts.MaxBufferedBytes {
		for p.buffered > 0 && p.buffered+in.EncodedLen() > p.opts.MaxBufferedBytes && !p.closing && p.fatal == nil {
			p.space.Wait()
		}
		in = p.eventInLocked(&ev) // another Send may have reused the scratch headers
	}
	switch {
	case p.closing:
		p.mu.Unlock()
		done(Result{Partition: -1, Offset: -1, Err: ErrClosed})
		return
	case p.fatal != nil:
		err := p.fatal
		p.pendingAddLocked(1)
		p.mu.Unlock()
		p.deliverOne(done, Result{Partition: -1, Offset: -1, Err: err})
		return
	}
	p.pendingAddLocked(1)
	signal := p.addLocked(&in, done, 0)
	if urgent && p.open != nil && !p.ready {
		p.ready, signal = true, true
	}
	p.mu.Unlock()
	if signal {
		p.signal()
	}
}

// eventInLocked converts ev for the encoder. Its headers live in the
// scratch slice p.hdrs: the result is valid while p.mu is held.
func (p *Producer) eventInLocked(ev *Event) wire.EventIn {
	in := wire.EventIn{Key: ev.Key, Value: ev.Value, HasPriority: ev.HasPriority, Priority: ev.Priority}
	if ev.Mask != 0 {
		in.HasMask, in.Mask = true, ev.Mask
	}
	if !ev.Timestamp.IsZero() {
		in.HasTimestamp, in.TimestampMs = true, ev.Timestamp.UnixMilli()
	}
	if len(ev.Headers) > 0 {
		p.hdrs = p.hdrs[:0]
		for _, h := range ev.Headers {
			p.hdrs = append(p.hdrs, wire.Header(h))
		}
		in.Headers = p.hdrs
	}
	return in
}

// check refuses events the server would refuse or could not even receive.
func (p *Producer) check(ev *Event, in *wire.EventIn) (result.Code, string) {
	switch {
	case len(ev.Headers) > wire.DefaultMaxHeaders:
		return result.EventTooLarge, fmt.Sprintf("event has %d headers; at most %d are allowed", len(ev.Headers), wire.DefaultMaxHeaders)
	case in.Size() > p.maxEventLen:
		return result.EventTooLarge, fmt.Sprintf("event of %d bytes (key, value and headers); the server accepts at most %d", in.Size(), p.maxEventLen)
	case p.overhead+in.EncodedLen() > p.maxFrame:
		return result.EventTooLarge, fmt.Sprintf("event of %d encoded bytes does not fit in the server's largest frame (%d bytes)", in.EncodedLen(), p.maxFrame)
	case ev.HasPriority && !ev.Priority.Valid():
		return result.InvalidPriority, fmt.Sprintf("priority %d; use low, medium or critical", uint8(ev.Priority))
	}
	return result.OK, ""
}

func (p *Producer) pendingAddLocked(n int) {
	if p.pending == 0 {
		p.idle = make(chan struct{})
	}
	p.pending += n
}

// addLocked appends an event to the open batch, sealing batches as they
// fill. It reports whether the loop has new work.
func (p *Producer) addLocked(in *wire.EventIn, done func(Result), tries int32) bool {
	size := in.EncodedLen()
	signal := false
	if p.open != nil && (p.open.n >= p.maxEvents || p.open.enc.Size()+size > p.maxBytes) {
		p.sealLocked()
		signal = true
	}
	if p.open == nil {
		p.beginLocked()
	}
	r := p.open
	r.enc.Add(*in)
	r.n++
	r.bytes += size
	r.dones = append(r.dones, done)
	if tries > 0 || r.tries != nil {
		if r.tries == nil {
			r.tries = make([]int32, r.n-1, r.n)
		}
		r.tries = append(r.tries, tries)
	}
	p.buffered += size
	switch {
	case r.n >= p.maxEvents || r.enc.Size() >= p.maxBytes:
		p.sealLocked()
		signal = true
	case r.n == 1 && p.opts.Linger < 0:
		p.ready, signal = true, true
	case r.n == 1:
		p.linger.Reset(p.opts.Linger)
	}
	return signal
}

func (p *Producer) beginLocked() {
	var r *request
	if k := len(p.free); k > 0 {
		r, p.free = p.free[k-1], p.free[:k-1]
	} else {
		r = &request{p: p}
	}
	r.n, r.bytes, r.attempts, r.corr, r.tries = 0, 0, 0, 0, nil
	r.dones = r.dones[:0]
	r.enc.Begin(r.buf[:0], 0, wire.ProduceHeader{Pipeline: p.opts.Pipeline, ProducerID: p.pid, Epoch: p.epoch, BaseSequence: p.nextSeq})
	p.open = r
	p.ready = false
}

// sealLocked finishes the open batch and queues it.
func (p *Producer) sealLocked() {
	r := p.open
	p.open, p.ready = nil, false
	r.buf = r.enc.Finish()
	if p.pid >= 0 {
		p.nextSeq = int32((int64(p.nextSeq) + int64(r.n)) & (1<<31 - 1))
	}
	r.order = p.order
	p.order++
	p.queue = append(p.queue, r)
}

func (p *Producer) lingerExpired() {
	p.mu.Lock()
	if p.open != nil {
		p.ready = true
	}
	p.mu.Unlock()
	p.signal()
}

func (p *Producer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Flush sends the open batch at once and waits until every event given to
// Send so far has its result (its callback has returned), or ctx ends. If
// other goroutines keep sending, it waits for their events too.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	if p.pending == 0 {
		p.mu.Unlock()
		return nil
	}
	ch := p.idle
	p.flushers++
	p.mu.Unlock()
	p.signal()
	defer func() {
		p.mu.Lock()
		p.flushers--
		p.mu.Unlock()
	}()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes (waiting for every result; retries are bounded by
// MaxRetries) and stops the producer. Send after Close reports ErrClosed.
// Close does not close the Client.
func (p *Producer) Close() error {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		<-p.cbDone
		return nil
	}
	p.closing = true
	p.space.Broadcast()
	p.mu.Unlock()
	err := p.Flush(context.Background())
	close(p.quit)
	<-p.loopDone
	<-p.cbDone
	p.linger.Stop()
	return err
}

// run is the producer's loop: it sends batches, handles answers, retries
// and reconnects.
func (p *Producer) run() {
	defer close(p.loopDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		now := time.Now()
		p.handleCompletions(now)
		p.checkConn(now)
		p.readmitRetries(now)
		p.maybeConnect(now)
		p.sendReady(now)

		var tc <-chan time.Time
		if next := p.nextWakeup(); !next.IsZero() {
			timer.Reset(time.Until(next))
			tc = timer.C
		}
		var connDone <-chan struct{}
		if p.cn != nil {
			connDone = p.cn.done
		} else if p.c.h != nil && !p.hclosed {
			connDone = p.c.h.ctx.Done()
		}
		select {
		case <-p.wake:
		case <-connDone:
		case <-tc:
		case <-p.quit:
			timer.Stop()
			p.failAll(ErrClosed)
			p.c.releaseFlow(p.cn)
			if p.hcancel != nil {
				p.hcancel()
				p.posts.Wait()
			}
			return
		}
		timer.Stop()
	}
}

// nextWakeup is the earliest time the loop has timed work, or zero.
func (p *Producer) nextWakeup() time.Time {
	var t time.Time
	earliest := func(u time.Time) {
		if !u.IsZero() && (t.IsZero() || u.Before(t)) {
			t = u
		}
	}
	for i := range p.retries {
		earliest(p.retries[i].due)
	}
	if p.cn == nil && p.hasWork() {
		earliest(p.reconnectAt)
	}
	if !p.holdUntil.IsZero() && p.hasWork() {
		earliest(p.holdUntil)
	}
	return t
}

func (p *Producer) hasWork() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) > 0 || p.open != nil
}

// handle receives the answer to a request (reader goroutine).
func (r *request) handle(f wire.Frame) bool {
	p := r.p
	p.cmu.Lock()
	var b []byte
	if k := len(p.bufs); k > 0 {
		b, p.bufs = p.bufs[k-1], p.bufs[:k-1]
	}
	p.comps = append(p.comps, completion{r: r, corr: f.Corr, typ: f.Type, payload: append(b[:0], f.Payload...)})
	p.cmu.Unlock()
	p.signal()
	return true
}

// closed is a no-op: the loop watches the connection itself.
func (r *request) closed(error) {}

func (p *Producer) handleCompletions(now time.Time) {
	p.cmu.Lock()
	comps := p.comps
	p.comps = nil
	p.cmu.Unlock()
	for _, c := range comps {
		i := p.inflightIndex(c.r, c.corr)
		if i >= 0 {
			p.inflight = append(p.inflight[:i], p.inflight[i+1:]...)
			p.answer(c, now)
		}
		p.cmu.Lock()
		if len(p.bufs) < 2*maxInFlightLimit && cap(c.payload) <= 1<<20 {
			p.bufs = append(p.bufs, c.payload)
		}
		p.cmu.Unlock()
	}
}

func (p *Producer) inflightIndex(r *request, corr uint32) int {
	for i, q := range p.inflight {
		if q == r && q.corr == corr {
			return i
		}
	}
	return -1
}

// answer handles the answer to an outstanding request.
func (p *Producer) answer(c completion, now time.Time) {
	r := c.r
	if c.http != nil {
		p.httpAnswer(r, c.http, now)
		return
	}
	switch c.typ {
	case wire.TypeProduceResult:
		res, err := wire.DecodeProduceResult(c.payload)
		if err == nil && res.Len() != r.n {
			err = fmt.Errorf("%w: PRODUCE_RESULT with %d results for %d events", ErrProtocol, res.Len(), r.n)
		}
		if err != nil {
			p.protocolError(r, err)
			return
		}
		p.finish(r, res, now)
	case wire.TypeError:
		e, err := wire.DecodeError(c.payload)
		if err != nil {
			p.protocolError(r, err)
			return
		}
		p.requestError(r, e, now)
	default:
		p.protocolError(r, fmt.Errorf("%w: %s in answer to PRODUCE", ErrProtocol, c.typ))
	}
}

// protocolError closes the connection after a bad answer; the request
// counts as unanswered and is resent on the next connection.
func (p *Producer) protocolError(r *request, err error) {
	p.inflight = append(p.inflight, r)
	sortRequests(p.inflight)
	if p.cn != nil {
		p.cn.fail(err)
	}
}

// requestError handles an ERROR answer to a whole request: nothing of it
// was stored.
func (p *Producer) requestError(r *request, e *result.Error, now time.Time) {
	retry := e.Code.Retriable()
	if e.Code == result.OutOfOrderSequence {
		// The answer to a request sent after one that failed retriably:
		// resend it, in order, after that one.
		p.mu.Lock()
		retry = len(p.queue) > 0 && p.queue[0].order < r.order
		p.mu.Unlock()
	}
	switch {
	case retry && r.attempts < p.opts.MaxRetries:
		r.attempts++
		p.requeue(r)
		p.holdUntil = now.Add(backoff(p.opts.RetryBackoff, r.attempts))
	case e.Code == result.DuplicateSequence:
		// Stored by an earlier attempt, too long ago for the offsets.
		p.complete(r, func(int) Result { return Result{Partition: -1, Offset: -1} })
	case e.Code == result.ProducerFenced:
		p.complete(r, func(int) Result { return Result{Partition: -1, Offset: -1, Err: e} })
		p.failAll(e)
	default:
		p.complete(r, func(int) Result { return Result{Partition: -1, Offset: -1, Err: e} })
	}
}

// requeue puts r back in the queue in its order.
func (p *Producer) requeue(rs ...*request) {
	p.mu.Lock()
	p.queue = append(p.queue, rs...)
	sortRequests(p.queue)
	p.mu.Unlock()
}

func sortRequests(rs []*request) {
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].order < rs[j].order })
}

// eventResults are a result per event: a PRODUCE_RESULT, or the results
// of an HTTP answer.
type eventResults interface {
	Len() int
	At(i int) wire.EventResult
}

// finish handles a result per event of r.
func (p *Producer) finish(r *request, res eventResults, now time.Time) {
	d := p.newDelivery(r)
	var retry []int
	for i := 0; i < r.n; i++ {
		er := res.At(i)
		switch {
		case er.Code == result.OK:
			d.results[i] = Result{Partition: er.Partition, Offset: er.Offset, Answered: now}
		case er.Code.Retriable() && int(r.triesOf(i)) < p.opts.MaxRetries:
			retry = append(retry, i)
		default:
			d.results[i] = Result{Partition: -1, Offset: -1, Err: er.Code.Err(), Answered: now}
		}
	}
	if len(retry) > 0 {
		p.collectRetries(r, d, retry, now)
	}
	p.deliver(d)
	p.release(r)
}

func (r *request) triesOf(i int) int32 {
	if r.tries == nil {
		return 0
	}
	return r.tries[i]
}

// collectRetries copies the events at the indexes retry out of r, to be
// sent again later with new sequence numbers, and removes them from d.
func (p *Producer) collectRetries(r *request, d *delivery, retry []int, now time.Time) {
	req, err := wire.Limits{MaxEventsPerProduce: r.n}.DecodeProduce(r.buf[wire.FrameHeaderSize:])
	if err != nil { // cannot happen: we encoded it
		for _, i := range retry {
			d.results[i] = Result{Partition: -1, Offset: -1, Err: err}
		}
		return
	}
	it := req.Events()
	k := 0
	for it.Next() && k < len(retry) {
		if it.Index() != retry[k] {
			continue
		}
		i := retry[k]
		k++
		ev := it.Event()
		re := retryEvent{done: d.dones[i], tries: r.triesOf(i) + 1}
		re.due = now.Add(backoff(p.opts.RetryBackoff, int(re.tries)))
		re.ev = Event{Key: cloneBytes(ev.Key), Value: cloneBytes(ev.Value), HasPriority: ev.HasPriority, Priority: ev.Priority}
		if ev.HasMask {
			re.ev.Mask = ev.Mask
		}
		if ev.HasTimestamp {
			re.ev.Timestamp = time.UnixMilli(ev.TimestampMs)
		}
		hi := ev.Headers()
		for hk, hv, ok := hi.Next(); ok; hk, hv, ok = hi.Next() {
			re.ev.Headers = append(re.ev.Headers, Header{Key: string(hk), Value: cloneBytes(hv)})
		}
		p.retries = append(p.retries, re)
		d.dones[i] = nil // not answered yet
	}
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// readmitRetries puts the refused events whose backoff is over back into
// the open batch.
func (p *Producer) readmitRetries(now time.Time) {
	if len(p.retries) == 0 {
		return
	}
	keep := p.retries[:0]
	p.mu.Lock()
	for _, re := range p.retries {
		if re.due.After(now) {
			keep = append(keep, re)
			continue
		}
		if p.fatal != nil {
			err := p.fatal
			p.mu.Unlock()
			p.deliverOne(re.done, Result{Partition: -1, Offset: -1, Err: err})
			p.mu.Lock()
			continue
		}
		in := p.eventInLocked(&re.ev)
		p.addLocked(&in, re.done, re.tries)
	}
	p.mu.Unlock()
	clear(p.retries[len(keep):])
	p.retries = keep
}

// checkConn notices a lost connection: the requests it left unanswered go
// back to the queue, to be resent identically on the next connection.
func (p *Producer) checkConn(now time.Time) {
	if p.c.h != nil && !p.hclosed && p.c.h.closed() {
		p.hclosed = true
		p.failAll(ErrClosed)
		return
	}
	if p.cn == nil || !p.cn.isDone() {
		return
	}
	err := p.cn.error()
	p.c.releaseFlow(p.cn)
	p.cn = nil
	if errors.Is(err, ErrClosed) {
		p.failAll(ErrClosed)
		return
	}
	lost := p.inflight
	p.inflight = nil
	var again []*request
	for _, r := range lost {
		r.attempts++
		if r.attempts > p.opts.MaxRetries {
			p.complete(r, func(int) Result { return Result{Partition: -1, Offset: -1, Err: err} })
			continue
		}
		again = append(again, r)
	}
	p.requeue(again...)
	p.connFails++
	p.reconnectAt = now.Add(backoff(p.opts.RetryBackoff, p.connFails))
}

// maybeConnect gets a new connection when there is work and the backoff
// is over. A failed dial counts as an attempt of every queued request.
func (p *Producer) maybeConnect(now time.Time) {
	if p.c.h != nil || p.cn != nil || now.Before(p.reconnectAt) || !p.hasWork() {
		return
	}
	cn, err := p.c.flowConn(context.Background())
	if err == nil {
		p.cn = cn
		p.connFails = 0
		return
	}
	if errors.Is(err, ErrClosed) {
		p.failAll(ErrClosed)
		return
	}
	p.connFails++
	p.reconnectAt = time.Now().Add(backoff(p.opts.RetryBackoff, p.connFails))
	p.mu.Lock()
	if p.open != nil {
		p.sealLocked()
	}
	var failed []*request
	keep := p.queue[:0]
	for _, r := range p.queue {
		r.attempts++
		if r.attempts > p.opts.MaxRetries {
			failed = append(failed, r)
		} else {
			keep = append(keep, r)
		}
	}
	clear(p.queue[len(keep):])
	p.queue = keep
	p.mu.Unlock()
	for _, r := range failed {
		p.complete(r, func(int) Result { return Result{Partition: -1, Offset: -1, Err: err} })
	}
}

// sendReady sends queued requests (and the open batch when it is due)
// while request slots are free.
// takeNext pops the next request to send, sealing the open batch first
// when it is due; nil when there is nothing to send.
func (p *Producer) takeNext() *request {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 && p.open != nil && (p.ready || p.flushers > 0 || p.closing) {
		p.sealLocked()
	}
	if len(p.queue) == 0 {
		return nil
	}
	r := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	return r
}

func (p *Producer) sendReady(now time.Time) {
	if p.c.h != nil {
		p.postReady(now)
		return
	}
	if p.cn == nil || now.Before(p.holdUntil) {
		return
	}
	p.holdUntil = time.Time{}
	cn := p.cn
	for len(p.inflight) < p.opts.MaxInFlight {
		r := p.takeNext()
		if r == nil {
			return
		}
		corr, err := cn.register(r)
		if err != nil { // the connection ended: resend later
			p.requeue(r)
			return
		}
		r.corr = corr
		wire.SetCorr(r.buf, corr)
		p.inflight = append(p.inflight, r)
		if cn.write(r.buf) != nil {
			return // checkConn requeues it
		}
	}
}

// complete delivers a result for every event of r, from result.
func (p *Producer) complete(r *request, result func(i int) Result) {
	d := p.newDelivery(r)
	for i := range d.results {
		d.results[i] = result(i)
	}
	p.deliver(d)
	p.release(r)
}

// failAll makes the producer unusable with err: everything pending gets
// err.
func (p *Producer) failAll(err error) {
	p.mu.Lock()
	if p.fatal == nil {
		p.fatal = err
	}
	if p.open != nil {
		p.sealLocked()
	}
	rs := append(p.inflight, p.queue...)
	p.inflight, p.queue = nil, nil
	p.space.Broadcast()
	p.mu.Unlock()
	for _, r := range rs {
		p.complete(r, func(int) Result { return Result{Partition: -1, Offset: -1, Err: err} })
	}
	for _, re := range p.retries {
		p.deliverOne(re.done, Result{Partition: -1, Offset: -1, Err: err})
	}
	p.retries = nil
}

// newDelivery takes r's callbacks into a delivery with room for results.
func (p *Producer) newDelivery(r *request) *delivery {
	p.dmu.Lock()
	var d *delivery
	if k := len(p.dfree); k > 0 {
		d, p.dfree = p.dfree[k-1], p.dfree[:k-1]
	} else {
		d = new(delivery)
	}
	p.dmu.Unlock()
	d.dones, r.dones = r.dones, d.dones[:0]
	if cap(d.results) < len(d.dones) {
		d.results = make([]Result, len(d.dones))
	}
	d.results = d.results[:len(d.dones)]
	return d
}

// release frees r's buffer budget and recycles it.
func (p *Producer) release(r *request) {
	p.mu.Lock()
	p.buffered -= r.bytes
	p.space.Broadcast()
	r.tries = nil
	if len(p.free) < maxInFlightLimit+2 && cap(r.buf) <= 2*p.maxBytes {
		p.free = append(p.free, r)
	}
	p.mu.Unlock()
}

func (p *Producer) deliverOne(done func(Result), res Result) {
	p.dmu.Lock()
	d := &delivery{dones: []func(Result){done}, results: []Result{res}}
	p.dq = append(p.dq, d)
	p.dmu.Unlock()
	p.dsignal()
}

func (p *Producer) deliver(d *delivery) {
	p.dmu.Lock()
	p.dq = append(p.dq, d)
	p.dmu.Unlock()
	p.dsignal()
}

func (p *Producer) dsignal() {
	select {
	case p.dwake <- struct{}{}:
	default:
	}
}

// callbacks runs the callbacks, in delivery order.
func (p *Producer) callbacks() {
	defer close(p.cbDone)
	var batch []*delivery
	for {
		p.dmu.Lock()
		batch, p.dq = p.dq, batch[:0]
		p.dmu.Unlock()
		if len(batch) == 0 {
			select {
			case <-p.dwake:
				continue
			case <-p.loopDone:
				p.dmu.Lock()
				n := len(p.dq)
				p.dmu.Unlock()
				if n == 0 {
					return
				}
				continue
			}
		}
		for i, d := range batch {
			n := 0
			for k, done := range d.dones {
				if done != nil {
					done(d.results[k])
					n++
				}
			}
			clear(d.dones)
			clear(d.results)
			p.mu.Lock()
			p.pending -= n
			if p.pending == 0 && p.idle != nil {
				close(p.idle)
				p.idle = nil
			}
			p.mu.Unlock()
			p.dmu.Lock()
			if len(p.dfree) < 4*maxInFlightLimit && cap(d.results) <= 4*p.maxEvents {
				p.dfree = append(p.dfree, d)
			}
			p.dmu.Unlock()
			batch[i] = nil
		}
	}
}
