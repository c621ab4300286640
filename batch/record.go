package batch

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// Records are laid out inside an uncompressed batch as
//
//	varint  length (of what follows)
//	int8    attributes (unused, 0)
//	varlong timestamp delta (from the batch's base timestamp)
//	varint  offset delta (from the batch's base offset)
//	varint  key length (-1: null), key bytes
//	varint  value length (-1: null), value bytes
//	varint  header count, then per header:
//	        varint key length, key bytes, varint value length (-1: null), value bytes
//
// Varints are zig-zag encoded, as in protocol buffers.

// RecordHeader is one record header.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Record is one decoded record. Key, Value and the header bytes alias the
// batch; they are valid as long as the batch's bytes are.
type Record struct {
	TimestampDelta int64
	OffsetDelta    int32
	Key            []byte // nil when the key is null
	Value          []byte // nil when the value is null
	NumHeaders     int
	headers        []byte
}

// Size is the bytes of the record's key, value and headers (as encoded).
func (r *Record) Size() int { return len(r.Key) + len(r.Value) + len(r.headers) }

// Headers returns an iterator over the record's headers.
func (r *Record) Headers() HeaderIter { return HeaderIter{p: r.headers, left: r.NumHeaders} }

// HeaderIter walks the headers of a record without allocating.
type HeaderIter struct {
	p    []byte
	left int
}

// Next returns the next header's key and value (nil for a null value). It
// returns ok=false when no headers are left.
func (it *HeaderIter) Next() (key, value []byte, ok bool) {
	if it.left <= 0 {
		return nil, nil, false
	}
	it.left--
	var err error
	// The record iterator has already validated these bytes.
	if key, it.p, err = readBytes(it.p); err != nil || key == nil {
		it.left = 0
		return nil, nil, false
	}
	if value, it.p, err = readBytes(it.p); err != nil {
		it.left = 0
		return nil, nil, false
	}
	return key, value, true
}

// Iter walks the records of an uncompressed batch. Use it as
//
//	it, err := batch.NewIter(p)
//	for it.Next() { r := it.Record(); ... }
//	if err := it.Err(); err != nil { ... }
type Iter struct {
	p    []byte
	left int32
	rec  Record
	err  error
}

// NewIter checks that p holds one well-formed, uncompressed batch (see
// Check) and returns an iterator over its records.
func NewIter(p []byte) (*Iter, error) {
	it := new(Iter)
	return it, it.Reset(p)
}

// Reset points the iterator at a new batch, reusing it.
func (it *Iter) Reset(p []byte) error {
	*it = Iter{}
	h, err := Check(p)
	if err != nil {
		it.err = err
		return err
	}
	if h.Compression() != CompressionNone {
		it.err = fmt.Errorf("%w: records are compressed with codec %d; decompress first", ErrInvalid, h.Compression())
		return it.err
	}
	it.p = p[HeaderSize:]
	it.left = h.RecordCount
	return nil
}

// Next decodes the next record; it returns false at the end or on error.
func (it *Iter) Next() bool {
	if it.err != nil {
		return false
	}
	if it.left == 0 {
		if len(it.p) != 0 {
			it.err = fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(it.p))
		}
		return false
	}
	it.left--
	rec, rest, err := decodeRecord(it.p)
	if err != nil {
		it.err = err
		return false
	}
	it.rec, it.p = rec, rest
	return true
}

// Record returns the record decoded by the last call to Next.
func (it *Iter) Record() *Record { return &it.rec }

// Err returns the first error met.
func (it *Iter) Err() error { return it.err }

func decodeRecord(p []byte) (Record, []byte, error) {
	var r Record
	n, p, err := readVarint32(p)
	if err != nil {
		return r, nil, err
	}
	if n < 0 || n > int64(len(p)) {
		return r, nil, fmt.Errorf("%w: record length %d with %d bytes left", ErrCorrupt, n, len(p))
	}
	body, rest := p[:n], p[n:]
	if len(body) < 1 {
		return r, nil, fmt.Errorf("%w: empty record", ErrCorrupt)
	}
	body = body[1:] // attributes
	if r.TimestampDelta, body, err = readVarint(body); err != nil {
		return r, nil, err
	}
	var od int64
	if od, body, err = readVarint32(body); err != nil {
		return r, nil, err
	}
	if od < 0 || od > math.MaxInt32 {
		return r, nil, fmt.Errorf("%w: offset delta %d", ErrCorrupt, od)
	}
	r.OffsetDelta = int32(od)
	if r.Key, body, err = readBytes(body); err != nil {
		return r, nil, err
	}
	if r.Value, body, err = readBytes(body); err != nil {
		return r, nil, err
	}
	var nh int64
	if nh, body, err = readVarint32(body); err != nil {
		return r, nil, err
	}
	// A header takes at least two bytes, so the count is bounded by what is
	// left; this also bounds any work done for it.
	if nh < 0 || nh > int64(len(body))/2 {
		return r, nil, fmt.Errorf("%w: header count %d with %d bytes left", ErrCorrupt, nh, len(body))
	}
	r.NumHeaders = int(nh)
	r.headers = body
	for i := int64(0); i < nh; i++ {
		var k []byte
		if k, body, err = readBytes(body); err != nil {
			return r, nil, err
		}
		if k == nil {
			return r, nil, fmt.Errorf("%w: null header key", ErrCorrupt)
		}
		if _, body, err = readBytes(body); err != nil {
			return r, nil, err
		}
	}
	if len(body) != 0 {
		return r, nil, fmt.Errorf("%w: %d bytes after the record's headers", ErrCorrupt, len(body))
	}
	return r, rest, nil
}

