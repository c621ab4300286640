package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
)

// Record is one stored event, as read back.
type Record struct {
	Pipeline  string
	Partition int32
	// Hub is the hub holding the partition (from the pipeline's layout;
	// empty for records returned by Client.Fetch).
	Hub    string
	Offset int64
	// Key and Value are nil when absent (null). They alias a buffer shared
	// by the records of one DATA frame, which the consumer never reuses.
	Key, Value []byte
	// Headers are the producer's own headers, the text routing headers
	// of Kafka producers (sense.jurisdiction, sense.priority) included.
	// The binary routing headers the node writes (sense.j, sense.p) are
	// decoded into Mask and Priority instead.
	Headers []Header
	// Mask is the jurisdiction set stored with the record: its sense.j
	// header, else its sense.jurisdiction text header (codes or groups,
	// such as "MA,SN", parsed with the server's registry). 0 means that
	// the record carries neither (or only an unreadable one): no mask is
	// recorded. A stored mask is never 0.
	Mask jurisdiction.Mask
	// Priority is the priority class stored with the record: its sense.p
	// header, else its sense.priority text header. It is meaningful only
	// when HasPriority is set; otherwise it is Low, the zero value, and no
	// priority is recorded.
	Priority event.Priority
	// HasPriority reports whether the record carries a priority (see
	// Priority).
	HasPriority bool
	Timestamp   time.Time
	// Received is when the consumer read the frame that brought the
	// record (one clock reading per frame): with the producer's send time
	// it gives the record's end-to-end latency.
	Received time.Time
}

// The text routing headers a Kafka producer may set on a record; a
// record stored without the binary ones (sense.j, sense.p) is read by
// these.
const (
	headerJurisdictionText = "sense.jurisdiction"
	headerPriorityText     = "sense.priority"
)

// ConsumerOptions configure a Consumer.
type ConsumerOptions struct {
	// Pipeline is the pipeline to read (required).
	Pipeline string
	// Partitions to read; nil (or empty) means every partition of the
	// pipeline.
	Partitions []int32
	// From is where each partition starts: Earliest, Latest, or an offset
	// applied to every partition. An offset below a partition's first
	// stored offset starts at the first stored one; an offset past its
	// high watermark starts at the high watermark.
	From int64
	// Starts overrides From per partition: a consumer resuming after a
	// broken connection passes each partition's next offset. Values follow
	// the rules of From.
	Starts map[int32]int64
	// Credit is the flow-control window per partition, in bytes of record
	// batches the server may push before the consumer has read them.
	// Default 4 MiB.
	Credit uint32
}

// DefaultCredit is the per-partition window when ConsumerOptions.Credit is
// zero.
const DefaultCredit = 4 << 20

// ErrSubscriptionEnded is wrapped by the error Next returns when the
// server ended a partition's subscription without an error code.
var ErrSubscriptionEnded = errors.New("client: subscription ended by the server")

// Consumer reads a pipeline's partitions through subscriptions pushed by
// the server and paced by credit. Next returns records one at a time;
// records of one partition come in offset order, partitions interleave in
// arrival order. Next, NextWithin and Close may be called from different
// goroutines, but Next and NextWithin from one at a time;
// HighWatermarks and Positions from any.
//
// A subscription ends with an ERROR or UNSUBSCRIBED from the server, or
// with the connection: Next then returns an error naming the partition
// (a *ConnError for the connection, matching ErrConnectionLost), once,
// after the records that arrived before; the other partitions go on. The
// consumer does not resubscribe by itself: make a new Consumer from
// Positions to resume.
//
// Batches come as stored: those of Kafka producers may be compressed
// (gzip, snappy, lz4, zstd), and are decompressed one at a time, each up
// to batch.MaxDecompressed bytes. A batch that cannot be read (damaged,
// undecodable, or larger than that once decompressed) ends its partition's
// subscription: Next returns an error naming the pipeline, the partition
// and the batch's offset, wrapping batch.ErrCorrupt or batch.ErrInvalid.
type Consumer struct {
	c        *Client
	cn       *conn
	pipeline string
	reg      *jurisdiction.Registry // parses sense.jurisdiction headers
	subs     []*subscription

	mu     sync.Mutex
	queue  []item
	wake   chan struct{}
	hw     map[int32]int64
	pos    map[int32]int64
	live   int // subscriptions not yet ended
	closed bool

	nextMu sync.Mutex // Next's state below
	cur    *frameState
	it     batch.Iter
	cbuf   []byte

	// Over HTTP the consumer is this instead (the fields above stay
	// unused).
	h *httpConsumer
}

