package batch

import (
	"encoding/binary"
)

// Rebuilder re-encodes the records of a batch, uncompressed, keeping every
// field of the original batch header (producer id, epoch and base
// sequence, base and max timestamp, last offset delta, the timestamp-type,
// transactional and control attributes) and each record's timestamp and
// offset deltas, key, value and headers, and appending headers of the
// caller's to chosen records. The node uses it to write the routing
// headers (sense.j, sense.p) into records that came without them, so that
// every stored record says where it may rest.
//
// The zero value is ready after Reset. The bytes Finish returns are valid
// until the next Reset.
type Rebuilder struct {
	buf   []byte
	count int32
	out   []byte // the compressed batch, when FinishCompressed compresses
}

// Reset starts a batch with the header fields of h.
func (r *Rebuilder) Reset(h *Header) {
	if cap(r.buf) < HeaderSize {
		r.buf = make([]byte, HeaderSize, 4096)
	}
	r.buf = r.buf[:HeaderSize]
	clear(r.buf)
	r.count = 0
	p := r.buf
	binary.BigEndian.PutUint64(p[OffBaseOffset:], uint64(h.BaseOffset))
	binary.BigEndian.PutUint32(p[OffLeaderEpoch:], uint32(h.LeaderEpoch))
	p[OffMagic] = Magic
	binary.BigEndian.PutUint16(p[OffAttributes:], uint16(h.Attributes)&^AttrCompressionMask)
	binary.BigEndian.PutUint32(p[OffLastDelta:], uint32(h.LastDelta))
	binary.BigEndian.PutUint64(p[OffBaseTimestamp:], uint64(h.BaseTimestamp))
	binary.BigEndian.PutUint64(p[OffMaxTimestamp:], uint64(h.MaxTimestamp))
	binary.BigEndian.PutUint64(p[OffProducerID:], uint64(h.ProducerID))
	binary.BigEndian.PutUint16(p[OffProducerEpoch:], uint16(h.ProducerEpoch))
	binary.BigEndian.PutUint32(p[OffBaseSequence:], uint32(h.BaseSequence))
}

// Grow makes room for n more bytes of records.
func (r *Rebuilder) Grow(n int) {
	if cap(r.buf)-len(r.buf) < n {
		nb := make([]byte, len(r.buf), len(r.buf)+n)
		copy(nb, r.buf)
		r.buf = nb
	}
}

// Add appends rec with its own headers followed by extra.
func (r *Rebuilder) Add(rec *Record, extra []RawHeader) {
	n := 1 + varintLen(rec.TimestampDelta) + varintLen(int64(rec.OffsetDelta)) + bytesLen(rec.Key) + bytesLen(rec.Value) +
		varintLen(int64(rec.NumHeaders+len(extra))) + len(rec.headers) + rawHeadersLen(extra)
	buf := binary.AppendVarint(r.buf, int64(n))
	buf = append(buf, 0)
	buf = binary.AppendVarint(buf, rec.TimestampDelta)
	buf = binary.AppendVarint(buf, int64(rec.OffsetDelta))
	buf = appendBytes(buf, rec.Key)
	buf = appendBytes(buf, rec.Value)
	buf = binary.AppendVarint(buf, int64(rec.NumHeaders+len(extra)))
	buf = append(buf, rec.headers...)
	r.buf = appendRawHeaders(buf, extra)
	r.count++
}

// AddEncoded is Add with the extra headers given already encoded: nenc
// headers in enc, each in the record format (see Builder.AddEncoded).
func (r *Rebuilder) AddEncoded(rec *Record, enc []byte, nenc int) {
	n := 1 + varintLen(rec.TimestampDelta) + varintLen(int64(rec.OffsetDelta)) + bytesLen(rec.Key) + bytesLen(rec.Value) +
		varintLen(int64(rec.NumHeaders+nenc)) + len(rec.headers) + len(enc)
	buf := binary.AppendVarint(r.buf, int64(n))
	buf = append(buf, 0)
	buf = binary.AppendVarint(buf, rec.TimestampDelta)
	buf = binary.AppendVarint(buf, int64(rec.OffsetDelta))
	buf = appendBytes(buf, rec.Key)
	buf = appendBytes(buf, rec.Value)
	buf = binary.AppendVarint(buf, int64(rec.NumHeaders+nenc))
	buf = append(buf, rec.headers...)
	r.buf = append(buf, enc...)
	r.count++
}

// Finish fills in the length, the record count and the CRC and returns the
// batch.
func (r *Rebuilder) Finish() []byte {
	p := r.buf
	binary.BigEndian.PutUint32(p[OffLength:], uint32(len(p)-LogOverhead))
	binary.BigEndian.PutUint32(p[OffRecordCount:], uint32(r.count))
	binary.BigEndian.PutUint32(p[OffCRC:], Checksum(p[OffAttributes:]))
	return p
}

// FinishCompressed is Finish, then compresses the records with codec (see
// Compress) so the batch keeps the codec its producer chose.
func (r *Rebuilder) FinishCompressed(codec int) ([]byte, error) {
	p := r.Finish()
	if codec == CompressionNone {
		return p, nil
	}
	var err error
	r.out, err = compressInto(r.out, p, codec)
	return r.out, err
}
