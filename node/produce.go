package node

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/router"
	"github.com/sensehq/sense/seglog"
)

// Event is one event of a produce request as an edge decoded it. The byte
// slices alias the request; the node copies them into record batches.
type Event struct {
	Key, Value  []byte
	Headers     []batch.RawHeader
	Mask        jurisdiction.Mask // 0: the pipeline's default
	HasPriority bool
	Priority    event.Priority
	TimestampMs int64 // 0: now
}

// ProduceRequest is a batch of events for one pipeline.
type ProduceRequest struct {
	Pipeline     string
	ProducerID   int64 // -1: not idempotent
	Epoch        int16
	BaseSequence int32 // event i has sequence BaseSequence+i
	Events       []Event
	// Arrived is when the edge had read the request (zero: when
	// StartProduce is called); the request's queueing delay, by which
	// overload is judged, runs from it.
	Arrived time.Time
}

// Result is the outcome for one event.
type Result struct {
	Code      result.Code
	Partition int32
	Offset    int64
}

// part collects the events of one request bound for one partition.
type part struct {
	partition int32
	prio      event.Priority
	idx       []int // indexes into the request's events
	b         batch.Builder
	pending   Ack
	t0        time.Time
	base      int64
	err       error
	seg       seglog.Pending // pending's value on a node alone (segmentBuffer.appendInto)
}

type scratch struct {
	parts []*part
	free  []*part
	// enc holds the routing headers sense.j and sense.p encoded as a
	// record carries them; each event patches its mask and class in.
	enc []byte
}

// Where the values sit in scratch.enc.
var (
	encMaskAt  = 1 + len(event.HeaderMask) + 1
	encMaskEnd = encMaskAt + event.MaskHeaderLen // where sense.p's encoding begins
	encPrioAt  = encMaskEnd + 1 + len(event.HeaderPriority) + 1
)

// routingHeaders encodes sense.j (a zero mask) and sense.p (low) as the
// record format has headers.
func routingHeaders() []byte {
	enc := binary.AppendVarint(nil, int64(len(event.HeaderMask)))
	enc = append(enc, event.HeaderMask...)
	enc = binary.AppendVarint(enc, event.MaskHeaderLen)
	enc = event.AppendMaskHeader(enc, 0)
	enc = binary.AppendVarint(enc, int64(len(event.HeaderPriority)))
	enc = append(enc, event.HeaderPriority...)
	enc = binary.AppendVarint(enc, event.PriorityHeaderLen)
	return event.AppendPriorityHeader(enc, event.Low)
}

