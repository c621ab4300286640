// Package batch reads, checks and builds Kafka RecordBatch v2 (magic 2), the
// unit Sense stores on disk, replicates and serves on the Kafka wire.
//
// A batch is laid out as follows (big-endian integers; offsets in bytes):
//
//	 0  int64   base offset            (not covered by the CRC)
//	 8  int32   batch length           (bytes after this field: total = 12 + length)
//	12  int32   partition leader epoch (not covered by the CRC; Sense: raft term)
//	16  int8    magic                  (2)
//	17  uint32  CRC-32C (Castagnoli) of bytes 21..end
//	21  int16   attributes             (bits 0-2 compression, 3 timestamp type,
//	                                    4 transactional, 5 control)
//	23  int32   last offset delta
//	27  int64   base timestamp         (ms since the Unix epoch)
//	35  int64   max timestamp
//	43  int64   producer id            (-1: none)
//	51  int16   producer epoch
//	53  int32   base sequence          (-1: none)
//	57  int32   record count
//	61  ...     records (possibly compressed)
//
// Because the base offset and the leader epoch lie outside the CRC, the log
// can assign offsets and stamp the writer's term without recomputing it.
//
// Every function here checks lengths against the bytes actually present
// before it reads or allocates; a malformed batch yields an error wrapping
// ErrCorrupt or ErrInvalid, never a panic.
package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Field offsets and sizes of the batch header.
const (
	OffBaseOffset    = 0
	OffLength        = 8
	OffLeaderEpoch   = 12
	OffMagic         = 16
	OffCRC           = 17
	OffAttributes    = 21
	OffLastDelta     = 23
	OffBaseTimestamp = 27
	OffMaxTimestamp  = 35
	OffProducerID    = 43
	OffProducerEpoch = 51
	OffBaseSequence  = 53
	OffRecordCount   = 57

	// HeaderSize is the size of the fixed batch header.
	HeaderSize = 61
	// LogOverhead is the size of the base offset and length fields, which
	// the batch length does not count.
	LogOverhead = 12
	// Magic is the only record-batch version Sense accepts.
	Magic = 2
	// MaxSize bounds a single batch (header included). Larger batches are
	// refused before anything is allocated for them.
	MaxSize = 64 << 20
)

// Attribute bits.
const (
	AttrCompressionMask = 0x07
	AttrLogAppendTime   = 0x08
	AttrTransactional   = 0x10
	AttrControl         = 0x20
)

// Compression codecs in the attribute bits, as Kafka numbers them.
const (
	CompressionNone   = 0
	CompressionGzip   = 1
	CompressionSnappy = 2
	CompressionLZ4    = 3
	CompressionZstd   = 4
)