func readVarint(p []byte) (int64, []byte, error) {
	v, n := binary.Varint(p)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: bad varint", ErrCorrupt)
	}
	return v, p[n:], nil
}

// readVarint32 reads one of Kafka's int32 varints (every record field but
// the timestamp delta): at most 5 bytes, with a value that fits in an int32.
// Longer encodings are refused, as Kafka's clients refuse them.
func readVarint32(p []byte) (int64, []byte, error) {
	if len(p) > 0 && p[0] < 0x80 {
		// One byte, as most of a record's lengths and deltas are.
		u := int64(p[0])
		return u>>1 ^ -(u & 1), p[1:], nil
	}
	var u uint64
	for i := 0; i < len(p) && i < binary.MaxVarintLen32; i++ {
		b := p[i]
		u |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			v := int64(u>>1) ^ -int64(u&1)
			if v < math.MinInt32 || v > math.MaxInt32 {
				break
			}
			return v, p[i+1:], nil
		}
	}
	return 0, nil, errBadVarint
}

var errBadVarint = fmt.Errorf("%w: bad varint", ErrCorrupt)

// readBytes reads a varint length and that many bytes; -1 is null.
func readBytes(p []byte) ([]byte, []byte, error) {
	n, p, err := readVarint32(p)
	if err != nil {
		return nil, nil, err
	}
	if n == -1 {
		return nil, p, nil
	}
	if n < 0 || n > int64(len(p)) {
		return nil, nil, fmt.Errorf("%w: length %d with %d bytes left", ErrCorrupt, n, len(p))
	}
	return p[:n:n], p[n:], nil
}

// Builder encodes records into one uncompressed batch. The zero value is
// ready after Reset. A Builder reuses its buffer: the bytes returned by
// Finish are valid until the next Reset.
type Builder struct {
	buf    []byte
	count  int32
	baseTS int64
	maxTS  int64
}

// Reset starts a new batch. producerID -1 and baseSequence -1 mean a
// non-idempotent batch.
func (b *Builder) Reset(producerID int64, producerEpoch int16, baseSequence int32) {
	if cap(b.buf) < HeaderSize {
		b.buf = make([]byte, HeaderSize, 4096)
	}
	b.buf = b.buf[:HeaderSize]
	clear(b.buf)
	b.count, b.baseTS, b.maxTS = 0, 0, 0
	binary.BigEndian.PutUint64(b.buf[OffProducerID:], uint64(producerID))
	binary.BigEndian.PutUint16(b.buf[OffProducerEpoch:], uint16(producerEpoch))
	binary.BigEndian.PutUint32(b.buf[OffBaseSequence:], uint32(baseSequence))
}

// Len returns the number of records added since Reset.
func (b *Builder) Len() int { return int(b.count) }

// Size returns the encoded size so far.
func (b *Builder) Size() int { return len(b.buf) }

// RawHeader is a record header whose key is bytes, for callers that hold
// keys as bytes (a decoded request) and must not allocate strings.
type RawHeader struct {
	Key, Value []byte
}

// AddRaw is Add with headers given as RawHeader.
func (b *Builder) AddRaw(timestampMs int64, key, value []byte, headers []RawHeader) {
	b.start(timestampMs)
	tsd, od := timestampMs-b.baseTS, int64(b.count)
	n := 1 + varintLen(tsd) + varintLen(od) + bytesLen(key) + bytesLen(value) + varintLen(int64(len(headers))) + rawHeadersLen(headers)
	buf := b.appendPrefix(n, tsd, od, key, value, len(headers))
	b.buf = appendRawHeaders(buf, headers)
	b.count++
}