// subscription is one partition's subscription.
type subscription struct {
	cs        *Consumer
	partition int32
	hub       string
	corr      uint32

	ready   chan error // the SUBSCRIBE's answer (nil: SUBSCRIBED)
	endOnce sync.Once
	ended   chan struct{} // closed when no more frames will come

	subscribed atomic.Bool // SUBSCRIBED arrived

	// Under cs.mu.
	dead bool // ended; its queued frames are dropped
}

// item is a DATA frame's batches or a subscription's end, queued for Next.
type item struct {
	s    *subscription
	data []byte
	at   time.Time // when the frame was read
	err  error
}

// frameState walks the records of one DATA frame.
type frameState struct {
	s       *subscription
	data    []byte
	at      time.Time // when the frame was read
	off     int       // next batch in data
	inBatch bool      // it walks a batch
	left    int32     // records left in that batch
	base    int64
	baseTs  int64
	next    int64 // the offset past that batch
	granted bool
}

// NewConsumer describes the pipeline (admin op "pipeline.describe": its
// partitions and their hubs) and subscribes to each partition wanted. It
// returns once every subscription is confirmed, so that HighWatermarks
// and Positions are known.
func (c *Client) NewConsumer(ctx context.Context, opts ConsumerOptions) (*Consumer, error) {
	if opts.Credit == 0 {
		opts.Credit = DefaultCredit
	}
	if opts.From < Earliest {
		return nil, fmt.Errorf("client: ConsumerOptions.From %d: use Earliest, Latest or an offset >= 0", opts.From)
	}
	for p, from := range opts.Starts {
		if from < Earliest {
			return nil, fmt.Errorf("client: ConsumerOptions.Starts[%d] = %d: use Earliest, Latest or an offset >= 0", p, from)
		}
	}
	_, layout, err := c.Describe(ctx, opts.Pipeline)
	if err != nil {
		return nil, err
	}
	byPart := map[int32]admin.PartitionInfo{}
	for _, l := range layout {
		byPart[l.Partition] = l
	}
	parts := opts.Partitions
	if len(parts) == 0 {
		parts = nil
		for _, l := range layout {
			parts = append(parts, l.Partition)
		}
	}
	if c.h != nil {
		return c.newHTTPConsumer(ctx, opts, layout, parts)
	}
	reg, err := c.Registry(ctx)
	if err != nil {
		return nil, err
	}
	cn, err := c.flowConn(ctx)
	if err != nil {
		return nil, err
	}
	cs := &Consumer{c: c, cn: cn, pipeline: opts.Pipeline, reg: reg, wake: make(chan struct{}, 1),
		hw: map[int32]int64{}, pos: map[int32]int64{}}
	seen := map[int32]bool{}
	for _, p := range parts {
		l, ok := byPart[p]
		if !ok {
			c.releaseFlow(cn)
			return nil, fmt.Errorf("client: pipeline %s has no partition %d (it has %d)", opts.Pipeline, p, len(layout))
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		cs.subs = append(cs.subs, &subscription{cs: cs, partition: p, hub: l.Hub, ready: make(chan error, 1), ended: make(chan struct{})})
	}
	// Subscribe to every partition, then wait for the answers.
	var errs []error
	started := cs.subs[:0:0]
	for _, s := range cs.subs {
		from := opts.From
		if f, ok := opts.Starts[s.partition]; ok {
			from = f
		}
		if from >= 0 {
			l := byPart[s.partition]
			from = min(max(from, l.Start), l.HighWatermark)
		}
		corr, err := cn.register(s)
		if err != nil {
			errs = append(errs, err)
			break
		}
		s.corr = corr
		m := wire.Subscribe{Pipeline: opts.Pipeline, Partition: s.partition, Offset: from, Credit: opts.Credit}
		if err := cn.write(wire.AppendSubscribe(nil, corr, m)); err != nil {
			errs = append(errs, err)
			break
		}
		started = append(started, s)
	}
	for _, s := range started {
		select {
		case err := <-s.ready:
			if err != nil {
				errs = append(errs, fmt.Errorf("client: subscribe to %s partition %d: %w", opts.Pipeline, s.partition, err))
			}
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
		}
		if len(errs) > 0 {
			break
		}
	}
	cs.live = len(cs.subs)
	if len(errs) > 0 {
		cs.Close()
		return nil, errors.Join(errs...)
	}
	return cs, nil
}

// handle receives the frames of the subscription (reader goroutine).
func (s *subscription) handle(f wire.Frame) bool {
	cs := s.cs
	switch f.Type {
	case wire.TypeSubscribed:
		m, err := wire.DecodeSubscribed(f.Payload)
		if err != nil {
			s.cs.cn.fail(err)
			return true
		}
		cs.mu.Lock()
		cs.hw[s.partition] = m.HighWatermark
		cs.pos[s.partition] = m.StartOffset
		cs.mu.Unlock()
		s.subscribed.Store(true)
		s.answer(nil)
		return false
	case wire.TypeData:
		m, err := wire.DecodeData(f.Payload)
		if err != nil {
			s.cs.cn.fail(err)
			return true
		}
		cs.mu.Lock()
		cs.hw[s.partition] = m.HighWatermark
		if len(m.Batches) > 0 && !s.dead {
			cs.queue = append(cs.queue, item{s: s, data: append([]byte(nil), m.Batches...), at: time.Now()})
		}
		cs.mu.Unlock()
		cs.signal()
		return false
	case wire.TypeError:
		e, err := wire.DecodeError(f.Payload)
		if err != nil {
			s.cs.cn.fail(err)
			return true
		}
		s.end(e)
		return true
	case wire.TypeUnsubscribed:
		s.end(ErrSubscriptionEnded)
		return true
	}
	s.cs.cn.fail(fmt.Errorf("%w: %s frame on a subscription", ErrProtocol, f.Type))
	return true
}

func (s *subscription) closed(err error) { s.end(err) }

// answer reports the SUBSCRIBE's outcome; only the first one counts.
func (s *subscription) answer(err error) {
	select {
	case s.ready <- err:
	default:
	}
}

// end records the end of the subscription: before SUBSCRIBED it is the
// SUBSCRIBE's answer, after it an item for Next.
func (s *subscription) end(err error) {
	s.endOnce.Do(func() {
		if !s.subscribed.Load() {
			s.answer(err)
		} else {
			cs := s.cs
			cs.mu.Lock()
			if !cs.closed && !s.dead {
				cs.queue = append(cs.queue, item{s: s, err: err})
			}
			cs.mu.Unlock()
			cs.signal()
		}
		close(s.ended)
	})
}

func (cs *Consumer) signal() {
	select {
	case cs.wake <- struct{}{}:
	default:
	}
}

// Next returns the next record, waiting until one arrives or ctx ends. It
// grants credit back to the server once it has handed out the records of
// a DATA frame.
func (cs *Consumer) Next(ctx context.Context) (Record, error) {
	return cs.next(ctx, 0)
}

// next is Next; a wait d > 0 bounds the time spent blocked, with
// ErrNoRecord at its end. The timer is made only when next would block,
// so a consumer that keeps up pays nothing for it.
func (cs *Consumer) next(ctx context.Context, d time.Duration) (Record, error) {
	if cs.h != nil {
		return cs.h.next(ctx, d)
	}
	var timeout <-chan time.Time
	cs.nextMu.Lock()
	defer cs.nextMu.Unlock()
	for {
		if fs := cs.cur; fs != nil {
			rec, ok, err := cs.nextInFrame(fs)
			if err != nil {
				cs.cur = nil
				cs.kill(fs.s)
				return Record{}, err
			}
			if ok {
				return rec, nil
			}
			cs.grant(fs)
			cs.cur = nil
		}
		cs.mu.Lock()
		if cs.closed {
			cs.mu.Unlock()
			return Record{}, ErrClosed
		}
		if len(cs.queue) > 0 {
			it := cs.queue[0]
			cs.queue[0] = item{}
			cs.queue = cs.queue[1:]
			if it.s.dead {
				cs.mu.Unlock()
				continue
			}
			if it.err != nil {
				it.s.dead = true
				cs.live--
				cs.mu.Unlock()
				return Record{}, fmt.Errorf("client: subscription to %s partition %d ended: %w", cs.pipeline, it.s.partition, it.err)
			}
			cs.mu.Unlock()
			cs.cur = &frameState{s: it.s, data: it.data, at: it.at}
			continue
		}
		if cs.live == 0 {
			cs.mu.Unlock()
			return Record{}, fmt.Errorf("client: every subscription of this consumer to %s has ended", cs.pipeline)
		}
		cs.mu.Unlock()
		if d > 0 && timeout == nil {
			t := time.NewTimer(d)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-cs.wake:
		case <-timeout:
			return Record{}, ErrNoRecord
		case <-ctx.Done():
			return Record{}, ctx.Err()
		}
	}
}

// NextWithin is Next waiting at most d: after d without a record it
// returns ErrNoRecord. If ctx ends first it returns ctx's error.
func (cs *Consumer) NextWithin(ctx context.Context, d time.Duration) (Record, error) {
	if d <= 0 {
		d = time.Nanosecond
	}
	return cs.next(ctx, d)
}

// nextInFrame returns the frame's next record at or past the partition's
// position; ok=false when the frame holds no more. A batch it cannot read
// (damaged, a codec's data that does not decode, or records that would
// decompress past batch.MaxDecompressed) is an error naming the batch:
// the subscription cannot go past it.
func (cs *Consumer) nextInFrame(fs *frameState) (Record, bool, error) {
	s := fs.s
	for {
		if fs.inBatch {
			if cs.it.Next() {
				fs.left--
				r := cs.it.Record()
				off := fs.base + int64(r.OffsetDelta)
				cs.mu.Lock()
				pos := cs.pos[s.partition]
				if off >= pos {
					cs.pos[s.partition] = off + 1
				}
				cs.mu.Unlock()
				if off < pos {
					continue // before the start offset, or already delivered
				}
				rec := Record{Pipeline: cs.pipeline, Partition: s.partition, Hub: s.hub, Offset: off,
					Key: r.Key, Value: r.Value, Timestamp: time.UnixMilli(fs.baseTs + r.TimestampDelta), Received: fs.at}
				decodeHeaders(cs.reg, r, &rec)
				if fs.left == 0 && fs.off == len(fs.data) {
					cs.grant(fs) // the frame's last record: its bytes are handed out
				}
				return rec, true, nil
			}
			fs.inBatch = false
			if err := cs.it.Err(); err != nil {
				return Record{}, false, batchError(cs.pipeline, s.partition, fs.base, err)
			}
			cs.advance(s.partition, fs.next) // past offsets the batch holds no record for
		}
		if fs.off >= len(fs.data) {
			return Record{}, false, nil
		}
		b, h, err := nextBatch(fs.data, &fs.off)
		if err != nil {
			return Record{}, false, fmt.Errorf("client: %s partition %d: %w", cs.pipeline, s.partition, err)
		}
		cs.mu.Lock()
		pos := cs.pos[s.partition]
		cs.mu.Unlock()
		if h.NextOffset() <= pos {
			continue
		}
		if h.Attributes&batch.AttrControl != 0 {
			cs.advance(s.partition, h.NextOffset())
			continue
		}
		records, err := batchRecords(b, &h)
		if err == nil {
			err = cs.it.ResetRecords(records, h.RecordCount)
		}
		if err != nil {
			return Record{}, false, batchError(cs.pipeline, s.partition, h.BaseOffset, err)
		}
		fs.inBatch, fs.left, fs.base, fs.baseTs, fs.next = true, h.RecordCount, h.BaseOffset, h.BaseTimestamp, h.NextOffset()
	}
}

// advance moves partition p's position up to off, past offsets that hold
// no record to return (control batches, records removed by compaction), so
// that Positions reaches the high watermark.
func (cs *Consumer) advance(p int32, off int64) {
	cs.mu.Lock()
	if off > cs.pos[p] {
		cs.pos[p] = off
	}
	cs.mu.Unlock()
}

// nextBatch returns the batch at data[*off:] and advances *off past it.
func nextBatch(data []byte, off *int) ([]byte, batch.Header, error) {
	n, err := batch.Size(data[*off:])
	if err != nil {
		return nil, batch.Header{}, err
	}
	if n > len(data)-*off {
		return nil, batch.Header{}, fmt.Errorf("%w: batch of %d bytes, %d present", batch.ErrShort, n, len(data)-*off)
	}
	b := data[*off : *off+n]
	*off += n
	h, err := batch.ParseHeader(b)
	if err != nil {
		return nil, h, err
	}
	return b, h, nil
}

// batchRecords checks batch b (CRC included) and returns its records
// section, decompressed when the batch is compressed (gzip, snappy, lz4,
// zstd). Decompressed records get a buffer of their own, never reused,
// since Records alias it; batch.Decompress bounds it at
// batch.MaxDecompressed bytes.
func batchRecords(b []byte, h *batch.Header) ([]byte, error) {
	records, err := batch.Decompress(nil, b)
	if err != nil && h.Compression() != batch.CompressionNone {
		return nil, fmt.Errorf("%s-compressed: %w", codecName(h.Compression()), err)
	}
	return records, err
}

// batchError is the error for a batch that cannot be read. It wraps the
// cause: batch.ErrCorrupt for damaged data, batch.ErrInvalid for records
// past batch.MaxDecompressed or counts that contradict each other.
func batchError(pipeline string, partition int32, base int64, err error) error {
	return fmt.Errorf("client: %s partition %d: batch at offset %d cannot be read: %w", pipeline, partition, base, err)
}

func codecName(c int) string {
	switch c {
	case batch.CompressionGzip:
		return "gzip"
	case batch.CompressionSnappy:
		return "snappy"
	case batch.CompressionLZ4:
		return "lz4"
	case batch.CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec-%d", c)
}

// decodeHeaders fills rec's Headers, Mask, Priority and HasPriority from
// r's headers: the binary routing headers (sense.j, sense.p) first, else
// the text ones (sense.jurisdiction parsed with reg, sense.priority). A
// malformed binary header is kept in Headers as it is.
func decodeHeaders(reg *jurisdiction.Registry, r *batch.Record, rec *Record) {
	if r.NumHeaders == 0 {
		return
	}
	hi := r.Headers()
	for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
		switch string(k) {
		case event.HeaderMask:
			if m, err := event.DecodeMaskHeader(v); err == nil {
				rec.Mask = m
				continue
			}
		case event.HeaderPriority:
			if p, err := event.DecodePriorityHeader(v); err == nil {
				rec.Priority, rec.HasPriority = p, true
				continue
			}
		}
		rec.Headers = append(rec.Headers, Header{Key: string(k), Value: v})
	}
	textRouting(reg, rec)
}

// textRouting fills in the mask and priority that rec's binary headers
// left unrecorded from its text headers sense.jurisdiction and
// sense.priority (the first of each counts), as Kafka producers write
// them and as the node stored them before it wrote binary headers into
// every record. A text header that does not parse (a code the registry
// no longer has, say) leaves the field unrecorded; the header stays in
// rec.Headers for all to see.
func textRouting(reg *jurisdiction.Registry, rec *Record) {
	needMask, needPrio := rec.Mask == 0 && reg != nil, !rec.HasPriority
	for i := 0; i < len(rec.Headers) && (needMask || needPrio); i++ {
		h := &rec.Headers[i]
		switch h.Key {
		case headerJurisdictionText:
			if needMask {
				needMask = false
				if m, err := reg.Parse(string(h.Value)); err == nil {
					rec.Mask = m
				}
			}
		case headerPriorityText:
			if needPrio {
				needPrio = false
				if p, err := event.ParsePriority(string(h.Value)); err == nil {
					rec.Priority, rec.HasPriority = p, true
				}
			}
		}
	}
}

// grant gives the frame's batch bytes back to the server as credit, once.
func (cs *Consumer) grant(fs *frameState) {
	if fs.granted {
		return
	}
	fs.granted = true
	cs.mu.Lock()
	dead := fs.s.dead
	cs.mu.Unlock()
	if dead {
		return
	}
	cs.cbuf = wire.AppendCredit(cs.cbuf[:0], fs.s.corr, uint32(len(fs.data)))
	cs.cn.write(cs.cbuf) // an error ends the subscriptions; Next reports it
}

// kill ends a subscription whose data the consumer cannot read.
func (cs *Consumer) kill(s *subscription) {
	cs.mu.Lock()
	if s.dead {
		cs.mu.Unlock()
		return
	}
	s.dead = true
	cs.live--
	cs.mu.Unlock()
	cs.cn.write(wire.AppendUnsubscribe(nil, s.corr))
}

// HighWatermarks returns the last known high watermark of each partition
// (from SUBSCRIBED and DATA frames): the offset the next stored event
// will get.
//
// Over HTTP the event stream carries no high watermark: it is the one of
// the pipeline's layout when the consumer started, raised past each
// record returned.
func (cs *Consumer) HighWatermarks() map[int32]int64 {
	if cs.h != nil {
		return cs.h.snapshot(cs.h.hw)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return maps.Clone(cs.hw)
}

// Positions returns, per partition, the offset of the next record Next
// will return: the last returned offset plus one, or the start offset.
func (cs *Consumer) Positions() map[int32]int64 {
	if cs.h != nil {
		return cs.h.snapshot(cs.h.pos)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return maps.Clone(cs.pos)
}

// Partitions returns the partitions the consumer reads.
func (cs *Consumer) Partitions() []int32 {
	if cs.h != nil {
		return cs.h.partitions()
	}
	out := make([]int32, len(cs.subs))
	for i, s := range cs.subs {
		out[i] = s.partition
	}
	slices.Sort(out)
	return out
}

// Close ends every subscription (UNSUBSCRIBE, waiting up to 5s for the
// server's UNSUBSCRIBED). Next then returns ErrClosed. Close does not
// close the Client.
func (cs *Consumer) Close() error {
	if cs.h != nil {
		cs.h.close()
		return nil
	}
	cs.mu.Lock()
	if cs.closed {
		cs.mu.Unlock()
		return nil
	}
	cs.closed = true
	cs.queue = nil
	cs.mu.Unlock()
	cs.signal()
	defer cs.c.releaseFlow(cs.cn) // over QUIC, the consumer's own stream
	var waits []*subscription
	for _, s := range cs.subs {
		if s.corr == 0 {
			continue
		}
		select {
		case <-s.ended:
			continue
		default:
		}
		if cs.cn.write(wire.AppendUnsubscribe(nil, s.corr)) == nil {
			waits = append(waits, s)
		}
	}
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for _, s := range waits {
		select {
		case <-s.ended:
		case <-timeout.C:
			return fmt.Errorf("client: no UNSUBSCRIBED from the server within 5s")
		}
	}
	return nil
}

// FetchResult is what Client.Fetch read.
type FetchResult struct {
	Records []Record
	// HighWatermark is the partition's high watermark (-1 when unknown).
	HighWatermark int64
	// NextOffset is the offset to fetch next: past the last batch
	// returned, or the offset asked for when none was.
	NextOffset int64
}

// Fetch reads once from one partition (FETCH), without a subscription:
// whole batches from offset (an offset, Earliest or Latest), up to about
// maxBytes (0: the server's maximum; the first batch comes whole even if
// larger). It does not wait for data: no records means none at that
// offset yet. A refusal (UNKNOWN_PIPELINE, OFFSET_OUT_OF_RANGE, ...) is a
// *result.Error.
//
// Compressed batches (gzip, snappy, lz4, zstd) are decompressed, up to
// batch.MaxDecompressed bytes each. A batch that cannot be read is an
// error naming it, returned with the records of the batches before it;
// NextOffset then points at it.
//
// Over HTTP, Fetch is a GET of up to 10,000 records (maxBytes does not
// apply), and the records' Headers come sorted by key; the server's
// "priority" field is empty for a record that has none recorded, so
// HasPriority means the same as over TCP.
func (c *Client) Fetch(ctx context.Context, pipeline string, partition int32, offset int64, maxBytes int) (FetchResult, error) {
	if c.h != nil {
		res, err := c.fetchHTTP(ctx, pipeline, partition, offset)
		if len(res.Records) > 0 {
			reg, _ := c.Registry(ctx) // cached by fetchHTTP
			for i := range res.Records {
				r := &res.Records[i]
				r.HasPriority = r.Priority != event.Low
				textRouting(reg, r)
			}
		}
		return res, err
	}
	reg, err := c.Registry(ctx)
	if err != nil {
		return FetchResult{HighWatermark: -1, NextOffset: offset}, err
	}
	res := FetchResult{HighWatermark: -1, NextOffset: offset}
	cn, err := c.conn(ctx)
	if err != nil {
		return res, err
	}
	out, err := cn.roundTrip(ctx, wire.TypeFetchResult, func(dst []byte, corr uint32) []byte {
		return wire.AppendFetch(dst, corr, wire.Fetch{Pipeline: pipeline, Partition: partition, Offset: offset, MaxBytes: uint32(max(0, maxBytes))})
	})
	if err != nil {
		return res, err
	}
	m, err := wire.DecodeFetchResult(out)
	if err != nil {
		return res, err
	}
	res.HighWatermark = m.HighWatermark
	if m.Code != result.OK {
		return res, &result.Error{Code: m.Code, Message: fmt.Sprintf("FETCH %s partition %d at %d", pipeline, partition, offset)}
	}
	var it batch.Iter
	for off := 0; off < len(m.Batches); {
		b, h, err := nextBatch(m.Batches, &off)
		if err != nil {
			return res, fmt.Errorf("client: %s partition %d: %w", pipeline, partition, err)
		}
		if h.Attributes&batch.AttrControl != 0 {
			res.NextOffset = h.NextOffset()
			continue
		}
		records, err := batchRecords(b, &h)
		if err == nil {
			err = it.ResetRecords(records, h.RecordCount)
		}
		if err != nil {
			res.NextOffset = max(res.NextOffset, h.BaseOffset)
			return res, batchError(pipeline, partition, h.BaseOffset, err)
		}
		n := len(res.Records)
		for it.Next() {
			r := it.Record()
			o := h.BaseOffset + int64(r.OffsetDelta)
			if o < offset {
				continue
			}
			rec := Record{Pipeline: pipeline, Partition: partition, Offset: o, Key: r.Key, Value: r.Value,
				Timestamp: time.UnixMilli(h.BaseTimestamp + r.TimestampDelta)}
			decodeHeaders(reg, r, &rec)
			res.Records = append(res.Records, rec)
		}
		if err := it.Err(); err != nil {
			res.Records = res.Records[:n] // the batch is returned whole or not at all
			res.NextOffset = max(res.NextOffset, h.BaseOffset)
			return res, batchError(pipeline, partition, h.BaseOffset, err)
		}
		res.NextOffset = h.NextOffset()
	}
	return res, nil
}
