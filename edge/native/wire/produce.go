package wire

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
)

// PRODUCE payload:
//
//	string pipeline
//	i64    producer id     (-1: not idempotent)
//	i16    producer epoch
//	i32    base sequence   (event i has sequence base+i, wrapping at 2^31)
//	u32    event count
//	events, each:
//	  u8     field flags   (FieldKey, FieldMask, FieldPriority, FieldTimestamp, FieldValue)
//	  [u64   mask]         if FieldMask
//	  [u8    priority]     if FieldPriority
//	  [i64   timestamp ms] if FieldTimestamp
//	  [bytes key]          if FieldKey
//	  [bytes value]        if FieldValue (absent: null value)
//	  u16    header count
//	  headers, each: string key, bytes value

// Field flags of an event in a PRODUCE. The other bits are reserved and
// must be 0.
const (
	FieldKey       = 1 << 0
	FieldMask      = 1 << 1
	FieldPriority  = 1 << 2
	FieldTimestamp = 1 << 3
	FieldValue     = 1 << 4

	fieldsKnown = FieldKey | FieldMask | FieldPriority | FieldTimestamp | FieldValue
)

// MinEventSize is the smallest encoded event: field flags and header count.
const MinEventSize = 3

// minHeaderSize is the smallest encoded header: two empty lengths.
const minHeaderSize = 8

// ProduceHeader holds the fields of a PRODUCE that precede its events.
type ProduceHeader struct {
	Pipeline string
	// ProducerID is the id from INIT_PRODUCER_OK, or -1 for a producer
	// that is not idempotent (then send Epoch and BaseSequence as -1).
	ProducerID int64
	// Epoch is the producer epoch from INIT_PRODUCER_OK.
	Epoch int16
	// BaseSequence is the sequence of the first event; event i has
	// sequence BaseSequence+i, wrapping from 2^31-1 to 0.
	BaseSequence int32
}

// Header is one event header, for encoding.
type Header struct {
	Key   string
	Value []byte
}

// EventIn is one event to encode in a PRODUCE. A nil Key is an absent key
// and a nil Value a null value; a non-nil empty slice is a present, empty
// one. Mask, Priority and TimestampMs are sent only when their Has flag is
// set; absent, the server uses the pipeline's defaults (mask, priority) or
// its own clock (timestamp).
type EventIn struct {
	Key          []byte
	Value        []byte
	HasMask      bool
	Mask         jurisdiction.Mask
	HasPriority  bool
	Priority     event.Priority
	HasTimestamp bool
	TimestampMs  int64
	Headers      []Header
}

// Size returns the event's size as the limits count it: key, value, header
// keys and header values added together.
func (ev *EventIn) Size() int {
	n := len(ev.Key) + len(ev.Value)
	for i := range ev.Headers {
		n += len(ev.Headers[i].Key) + len(ev.Headers[i].Value)
	}
	return n
}

// EncodedLen returns the bytes the event takes in a PRODUCE payload.
func (ev *EventIn) EncodedLen() int {
	n := MinEventSize
	if ev.HasMask {
		n += 8
	}
	if ev.HasPriority {
		n++
	}
	if ev.HasTimestamp {
		n += 8
	}
	if ev.Key != nil {
		n += 4 + len(ev.Key)
	}
	if ev.Value != nil {
		n += 4 + len(ev.Value)
	}
	for i := range ev.Headers {
		n += minHeaderSize + len(ev.Headers[i].Key) + len(ev.Headers[i].Value)
	}
	return n
}

// ProduceEncoder builds a PRODUCE frame event by event, straight into the
// caller's buffer: Begin, Add for each event, Finish. Size tells a client
// when to stop adding before the frame passes the server's limit. The zero
// value is ready for Begin; reusing one (and the buffer) makes encoding
// allocation-free.
type ProduceEncoder struct {
	buf      []byte
	start    int // offset of the frame in buf
	countOff int // offset of the event count in buf
	n        uint32
}

// Begin starts a PRODUCE frame appended to dst.
func (e *ProduceEncoder) Begin(dst []byte, corr uint32, h ProduceHeader) {
	dst, e.start = BeginFrame(dst, TypeProduce, 0, corr)
	dst = appendString(dst, h.Pipeline)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.ProducerID))
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Epoch))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.BaseSequence))
	e.countOff = len(dst)
	e.buf = append(dst, 0, 0, 0, 0)
	e.n = 0
}

