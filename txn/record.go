package txn

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sensehq/sense/group"
)

// The coordinator's state is a log of side records (group.SideRecord, kind
// "txn") in the committed-offsets log: one record per transactional id,
// the latest of which is its state (docs/storage.md). Key: the
// transactional id's bytes. Value (big-endian):
//
//	u8      version (3; 2 lacks the last field, 1 also the two fields of
//	        the last EndTxn)
//	i64     producer id
//	i16     producer epoch
//	u8      state (State)
//	i32     transaction timeout (ms)
//	i64     start of the ongoing or last completed transaction (ms since
//	        the epoch; 0: none since InitProducerId)
//	u64     transactions begun under this id (the fence of EndTxn, see fence.go)
//	i64     producer id and i16 epoch that the last EndTxn of version 5
//	i16     (KIP-890) came with, whose retry is answered again (-1, -1:
//	        none since a transaction began; absent in version 1)
//	uvarint partition count, then each: uvarint topic length, topic, i32 partition
//	uvarint group count, then each: uvarint group length, group, uvarint
//	        offset count, then each: uvarint topic length, topic, i32
//	        partition, i64 offset, i32 leader epoch, uvarint metadata
//	        length, metadata
//	i64     when this state was written (ms since the epoch), by which an
//	        idle id expires (absent before version 3)
//	uvarint (version 4 only) count, then each an i64: the next offset of
//	        each partition (in the order above) when the transaction was
//	        decided, below which all its batches lie (Txn.Ends)
//
// Version 4 is written only for a decided transaction with Ends; every
// other record is written at version 3.
// A null value forgets the id (an expired one). Every count and length is checked against
// the bytes left before anything is allocated.

// Kind names the coordinator's side records.
const Kind = "txn"

const recordVersion = 4

// State is where a transactional id's transaction is.
type State uint8

// States, as Kafka names them (DescribeTransactions, ListTransactions).
const (
	Empty State = iota
	Ongoing
	PrepareCommit
	PrepareAbort
	CompleteCommit
	CompleteAbort
)

var stateNames = [...]string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

// ParseState returns the state Kafka names name (exactly, as Kafka
// compares them); false for a name that is not one of this package's
// states.
func ParseState(name string) (State, bool) {
	for i, n := range stateNames {
		if n == name {
			return State(i), true
		}
	}
	return 0, false
}

// TopicPartition names one partition.
type TopicPartition = group.TopicPartition

// Pending is a group's offsets committed in a transaction (TxnOffsetCommit),
// applied to the group when the transaction commits.
type Pending struct {
	Group   string
	Offsets []group.OffsetCommit
}

// Txn is a transactional id's durable state.
type Txn struct {
	ID         string
	ProducerID int64
	Epoch      int16
	State      State
	TimeoutMs  int32
	// StartMs is when the ongoing transaction, or the last one completed,
	// began (ms since the epoch); 0 when none began since InitProducerId.
	StartMs int64
	Seq     uint64
	// PrevProducerID and PrevEpoch are the producer id and epoch an
	// EndTxn of transaction version 2 (KIP-890) came with, before the
	// bump it answered, or those of the producer whose transaction the
	// coordinator aborted on a timeout or a restart (the abort bumped
	// the epoch); -1 when the id's last transaction did not end so (and
	// from the moment a new one begins). A retry of that EndTxn (an
	// abort by that producer) carries them, and the markers are written
	// with PrevEpoch+1 (markerOf).
	PrevProducerID int64
	PrevEpoch      int16
	Partitions     []TopicPartition
	Groups         []Pending
	// UpdatedMs is when this state was written (ms since the epoch); 0
	// for a state written before the field existed. An id whose last
	// transaction ended and that has not been written for
	// Config.IDExpiration is forgotten.
	UpdatedMs int64
	// Ends, for a decided transaction (PrepareCommit, PrepareAbort) whose
	// markers are made durable after the answer at transaction version 1
	// (decideLazy): each partition's next offset when it was decided, in
	// the order of Partitions. Every batch of the transaction lies below
	// it, every batch of the id's next transaction above, which is how a
	// start tells them apart (writeMarkers). Nil otherwise.
	Ends []int64
}

// hasEnds reports whether t holds an end for each of its partitions.
func (t *Txn) hasEnds() bool { return len(t.Ends) > 0 && len(t.Ends) == len(t.Partitions) }

