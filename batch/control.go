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
