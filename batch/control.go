package batch

import (
	"encoding/binary"
	"fmt"
)

// Control record types (the key of a control batch's one record: version
// int16 0, then the type). Kafka's transaction markers are 0 and 1; 2 is
// the leader-change marker, which Sense writes where raft appends its empty
// entry at the start of a term (Kafka's own raft log does the same).
// Readers skip control batches; their offsets are consumed.
const (
	ControlAbort        int16 = 0
	ControlCommit       int16 = 1
	ControlLeaderChange int16 = 2
	// ControlRaftConfig holds a raft configuration-change entry; its value
	// is the entry's type (one byte) and data.
	ControlRaftConfig int16 = 0x5301
	// ControlTrim moves a replicated log's start: its value is the new
	// first offset readers see (8 bytes, big-endian). Every replica moves
	// its start when it applies the record (package replica).
	ControlTrim int16 = 0x5302
	// ControlCompact has every replica of a replicated log compact it
	// below an end point: its value is the end offset and the tombstone
	// horizon (Unix ms), 8 bytes each, big-endian (package replica).
	ControlCompact int16 = 0x5303
)

// Control returns a new control batch of one record whose key is
// (version 0, typ) and whose value is value, at timestamp ts.
func Control(ts int64, typ int16, value []byte) []byte {
	var b Builder
	b.Reset(-1, -1, -1)
	var key [4]byte
	binary.BigEndian.PutUint16(key[2:], uint16(typ))
	b.Add(ts, key[:], value)
	p := append([]byte(nil), b.Finish()...)
	binary.BigEndian.PutUint16(p[OffAttributes:], AttrControl)
	binary.BigEndian.PutUint32(p[OffCRC:], Checksum(p[OffAttributes:]))
	return p
}

// ControlType returns the type and value of the control batch p (checked
// framing assumed); ok is false when p is not a control batch.
func ControlType(p []byte) (typ int16, value []byte, ok bool, err error) {
	h, err := ParseHeader(p)
	if err != nil {
		return 0, nil, false, err
	}
	if h.Attributes&AttrControl == 0 {
		return 0, nil, false, nil
	}
	it, err := NewIter(p)
	if err != nil {
		return 0, nil, true, err
	}
	if !it.Next() {
		if it.Err() != nil {
			return 0, nil, true, it.Err()
		}
		return 0, nil, true, fmt.Errorf("%w: control batch without a record", ErrInvalid)
	}
	r := it.Record()
	if len(r.Key) < 4 {
		return 0, nil, true, fmt.Errorf("%w: control record key of %d bytes", ErrInvalid, len(r.Key))
	}
	return int16(binary.BigEndian.Uint16(r.Key[2:])), r.Value, true, nil
}

// Transaction markers. A marker is a control batch written by the broker,
// never a producer: attributes transactional|control, the producer id and
// epoch of the transaction it ends, base sequence -1, and one record whose
// key is (version int16 0, type int16: ControlAbort or ControlCommit) and
// whose value is (version int16 0, coordinator epoch int32), as Kafka
// writes it (its EndTransactionMarker).

// markerValueSize is a marker value's size: version and coordinator epoch.
const markerValueSize = 6

// Marker is a decoded transaction marker.
type Marker struct {
	ProducerID       int64
	ProducerEpoch    int16
	Commit           bool
	CoordinatorEpoch int32
}

// TxnMarker returns a new marker batch (base offset 0, to be assigned by the
// log) ending producer id's transaction, at timestamp ts.
func TxnMarker(ts int64, m Marker) []byte {
	var b Builder
	b.Reset(m.ProducerID, m.ProducerEpoch, -1)
	var key [4]byte
	typ := ControlAbort
	if m.Commit {
		typ = ControlCommit
	}
	binary.BigEndian.PutUint16(key[2:], uint16(typ))
	var value [markerValueSize]byte
	binary.BigEndian.PutUint32(value[2:], uint32(m.CoordinatorEpoch))
	b.Add(ts, key[:], value[:])
	p := append([]byte(nil), b.Finish()...)
	binary.BigEndian.PutUint16(p[OffAttributes:], AttrControl|AttrTransactional)
	binary.BigEndian.PutUint32(p[OffCRC:], Checksum(p[OffAttributes:]))
	return p
}

// ParseMarker decodes the transaction marker p (a whole batch whose framing
// was checked). ok is false when p is a control batch of another type, or
// not a control batch; err reports a marker that does not decode.
func ParseMarker(p []byte) (m Marker, ok bool, err error) {
	h, err := ParseHeader(p)
	if err != nil {
		return m, false, err
	}
	if h.Attributes&AttrControl == 0 {
		return m, false, nil
	}
	typ, value, _, err := ControlType(p)
	if err != nil {
		return m, false, err
	}
	if typ != ControlAbort && typ != ControlCommit {
		return m, false, nil
	}
	if len(value) < markerValueSize {
		return m, false, fmt.Errorf("%w: transaction marker value of %d bytes", ErrInvalid, len(value))
	}
	if h.Attributes&AttrTransactional == 0 {
		return m, false, fmt.Errorf("%w: transaction marker without the transactional attribute", ErrInvalid)
	}
	m.ProducerID, m.ProducerEpoch = h.ProducerID, h.ProducerEpoch
	m.Commit = typ == ControlCommit
	m.CoordinatorEpoch = int32(binary.BigEndian.Uint32(value[2:]))
	return m, true, nil
}

// Emptied returns the batch p (a whole batch whose framing was checked)
// with its records removed: the same base offset, last offset delta,
// timestamps and producer fields, no records, uncompressed, with a new
// CRC. Readers skip such a batch, and its offsets stay consumed: Sense's
// readers receive an aborted transaction's batches this way.
func Emptied(dst, p []byte) []byte {
	start := len(dst)
	dst = append(dst, p[:HeaderSize]...)
	q := dst[start:]
	binary.BigEndian.PutUint32(q[OffLength:], uint32(HeaderSize-LogOverhead))
	attrs := binary.BigEndian.Uint16(q[OffAttributes:]) &^ AttrCompressionMask
	binary.BigEndian.PutUint16(q[OffAttributes:], attrs)
	binary.BigEndian.PutUint32(q[OffRecordCount:], 0)
	binary.BigEndian.PutUint32(q[OffCRC:], Checksum(q[OffAttributes:]))
	return dst
}