var errRecord = errors.New("txn: malformed coordinator record")

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendValue appends t's record value.
func appendValue(dst []byte, t *Txn) []byte {
	version := byte(3)
	if len(t.Ends) > 0 {
		version = 4
	}
	dst = append(dst, version)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.ProducerID))
	dst = binary.BigEndian.AppendUint16(dst, uint16(t.Epoch))
	dst = append(dst, byte(t.State))
	dst = binary.BigEndian.AppendUint32(dst, uint32(t.TimeoutMs))
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.StartMs))
	dst = binary.BigEndian.AppendUint64(dst, t.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.PrevProducerID))
	dst = binary.BigEndian.AppendUint16(dst, uint16(t.PrevEpoch))
	dst = binary.AppendUvarint(dst, uint64(len(t.Partitions)))
	for _, tp := range t.Partitions {
		dst = appendString(dst, tp.Topic)
		dst = binary.BigEndian.AppendUint32(dst, uint32(tp.Partition))
	}
	dst = binary.AppendUvarint(dst, uint64(len(t.Groups)))
	for _, g := range t.Groups {
		dst = appendString(dst, g.Group)
		dst = binary.AppendUvarint(dst, uint64(len(g.Offsets)))
		for _, o := range g.Offsets {
			dst = appendString(dst, o.Topic)
			dst = binary.BigEndian.AppendUint32(dst, uint32(o.Partition))
			dst = binary.BigEndian.AppendUint64(dst, uint64(o.Offset))
			dst = binary.BigEndian.AppendUint32(dst, uint32(o.LeaderEpoch))
			dst = appendString(dst, o.Metadata)
		}
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.UpdatedMs))
	if version < 4 {
		return dst
	}
	dst = binary.AppendUvarint(dst, uint64(len(t.Ends)))
	for _, end := range t.Ends {
		dst = binary.BigEndian.AppendUint64(dst, uint64(end))
	}
	return dst
}

// reader is a sticky-error cursor over a record value.
type reader struct {
	p   []byte
	err bool
}

func (r *reader) take(n int) []byte {
	if r.err || n < 0 || n > len(r.p) {
		r.err = true
		return nil
	}
	b := r.p[:n]
	r.p = r.p[n:]
	return b
}

func (r *reader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// count reads a uvarint count of items of at least min bytes each,
// checked against the bytes left.
func (r *reader) count(min int) int {
	if r.err {
		return 0
	}
	n, k := binary.Uvarint(r.p)
	if k <= 0 || n > uint64(len(r.p)-k)/uint64(min) {
		r.err = true
		return 0
	}
	r.p = r.p[k:]
	return int(n)
}

func (r *reader) str() string {
	n := r.count(1)
	return string(r.take(n))
}

// decodeValue decodes a record value for transactional id id.
func decodeValue(id string, p []byte) (*Txn, error) {
	r := &reader{p: p}
	version := r.u8()
	if version < 1 || version > recordVersion {
		return nil, fmt.Errorf("%w: version", errRecord)
	}
	t := &Txn{ID: id}
	t.ProducerID = int64(r.u64())
	t.Epoch = int16(r.u16())
	t.State = State(r.u8())
	t.TimeoutMs = int32(r.u32())
	t.StartMs = int64(r.u64())
	t.Seq = r.u64()
	t.PrevProducerID, t.PrevEpoch = -1, -1
	if version >= 2 {
		t.PrevProducerID = int64(r.u64())
		t.PrevEpoch = int16(r.u16())
	}
	if n := r.count(5); n > 0 {
		t.Partitions = make([]TopicPartition, n)
		for i := range t.Partitions {
			t.Partitions[i].Topic = r.str()
			t.Partitions[i].Partition = int32(r.u32())
		}
	}
	if n := r.count(2); n > 0 {
		t.Groups = make([]Pending, n)
		for i := range t.Groups {
			t.Groups[i].Group = r.str()
			if m := r.count(18); m > 0 {
				t.Groups[i].Offsets = make([]group.OffsetCommit, m)
				for j := range t.Groups[i].Offsets {
					o := &t.Groups[i].Offsets[j]
					o.Topic = r.str()
					o.Partition = int32(r.u32())
					o.Offset = int64(r.u64())
					o.LeaderEpoch = int32(r.u32())
					o.Metadata = r.str()
				}
			}
		}
	}
	if version >= 3 {
		t.UpdatedMs = int64(r.u64())
	}
	if version >= 4 {
		if n := r.count(8); n > 0 {
			t.Ends = make([]int64, n)
			for i := range t.Ends {
				t.Ends[i] = int64(r.u64())
			}
		}
	}
	switch {
	case !r.err && t.Ends != nil && len(t.Ends) != len(t.Partitions):
		return nil, fmt.Errorf("%w: %d partition ends for %d partitions", errRecord, len(t.Ends), len(t.Partitions))
	case r.err:
		return nil, fmt.Errorf("%w: truncated", errRecord)
	case len(r.p) != 0:
		return nil, fmt.Errorf("%w: %d trailing bytes", errRecord, len(r.p))
	case t.State > CompleteAbort:
		return nil, fmt.Errorf("%w: state %d", errRecord, t.State)
	}
	return t, nil
}