// Add appends one event. It panics if the event has more than 65535
// headers, which the encoding cannot express; check events against the
// server's limits (at most 1024 headers) before adding them.
func (e *ProduceEncoder) Add(ev EventIn) {
	if len(ev.Headers) > math.MaxUint16 {
		panic("wire: ProduceEncoder.Add: " + strconv.Itoa(len(ev.Headers)) + " headers; at most 65535 can be encoded")
	}
	var flags byte
	if ev.Key != nil {
		flags |= FieldKey
	}
	if ev.HasMask {
		flags |= FieldMask
	}
	if ev.HasPriority {
		flags |= FieldPriority
	}
	if ev.HasTimestamp {
		flags |= FieldTimestamp
	}
	if ev.Value != nil {
		flags |= FieldValue
	}
	b := append(e.buf, flags)
	if ev.HasMask {
		b = binary.BigEndian.AppendUint64(b, uint64(ev.Mask))
	}
	if ev.HasPriority {
		b = append(b, byte(ev.Priority))
	}
	if ev.HasTimestamp {
		b = binary.BigEndian.AppendUint64(b, uint64(ev.TimestampMs))
	}
	if ev.Key != nil {
		b = appendBytes(b, ev.Key)
	}
	if ev.Value != nil {
		b = appendBytes(b, ev.Value)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(ev.Headers)))
	for i := range ev.Headers {
		b = appendString(b, ev.Headers[i].Key)
		b = appendBytes(b, ev.Headers[i].Value)
	}
	e.buf = b
	e.n++
}

// Len returns the number of events added since Begin.
func (e *ProduceEncoder) Len() int { return int(e.n) }

// Size returns the frame's size so far, length field included. The length
// field will hold Size()-4.
func (e *ProduceEncoder) Size() int { return len(e.buf) - e.start }

// Finish writes the event count and the frame length, and returns dst (as
// given to Begin) with the whole frame appended.
func (e *ProduceEncoder) Finish() []byte {
	binary.BigEndian.PutUint32(e.buf[e.countOff:], e.n)
	b := EndFrame(e.buf, e.start)
	e.buf = nil
	return b
}

// AppendProduce appends a PRODUCE frame holding events.
func AppendProduce(dst []byte, corr uint32, h ProduceHeader, events []EventIn) []byte {
	var e ProduceEncoder
	e.Begin(dst, corr, h)
	for i := range events {
		e.Add(events[i])
	}
	return e.Finish()
}

// ProduceRequest is a decoded PRODUCE. Pipeline and the events alias the
// payload given to DecodeProduce; they are valid as long as it is.
type ProduceRequest struct {
	// Pipeline is the pipeline name, at most MaxPipelineLen bytes, not yet
	// checked against the naming rules (see event.ValidatePipelineName).
	// string(req.Pipeline) in a map index does not allocate.
	Pipeline     []byte
	ProducerID   int64
	Epoch        int16
	BaseSequence int32
	// Count is the number of events.
	Count  int
	events []byte
}

// Events returns an iterator over the request's events.
func (r *ProduceRequest) Events() EventIter {
	return EventIter{p: r.events, left: r.Count}
}

// Sequence returns the sequence number of event i: BaseSequence+i,
// wrapping from 2^31-1 to 0.
func (r *ProduceRequest) Sequence(i int) int32 {
	return int32((int64(r.BaseSequence) + int64(i)) % (1 << 31))
}

// DecodeProduce decodes a PRODUCE payload with the default limits; see
// Limits.DecodeProduce.
func DecodeProduce(p []byte) (ProduceRequest, error) {
	return Limits{}.DecodeProduce(p)
}