var (
	// ErrCorrupt means the bytes are not a well-formed batch, or its CRC does
	// not match: the data was damaged.
	ErrCorrupt = errors.New("batch: corrupt record batch")
	// ErrInvalid means the batch is intact (its CRC matches) but not
	// acceptable: counts that contradict each other, extra bytes after it,
	// records compressed where the caller needs them plain. A magic other
	// than 2 or a length outside [HeaderSize, MaxSize] is ErrCorrupt: such
	// bytes cannot be framed as a batch at all.
	ErrInvalid = errors.New("batch: invalid record batch")
	// ErrShort means fewer bytes are present than the batch header or its
	// length field needs; when reading a stream, more bytes may complete it.
	ErrShort = errors.New("batch: truncated record batch")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC-32C of p.
func Checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// Header is the decoded fixed header of a batch.
type Header struct {
	BaseOffset    int64
	Length        int32 // bytes after the length field
	LeaderEpoch   int32
	Magic         int8
	CRC           uint32
	Attributes    int16
	LastDelta     int32
	BaseTimestamp int64
	MaxTimestamp  int64
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32
	RecordCount   int32
}

// Size is the whole batch's size in bytes.
func (h *Header) Size() int { return LogOverhead + int(h.Length) }

// LastOffset is the offset of the batch's last record.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastDelta) }

// NextOffset is the offset that follows the batch.
func (h *Header) NextOffset() int64 { return h.BaseOffset + int64(h.LastDelta) + 1 }

// LastSequence is the sequence number of the batch's last record, wrapping
// as Kafka does.
func (h *Header) LastSequence() int32 {
	if h.BaseSequence < 0 {
		return -1
	}
	return int32((int64(h.BaseSequence) + int64(h.LastDelta)) % (1 << 31))
}

// Idempotent reports whether the batch carries a producer id and sequence.
func (h *Header) Idempotent() bool { return h.ProducerID >= 0 && h.BaseSequence >= 0 }

// Compression returns the codec in the attributes.
func (h *Header) Compression() int { return int(h.Attributes & AttrCompressionMask) }

// Size reads the total size of the batch that starts at p[0] from its length
// field. It needs at least LogOverhead bytes and checks the length's range
// (HeaderSize..MaxSize) before anyone allocates for it.
func Size(p []byte) (int, error) {
	if len(p) < LogOverhead {
		return 0, fmt.Errorf("%w: %d bytes, need %d for base offset and length", ErrShort, len(p), LogOverhead)
	}
	n := int64(int32(binary.BigEndian.Uint32(p[OffLength:])))
	if n < HeaderSize-LogOverhead || n > MaxSize-LogOverhead {
		return 0, fmt.Errorf("%w: batch length %d outside [%d, %d]", ErrCorrupt, n, HeaderSize-LogOverhead, MaxSize-LogOverhead)
	}
	return LogOverhead + int(n), nil
}

// ParseHeader decodes the fixed header at the start of p. It checks that p
// holds at least HeaderSize bytes and that the length and magic are sane; it
// does not check the CRC or that the whole batch is present.
func ParseHeader(p []byte) (Header, error) {
	var h Header
	if _, err := Size(p); err != nil {
		return h, err
	}
	if len(p) < HeaderSize {
		return h, fmt.Errorf("%w: %d bytes, need %d for the batch header", ErrShort, len(p), HeaderSize)
	}
	h.BaseOffset = int64(binary.BigEndian.Uint64(p[OffBaseOffset:]))
	h.Length = int32(binary.BigEndian.Uint32(p[OffLength:]))
	h.LeaderEpoch = int32(binary.BigEndian.Uint32(p[OffLeaderEpoch:]))
	h.Magic = int8(p[OffMagic])
	h.CRC = binary.BigEndian.Uint32(p[OffCRC:])
	h.Attributes = int16(binary.BigEndian.Uint16(p[OffAttributes:]))
	h.LastDelta = int32(binary.BigEndian.Uint32(p[OffLastDelta:]))
	h.BaseTimestamp = int64(binary.BigEndian.Uint64(p[OffBaseTimestamp:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(p[OffMaxTimestamp:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(p[OffProducerID:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(p[OffProducerEpoch:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(p[OffBaseSequence:]))
	h.RecordCount = int32(binary.BigEndian.Uint32(p[OffRecordCount:]))
	if h.Magic != Magic {
		return h, fmt.Errorf("%w: magic %d, want %d", ErrCorrupt, h.Magic, Magic)
	}
	return h, nil
}

// Check validates the single batch that makes up all of p: the length field
// matches len(p), the magic is 2, the CRC-32C matches, and the counts are
// consistent. It returns the decoded header. It reads nothing past p and
// allocates nothing.
func Check(p []byte) (Header, error) { return check(p, true) }

// CheckFraming is Check without the CRC: for a batch this process built
// itself (Builder), whose checksum is right by construction.
func CheckFraming(p []byte) (Header, error) { return check(p, false) }

func check(p []byte, crc bool) (Header, error) {
	h, err := ParseHeader(p)
	if err != nil {
		return h, err
	}
	if h.Size() != len(p) {
		if h.Size() > len(p) {
			return h, fmt.Errorf("%w: batch length says %d bytes, %d present", ErrShort, h.Size(), len(p))
		}
		return h, fmt.Errorf("%w: batch length says %d bytes, %d given", ErrInvalid, h.Size(), len(p))
	}
	// The CRC first: a flipped bit in the counts below is corruption.
	if crc {
		if got := Checksum(p[OffAttributes:]); got != h.CRC {
			return h, fmt.Errorf("%w: CRC-32C %08x, header says %08x", ErrCorrupt, got, h.CRC)
		}
	}
	if h.LastDelta < 0 {
		return h, fmt.Errorf("%w: last offset delta %d is negative", ErrInvalid, h.LastDelta)
	}
	if h.RecordCount < 0 || int64(h.RecordCount) > int64(h.LastDelta)+1 {
		return h, fmt.Errorf("%w: record count %d with last offset delta %d", ErrInvalid, h.RecordCount, h.LastDelta)
	}
	// An uncompressed record takes at least 7 bytes (length, attributes,
	// timestamp and offset deltas, key and value lengths, header count).
	if h.Compression() == CompressionNone && int64(h.RecordCount)*7 > int64(len(p)-HeaderSize) {
		return h, fmt.Errorf("%w: record count %d cannot fit in %d bytes", ErrInvalid, h.RecordCount, len(p)-HeaderSize)
	}
	return h, nil
}

// SetBaseOffset writes the base offset of the batch at p. The CRC does not
// cover it.
func SetBaseOffset(p []byte, off int64) { binary.BigEndian.PutUint64(p[OffBaseOffset:], uint64(off)) }

// SetLeaderEpoch writes the partition leader epoch (Sense: the raft term of
// the writer) of the batch at p. The CRC does not cover it.
func SetLeaderEpoch(p []byte, epoch int32) {
	binary.BigEndian.PutUint32(p[OffLeaderEpoch:], uint32(epoch))
}