// setRouting writes mask and prio into enc, made by routingHeaders.
func setRouting(enc []byte, mask jurisdiction.Mask, prio event.Priority) {
	binary.BigEndian.PutUint64(enc[encMaskAt:], uint64(mask))
	enc[encPrioAt] = byte(prio)
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// Produce routes and stores the events of req and fills res (len(res) must
// be len(req.Events)) with a result per event. It returns an error only when
// the whole request failed before any event was handled (ctx ended while
// waiting for memory).
func (n *Node) Produce(ctx context.Context, req *ProduceRequest, res []Result) error {
	size := RequestMemory(req)
	if err := n.ReserveAs(ctx, size, func() event.Priority { return requestLane(n, req) }); err != nil {
		return err
	}
	defer n.Release(size)
	pd, err := n.StartProduce(ctx, req, res)
	if err != nil {
		return err
	}
	pd.Wait()
	return nil
}

// requestLane is the highest priority of req's events.
func requestLane(n *Node, req *ProduceRequest) event.Priority {
	lane := event.Low
	def := n.DefaultPriority(req.Pipeline)
	for i := range req.Events {
		p := def
		if req.Events[i].HasPriority {
			p = req.Events[i].Priority
		}
		if p.Valid() && p > lane {
			lane = p
		}
	}
	return lane
}

// RequestMemory is what a request holds in memory while it is handled: its
// events' bytes twice (as received, and copied into record batches) plus a
// little per event.
func RequestMemory(req *ProduceRequest) int64 {
	var n int64
	for i := range req.Events {
		e := &req.Events[i]
		n += int64(len(e.Key)+len(e.Value)) + 64
		for _, h := range e.Headers {
			n += int64(len(h.Key) + len(h.Value))
		}
	}
	return 2 * n
}

// Reserve takes n bytes of the ingress memory budget for a request about to
// be read or handled, waiting while the budget is full (backpressure). The
// bytes are given back with Release once the request is answered. An edge
// that reads requests into memory reserves before reading them; Produce
// reserves by itself.
func (n *Node) Reserve(ctx context.Context, size int64) error {
	return n.budget.reserve(ctx, size, nil)
}

// ReserveAs is Reserve for a request whose class lane tells (its highest
// priority), asked only when the budget cannot give the bytes at once: a
// critical request may use the budget's last eighth, which the others may
// not, and while one waits the others wait behind it.
func (n *Node) ReserveAs(ctx context.Context, size int64, lane func() event.Priority) error {
	return n.budget.reserve(ctx, size, lane)
}

// DefaultPriority returns the priority of a pipeline's events that name
// none (low for an unknown pipeline).
func (n *Node) DefaultPriority(pipeline string) event.Priority {
	if p := n.st.Load().pipeline(pipeline); p != nil {
		return p.prio
	}
	return event.Low
}

// AppendsWaiting reports whether a produce request would now wait for its
// turn to append (the low and medium lanes' places are taken, or others
// wait for them): an edge that reads a connection's requests ahead of
// starting them starts one itself, without a hand-off, only when none
// would (and none of its connection's is queued), so that a request that
// waits does so where its queueing delay is seen.
func (n *Node) AppendsWaiting() bool { return !n.lanes.free() }

// Release gives back bytes taken with Reserve.
func (n *Node) Release(size int64) { n.budget.release(size) }

// PendingProduce is a produce request whose batches are written but not
// yet known durable.
type PendingProduce struct {
	n     *Node
	p     *pipeline
	req   *ProduceRequest
	res   []Result
	sc    *scratch
	start time.Time
}

// StartProduce does the work of Produce up to writing the batches, and
// returns without waiting for them to be durable (the caller has reserved
// the request's memory, see Reserve): a caller that handles
// requests in order can start the next one while this one's fsync runs,
// and the logs' group commit covers both. Wait must be called once; res is
// filled when it returns. req's bytes may be reused once StartProduce
// returns.
func (n *Node) StartProduce(ctx context.Context, req *ProduceRequest, res []Result) (*PendingProduce, error) {
	pd := new(PendingProduce)
	if err := n.StartProduceInto(ctx, req, res, pd); err != nil {
		return nil, err
	}
	return pd, nil
}

// StartProduceInto is StartProduce into a PendingProduce of the caller's
// (an edge keeps one per request buffer, so that starting a request
// allocates nothing); pd may be reused once its Wait has returned.
func (n *Node) StartProduceInto(ctx context.Context, req *ProduceRequest, res []Result, pd *PendingProduce) error {
	*pd = PendingProduce{}
	start := time.Now()
	if n.closed.Load() || n.fence.Load() != nil {
		fill(res, result.NotReady)
		return nil
	}
	p, code := n.lookup(req.Pipeline)
	if code != result.OK {
		fill(res, code)
		return nil
	}
	// Resolve priorities and sizes.
	for i := range req.Events {
		e := &req.Events[i]
		if !e.HasPriority {
			e.Priority = p.prio
		}
		res[i] = Result{Partition: -1, Offset: -1}
		if !e.Priority.Valid() {
			res[i].Code = result.InvalidPriority
			continue
		}
		size := len(e.Key) + len(e.Value)
		for _, h := range e.Headers {
			size += len(h.Key) + len(h.Value)
		}
		if size > n.opts.MaxEventBytes {
			res[i].Code = result.EventTooLarge
			continue
		}
		if e.Key == nil && p.spec.Compacted() {
			// A compacted pipeline keeps the latest event of each key.
			res[i].Code = result.CorruptBatch
			continue
		}
	}
	// Shedding, decided once per class for the request: a low or medium
	// class is refused when the memory budget is past its level (bytes),
	// or when its lane does not admit the request because its queueing
	// delay stays above target (delay; see lanes).
	var has [3]bool
	for i := range req.Events {
		if res[i].Code == result.OK {
			has[req.Events[i].Priority] = true
		}
	}
	var shed [3]string
	lane := event.Priority(255)
	for _, pr := range [...]event.Priority{event.Low, event.Medium, event.Critical} {
		switch {
		case !has[pr]:
			continue
		case pr == event.Critical:
			// Never refused; admit notes that critical is offered, which is
			// what makes the lanes below shed for it.
			n.lanes.admit(pr, start)
		case n.budget.shed(pr):
			shed[pr] = shedBytes
			continue
		case !n.lanes.admit(pr, start):
			shed[pr] = shedDelay
			continue
		}
		lane = pr
	}
	// The request's place among the appends: critical goes at once, low
	// and medium take a place in order of class. Its queueing delay runs
	// from the moment the edge read it.
	if lane.Valid() {
		if err := n.lanes.acquire(ctx, lane); err != nil {
			fill(res, result.Timeout)
			return err
		}
		defer n.lanes.release(lane)
		arrived := req.Arrived
		if arrived.IsZero() {
			arrived = start
		}
		now := time.Now()
		delay := now.Sub(arrived)
		n.lanes.observe(lane, delay, now)
		n.Metrics.laneDelay[lane].Observe(delay.Seconds())
	}
	var shedEvents [3]int
	sc := scratchPool.Get().(*scratch)
	routes := p.routes
	now := time.Now().UnixMilli()
	// Keyless events stick together: those of one request with the same
	// eligible buffers go to one of them, so a request is one append per
	// buffer class rather than one per buffer, as Kafka's sticky
	// partitioner does. An idempotent producer's choice follows from its
	// producer id and the request's first sequence, so a retry routes the
	// request as the first attempt did; others take turns.
	var spread uint64
	if req.ProducerID >= 0 {
		spread = mix(uint64(req.ProducerID), uint64(int64(req.BaseSequence)))
	} else {
		spread = n.spread.Add(1)
	}
	for i := range req.Events {
		if res[i].Code != result.OK {
			continue
		}
		e := &req.Events[i]
		if shed[e.Priority] != "" {
			res[i].Code = result.Overloaded
			shedEvents[e.Priority]++
			continue
		}
		mask := e.Mask
		if mask == 0 {
			mask = p.mask
		}
		if !n.reg.Contains(mask) {
			res[i].Code = result.InvalidMask
			continue
		}
		partition, reason := routes.Route(mask, e.Priority, e.Key, spread)
		if reason != router.OK {
			res[i].Code = reasonCode(reason)
			if reason.NoCompliantHub() {
				n.noCompliantHub(req.Pipeline, mask, e.Priority, reason)
			}
			continue
		}
		pt := sc.part(partition, e.Priority)
		if len(pt.idx) == 0 {
			seq := int32(-1)
			if req.ProducerID >= 0 {
				seq = int32((int64(req.BaseSequence) + int64(i)) & (1<<31 - 1))
			}
			pt.b.Reset(req.ProducerID, req.Epoch, seq)
			if req.ProducerID < 0 {
				pt.b.Reset(-1, -1, -1)
			}
		}
		pt.idx = append(pt.idx, i)
		ts := e.TimestampMs
		if ts == 0 {
			ts = now
		}
		if sc.enc == nil {
			sc.enc = routingHeaders()
		}
		setRouting(sc.enc, mask, e.Priority)
		pt.b.AddEncoded(ts, e.Key, e.Value, sc.enc, 2, e.Headers)
	}
	for pr, k := range shedEvents {
		if k > 0 {
			n.Metrics.shed(req.Pipeline, event.Priority(pr), shed[pr], k)
		}
	}
	for _, pt := range sc.parts {
		flags := AppendChecked
		if req.ProducerID >= 0 {
			flags |= AppendSparse
		}
		b := pt.b.Finish()
		pt.t0 = time.Now()
		if sb, ok := p.bufs[pt.partition].(segmentBuffer); ok {
			pt.pending, pt.err = sb.appendInto(b, flags, &pt.seg)
		} else {
			pt.pending, pt.err = p.bufs[pt.partition].Append(b, flags)
		}
	}
	*pd = PendingProduce{n: n, p: p, req: req, res: res, sc: sc, start: start}
	return nil
}

// Wait blocks until every batch of the request is durable (or failed) and
// fills the results.
// Ready reports whether every batch of the request is durable already, so
// that Wait returns without waiting. It may say false for a request about
// to complete.
func (pd *PendingProduce) Ready() bool {
	if pd.n == nil {
		return true
	}
	for _, pt := range pd.sc.parts {
		if pt.err == nil && !pt.pending.Ready() {
			return false
		}
	}
	return true
}

func (pd *PendingProduce) Wait() {
	if pd.n == nil {
		return
	}
	n, p, req, res := pd.n, pd.p, pd.req, pd.res
	if parts := pd.sc.parts; len(parts) == 1 {
		if pt := parts[0]; pt.err == nil {
			pt.base, pt.err = pt.pending.Wait()
		}
	} else {
		waitAll(parts)
	}
	for _, pt := range pd.sc.parts {
		n.Metrics.appendLatency.Observe(time.Since(pt.t0).Seconds())
		if pt.err != nil && !isProducerErr(pt.err) && !errors.Is(pt.err, seglog.ErrClosed) {
			n.log.Error("append failed", "pipeline", req.Pipeline, "partition", pt.partition, "err", pt.err)
		}
		code := n.appendCode(pt.err)
		for k, i := range pt.idx {
			if code != result.OK {
				res[i].Code = code
				continue
			}
			res[i] = Result{Partition: pt.partition, Offset: pt.base + int64(k)}
		}
		if code == result.OK {
			bs, _ := p.routes.Buffer(pt.partition)
			n.Metrics.stored(req.Pipeline, bs.Hub, pt.prio, len(pt.idx), pt.b.Size())
		}
	}
	n.Metrics.produceLatency.Observe(time.Since(pd.start).Seconds())
	n.putScratch(pd.sc)
	pd.n = nil
}

// waitAll waits for the appends of several partitions side by side: each
// log syncs on its own.
func waitAll(parts []*part) {
	var wg sync.WaitGroup
	for k, pt := range parts {
		if pt.err != nil {
			continue
		}
		if k == len(parts)-1 {
			pt.base, pt.err = pt.pending.Wait()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pt.base, pt.err = pt.pending.Wait()
		}()
	}
	wg.Wait()
}

func isProducerErr(err error) bool {
	_, ok := seglog.ProducerCode(err)
	return ok
}

func (n *Node) appendCode(err error) result.Code {
	switch {
	case err == nil:
		return result.OK
	case errors.Is(err, seglog.ErrClosed):
		return n.closedCode()
	}
	if c, ok := seglog.ProducerCode(err); ok {
		return c
	}
	if c := result.CodeOf(err); c != result.Unknown {
		return c // a replicated buffer's NOT_LEADER, for one
	}
	return result.StorageError
}

func reasonCode(r router.Reason) result.Code {
	switch {
	case r.NoCompliantHub():
		return result.NoCompliantHub
	case r == router.InvalidMask:
		return result.InvalidMask
	case r == router.InvalidPriority:
		return result.InvalidPriority
	}
	return result.Unknown
}

func (sc *scratch) part(partition int32, prio event.Priority) *part {
	for _, pt := range sc.parts {
		if pt.partition == partition {
			return pt
		}
	}
	var pt *part
	if k := len(sc.free); k > 0 {
		pt, sc.free = sc.free[k-1], sc.free[:k-1]
	} else {
		pt = new(part)
	}
	pt.partition, pt.prio, pt.idx, pt.err, pt.base = partition, prio, pt.idx[:0], nil, 0
	sc.parts = append(sc.parts, pt)
	return pt
}

func (n *Node) putScratch(sc *scratch) {
	sc.free = append(sc.free, sc.parts...)
	sc.parts = sc.parts[:0]
	scratchPool.Put(sc)
}

func fill(res []Result, c result.Code) {
	for i := range res {
		res[i] = Result{Code: c, Partition: -1, Offset: -1}
	}
}

// mix is a 64-bit finalizer (splitmix64) of two words: a deterministic
// spread for an idempotent producer's keyless events, so a retry routes
// them as the first attempt did.
func mix(a, b uint64) uint64 {
	x := a*0x9e3779b97f4a7c15 ^ b
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// noCompliantHub records a refusal: a structured log line, a counter, and
// the alert hook.
func (n *Node) noCompliantHub(pipeline string, mask jurisdiction.Mask, prio event.Priority, reason router.Reason) {
	n.Metrics.dropped(pipeline, "no_compliant_hub")
	masks := n.reg.Format(mask)
	n.log.Warn("event refused: no compliant hub", "pipeline", pipeline, "mask", masks, "priority", prio.String(), "reason", reason.String())
	n.alerts.fire(pipeline, masks, prio.String(), reason.String())
}