// DecodeProduce decodes a PRODUCE payload without copying it. It checks the
// fixed fields, bounds the event count by the bytes present (an event takes
// at least MinEventSize bytes) and by l.MaxEventsPerProduce, and then walks
// every event once, checking each length against the bytes left, so that a
// request is refused whole or not at all: once DecodeProduce has accepted
// a payload, iterating its events cannot fail. It allocates nothing unless
// it returns an error.
//
// Errors match result.ErrMalformed (the server answers ERROR MALFORMED and closes
// the connection), result.ErrInvalidPipelineName (a name over MaxPipelineLen) or
// result.ErrRequestTooLarge (too many events); the latter two leave the connection
// usable. Per-event limits (size, header count, mask 0, priority) are not
// checked here: see Limits.CheckEvent.
func (l Limits) DecodeProduce(p []byte) (ProduceRequest, error) {
	var r ProduceRequest
	c := newCursor(TypeProduce, p)
	r.Pipeline = c.pipeline()
	r.ProducerID = int64(c.u64("producer id"))
	r.Epoch = int16(c.u16("epoch"))
	r.BaseSequence = int32(c.u32("base sequence"))
	n := c.u32("event count")
	if c.err != nil {
		return ProduceRequest{}, c.err
	}
	if uint64(n) > uint64(c.left()/MinEventSize) {
		return ProduceRequest{}, malformed(TypeProduce, "event count %d cannot fit in %d bytes (an event takes at least %d)", n, c.left(), MinEventSize)
	}
	if limit := l.withDefaults().MaxEventsPerProduce; uint64(n) > uint64(limit) {
		return ProduceRequest{}, &result.Error{Code: result.RequestTooLarge, Message: "PRODUCE: " + strconv.FormatUint(uint64(n), 10) +
			" events; at most " + strconv.Itoa(limit) + " are allowed in one request"}
	}
	r.Count = int(n)
	r.events = c.rest()
	off := 0
	for i := range r.Count {
		m, err := skipEvent(r.events[off:])
		if err != nil {
			return ProduceRequest{}, eventError(i, err)
		}
		off += m
	}
	if off != len(r.events) {
		return ProduceRequest{}, malformed(TypeProduce, "%d bytes after the last event", len(r.events)-off)
	}
	return r, nil
}

// eventError reports a malformed event, naming its index.
func eventError(i int, err error) error {
	return &result.Error{Code: result.Malformed, Message: "PRODUCE: event " + strconv.Itoa(i) + ": " + err.Error()}
}

// Event is a view of one event of a PRODUCE. Key, Value and the headers
// alias the payload. Key is nil when absent and Value nil when null; a
// present empty field is a non-nil empty slice.
type Event struct {
	Key          []byte
	Value        []byte
	HasMask      bool
	Mask         jurisdiction.Mask
	HasPriority  bool
	Priority     event.Priority
	HasTimestamp bool
	TimestampMs  int64
	// NumHeaders is the number of headers.
	NumHeaders int
	// Size is the event's size as the limits count it: key, value, header
	// keys and header values added together.
	Size    int
	headers []byte
}

// Headers returns an iterator over the event's headers.
func (ev *Event) Headers() HeaderIter { return HeaderIter{p: ev.headers, left: ev.NumHeaders} }

// HeaderIter walks an event's headers. The event iterator has validated
// them, so it cannot fail.
type HeaderIter struct {
	p    []byte
	left int
}

// Next returns the next header's key and value, aliasing the payload, or
// ok=false when none is left.
func (it *HeaderIter) Next() (key, value []byte, ok bool) {
	if it.left <= 0 {
		return nil, nil, false
	}
	it.left--
	var err error
	if key, it.p, err = takeBytes(it.p); err != nil {
		it.left = 0
		return nil, nil, false
	}
	if value, it.p, err = takeBytes(it.p); err != nil {
		it.left = 0
		return nil, nil, false
	}
	return key, value, true
}

// EventIter walks the events of a PRODUCE without allocating:
//
//	it := req.Events()
//	for it.Next() {
//		ev := it.Event()
//		...
//	}
//	if err := it.Err(); err != nil { ... }
//
// It checks every length against the bytes left before using it; on
// malformed data it stops, and Err returns an error matching result.ErrMalformed
// that names the event's index. For a request that DecodeProduce accepted
// it never fails.
type EventIter struct {
	p    []byte
	left int
	idx  int // events decoded so far
	ev   Event
	err  error
	done bool
}

// Next decodes the next event; it returns false at the end or on error.
func (it *EventIter) Next() bool {
	if it.err != nil || it.done {
		return false
	}
	if it.left == 0 {
		it.done = true
		if len(it.p) != 0 {
			it.err = malformed(TypeProduce, "%d bytes after the last event", len(it.p))
		}
		return false
	}
	n, err := parseEvent(it.p, &it.ev)
	if err != nil {
		it.err = eventError(it.idx, err)
		return false
	}
	it.p = it.p[n:]
	it.left--
	it.idx++
	return true
}

// Event returns the event decoded by the last call to Next. The pointer is
// reused by the next call.
func (it *EventIter) Event() *Event { return &it.ev }

// Index returns the index of the event last returned by Next (0 for the
// first), which is the index of its entry in PRODUCE_RESULT.
func (it *EventIter) Index() int { return it.idx - 1 }

// Err returns the error that stopped the iteration, if any.
func (it *EventIter) Err() error { return it.err }

// parseError is a short, static description of what is wrong with an
// event; the iterator prefixes it with the event index.
type parseError string