// AddEncoded appends a record like AddRaw whose first nenc headers come
// already encoded in enc (each in the record format: key length, key,
// value length, value), before headers. A producer that puts the same
// headers on every record, with values of a fixed size, encodes them once
// and patches the values in place.
func (b *Builder) AddEncoded(timestampMs int64, key, value, enc []byte, nenc int, headers []RawHeader) {
	b.start(timestampMs)
	tsd, od := timestampMs-b.baseTS, int64(b.count)
	nh := nenc + len(headers)
	n := 1 + varintLen(tsd) + varintLen(od) + bytesLen(key) + bytesLen(value) + varintLen(int64(nh)) + len(enc) + rawHeadersLen(headers)
	if free := cap(b.buf) - len(b.buf); free < n+binary.MaxVarintLen32 {
		b.buf = slices.Grow(b.buf, n+binary.MaxVarintLen32)
	}
	buf := b.appendPrefix(n, tsd, od, key, value, nh)
	buf = append(buf, enc...)
	b.buf = appendRawHeaders(buf, headers)
	b.count++
}

// rawHeadersLen is the encoded size of headers.
func rawHeadersLen(headers []RawHeader) int {
	n := 0
	for i := range headers {
		n += varintLen(int64(len(headers[i].Key))) + len(headers[i].Key) + bytesLen(headers[i].Value)
	}
	return n
}

// appendRawHeaders appends headers in the record encoding.
func appendRawHeaders(buf []byte, headers []RawHeader) []byte {
	for i := range headers {
		buf = binary.AppendVarint(buf, int64(len(headers[i].Key)))
		buf = append(buf, headers[i].Key...)
		buf = appendBytes(buf, headers[i].Value)
	}
	return buf
}

func (b *Builder) start(timestampMs int64) {
	if b.count == 0 {
		b.baseTS, b.maxTS = timestampMs, timestampMs
	}
	if timestampMs > b.maxTS {
		b.maxTS = timestampMs
	}
}

// appendPrefix appends a record's length, attributes, deltas, key, value and
// header count.
func (b *Builder) appendPrefix(n int, tsd, od int64, key, value []byte, nh int) []byte {
	buf := binary.AppendVarint(b.buf, int64(n))
	buf = append(buf, 0)
	buf = binary.AppendVarint(buf, tsd)
	buf = binary.AppendVarint(buf, od)
	buf = appendBytes(buf, key)
	buf = appendBytes(buf, value)
	return binary.AppendVarint(buf, int64(nh))
}

// Add appends a record with a timestamp in milliseconds since the epoch.
// A nil key or value is encoded as null.
func (b *Builder) Add(timestampMs int64, key, value []byte, headers ...RecordHeader) {
	b.start(timestampMs)
	// Compute the body length first so the length prefix is written once.
	tsd, od := timestampMs-b.baseTS, int64(b.count)
	n := 1 + varintLen(tsd) + varintLen(od) + bytesLen(key) + bytesLen(value) + varintLen(int64(len(headers)))
	for i := range headers {
		n += varintLen(int64(len(headers[i].Key))) + len(headers[i].Key) + bytesLen(headers[i].Value)
	}
	buf := b.appendPrefix(n, tsd, od, key, value, len(headers))
	for i := range headers {
		buf = binary.AppendVarint(buf, int64(len(headers[i].Key)))
		buf = append(buf, headers[i].Key...)
		buf = appendBytes(buf, headers[i].Value)
	}
	b.buf = buf
	b.count++
}

// Finish fills in the header (base offset 0, leader epoch -1, counts,
// timestamps, CRC) and returns the batch. It returns nil if no record was
// added.
func (b *Builder) Finish() []byte {
	if b.count == 0 {
		return nil
	}
	p := b.buf
	binary.BigEndian.PutUint64(p[OffBaseOffset:], 0)
	binary.BigEndian.PutUint32(p[OffLength:], uint32(len(p)-LogOverhead))
	binary.BigEndian.PutUint32(p[OffLeaderEpoch:], math.MaxUint32) // -1
	p[OffMagic] = Magic
	binary.BigEndian.PutUint16(p[OffAttributes:], 0)
	binary.BigEndian.PutUint32(p[OffLastDelta:], uint32(b.count-1))
	binary.BigEndian.PutUint64(p[OffBaseTimestamp:], uint64(b.baseTS))
	binary.BigEndian.PutUint64(p[OffMaxTimestamp:], uint64(b.maxTS))
	binary.BigEndian.PutUint32(p[OffRecordCount:], uint32(b.count))
	binary.BigEndian.PutUint32(p[OffCRC:], Checksum(p[OffAttributes:]))
	return p
}

func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

func bytesLen(p []byte) int {
	if p == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(p))) + len(p)
}

func appendBytes(buf, p []byte) []byte {
	if p == nil {
		return binary.AppendVarint(buf, -1)
	}
	buf = binary.AppendVarint(buf, int64(len(p)))
	return append(buf, p...)
}