func (e parseError) Error() string { return string(e) }

const (
	errEventShort   = parseError("truncated event")
	errFieldFlags   = parseError("reserved field flag bits are set")
	errFieldLength  = parseError("key or value length exceeds the bytes left")
	errHeaderCount  = parseError("header count exceeds what the bytes left can hold")
	errHeaderLength = parseError("header key or value length exceeds the bytes left")
)

// parseEvent decodes the event at the start of p into ev and returns its
// encoded length. Every length is checked against the bytes left.
func parseEvent(p []byte, ev *Event) (int, error) {
	if len(p) < MinEventSize {
		return 0, errEventShort
	}
	flags := p[0]
	if flags&^fieldsKnown != 0 {
		return 0, errFieldFlags
	}
	off := 1
	need := 2 // header count
	if flags&FieldMask != 0 {
		need += 8
	}
	if flags&FieldPriority != 0 {
		need++
	}
	if flags&FieldTimestamp != 0 {
		need += 8
	}
	if flags&FieldKey != 0 {
		need += 4
	}
	if flags&FieldValue != 0 {
		need += 4
	}
	if need > len(p)-off {
		return 0, errEventShort
	}
	*ev = Event{}
	if flags&FieldMask != 0 {
		ev.HasMask = true
		ev.Mask = jurisdiction.Mask(binary.BigEndian.Uint64(p[off:]))
		off += 8
	}
	if flags&FieldPriority != 0 {
		ev.HasPriority = true
		ev.Priority = event.Priority(p[off])
		off++
	}
	if flags&FieldTimestamp != 0 {
		ev.HasTimestamp = true
		ev.TimestampMs = int64(binary.BigEndian.Uint64(p[off:]))
		off += 8
	}
	// need-2 bytes of fixed fields are consumed; what is left must still
	// hold the lengths and the header count, which need accounts for.
	if flags&FieldKey != 0 {
		n := binary.BigEndian.Uint32(p[off:])
		off += 4
		// Bytes still required after the key: value length (if any) and
		// the header count.
		after := 2
		if flags&FieldValue != 0 {
			after += 4
		}
		if uint64(n) > uint64(len(p)-off-after) {
			return 0, errFieldLength
		}
		ev.Key = p[off : off+int(n) : off+int(n)]
		off += int(n)
	}
	if flags&FieldValue != 0 {
		n := binary.BigEndian.Uint32(p[off:])
		off += 4
		if uint64(n) > uint64(len(p)-off-2) {
			return 0, errFieldLength
		}
		ev.Value = p[off : off+int(n) : off+int(n)]
		off += int(n)
	}
	nh := int(binary.BigEndian.Uint16(p[off:]))
	off += 2
	if nh > (len(p)-off)/minHeaderSize {
		return 0, errHeaderCount
	}
	size := len(ev.Key) + len(ev.Value)
	hstart := off
	for range nh {
		for range 2 { // key, value
			if len(p)-off < 4 {
				return 0, errHeaderLength
			}
			n := binary.BigEndian.Uint32(p[off:])
			off += 4
			if uint64(n) > uint64(len(p)-off) {
				return 0, errHeaderLength
			}
			off += int(n)
			size += int(n)
		}
	}
	ev.headers = p[hstart:off:off]
	ev.NumHeaders = nh
	ev.Size = size
	return off, nil
}

// skipEvent returns the encoded length of the event at the start of p,
// checking it exactly as parseEvent does, without decoding it.
func skipEvent(p []byte) (int, error) {
	if len(p) < MinEventSize {
		return 0, errEventShort
	}
	flags := p[0]
	if flags&^fieldsKnown != 0 {
		return 0, errFieldFlags
	}
	off := 1
	if flags&FieldMask != 0 {
		off += 8
	}
	if flags&FieldPriority != 0 {
		off++
	}
	if flags&FieldTimestamp != 0 {
		off += 8
	}
	if off+2 > len(p) {
		return 0, errEventShort
	}
	for _, f := range [2]byte{FieldKey, FieldValue} {
		if flags&f == 0 {
			continue
		}
		if len(p)-off < 4+2 {
			return 0, errEventShort
		}
		n := binary.BigEndian.Uint32(p[off:])
		off += 4
		if uint64(n) > uint64(len(p)-off-2) {
			return 0, errFieldLength
		}
		off += int(n)
	}
	nh := int(binary.BigEndian.Uint16(p[off:]))
	off += 2
	if nh > (len(p)-off)/minHeaderSize {
		return 0, errHeaderCount
	}
	for range 2 * nh { // key and value of each header
		if len(p)-off < 4 {
			return 0, errHeaderLength
		}
		n := binary.BigEndian.Uint32(p[off:])
		off += 4
		if uint64(n) > uint64(len(p)-off) {
			return 0, errHeaderLength
		}
		off += int(n)
	}
	return off, nil
}

// takeBytes reads a u32 length and that many bytes from p.
func takeBytes(p []byte) (b, rest []byte, err error) {
	if len(p) < 4 {
		return nil, nil, errHeaderLength
	}
	n := binary.BigEndian.Uint32(p)
	p = p[4:]
	if uint64(n) > uint64(len(p)) {
		return nil, nil, errHeaderLength
	}
	return p[:n:n], p[n:], nil
}

// CheckEvent applies the per-event rules of a PRODUCE and returns the code
// to report in the event's PRODUCE_RESULT entry, or result.OK:
// EVENT_TOO_LARGE when Size is over MaxEventBytes or NumHeaders over
// MaxHeaders, INVALID_MASK for a present mask of 0, INVALID_PRIORITY for a
// present priority other than low, medium or critical. It does not check
// the mask against a jurisdiction registry. It allocates nothing.
func (l Limits) CheckEvent(ev *Event) result.Code {
	l = l.withDefaults()
	switch {
	case ev.Size > l.MaxEventBytes || ev.NumHeaders > l.MaxHeaders:
		return result.EventTooLarge
	case ev.HasMask && ev.Mask == 0:
		return result.InvalidMask
	case ev.HasPriority && !ev.Priority.Valid():
		return result.InvalidPriority
	}
	return result.OK
}

// PRODUCE_RESULT payload:
//
//	u32 count (the event count of the PRODUCE)
//	per event, in the request's order:
//	  u16 code       (result.OK when stored)
//	  i32 partition  (-1 when refused)
//	  i64 offset     (-1 when refused)

// resultSize is the encoded size of one PRODUCE_RESULT entry.
const resultSize = 2 + 4 + 8

// EventResult is the outcome of one event of a PRODUCE.
type EventResult struct {
	Code      result.Code
	Partition int32
	Offset    int64
}

// AppendProduceResult appends a PRODUCE_RESULT frame with one entry per
// event, in the request's order.
func AppendProduceResult(dst []byte, corr uint32, results []EventResult) []byte {
	dst, start := BeginFrame(dst, TypeProduceResult, 0, corr)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(results)))
	for i := range results {
		dst = binary.BigEndian.AppendUint16(dst, uint16(results[i].Code))
		dst = binary.BigEndian.AppendUint32(dst, uint32(results[i].Partition))
		dst = binary.BigEndian.AppendUint64(dst, uint64(results[i].Offset))
	}
	return EndFrame(dst, start)
}

// ProduceResult is a decoded PRODUCE_RESULT: a view of the payload with
// random access to its entries. It is valid as long as the payload is.
type ProduceResult struct {
	p []byte
	n int
}

// DecodeProduceResult checks that the payload holds exactly the entries its
// count announces and returns a view of them. It allocates nothing unless
// the payload is malformed.
func DecodeProduceResult(p []byte) (ProduceResult, error) {
	c := newCursor(TypeProduceResult, p)
	n := c.u32("count")
	if c.err != nil {
		return ProduceResult{}, c.err
	}
	if uint64(n)*resultSize != uint64(c.left()) {
		return ProduceResult{}, malformed(TypeProduceResult, "count %d needs %d bytes of entries, %d present", n, uint64(n)*resultSize, c.left())
	}
	return ProduceResult{p: c.rest(), n: int(n)}, nil
}

// Len returns the number of entries.
func (r ProduceResult) Len() int { return r.n }

// At returns entry i; it panics if i is out of range.
func (r ProduceResult) At(i int) EventResult {
	if uint(i) >= uint(r.n) {
		panic("wire: ProduceResult.At: index " + strconv.Itoa(i) + " out of range [0, " + strconv.Itoa(r.n) + ")")
	}
	b := r.p[i*resultSize : (i+1)*resultSize]
	return EventResult{
		Code:      result.Code(binary.BigEndian.Uint16(b)),
		Partition: int32(binary.BigEndian.Uint32(b[2:])),
		Offset:    int64(binary.BigEndian.Uint64(b[6:])),
	}
}

// AppendTo appends every entry to dst and returns the extended slice.
func (r ProduceResult) AppendTo(dst []EventResult) []EventResult {
	for i := range r.n {
		dst = append(dst, r.At(i))
	}
	return dst
}
