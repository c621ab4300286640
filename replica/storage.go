package replica

import (
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/seglog"
)

// meta is what the storage remembers of one raft entry held in the log:
// its term and the offset after its batch (the batch starts where the one
// before ended).
type meta struct {
	term uint64
	next int64
}

// storage is raft's view of a replica's log: raft.Storage over the
// seglog.Log, which holds one record batch per raft entry. Entry i lives
// in the batch that starts at offsetOf(i); the table of terms and end
// offsets is rebuilt from the batch headers when the log opens (the term
// is the batch's PartitionLeaderEpoch).
//
// Raft calls it from the group's goroutine, which is also the only writer;
// mu lets status readers in.
type storage struct {
	log *seglog.Log

	mu        sync.Mutex
	hard      *pb.HardState
	conf      *pb.ConfState
	baseIndex uint64 // the entry before ents[0]
	baseTerm  uint64
	baseNext  int64 // the offset ents[0] starts at
	// start is the first offset readers see, at or past baseNext: a
	// trim moves it to any batch; the log drops whole segments below it.
	start int64
	ents  []meta

	// recent holds the entries written and not yet applied, in index
	// order (at most maxRecentBytes of data): raft reads them again to
	// apply them and to send them to a follower, and Entries serves them
	// from here rather than from the log's files. The bytes are those
	// written (persist stamps the batch in place).
	recent      []*pb.Entry
	recentBytes int
}

// maxRecentBytes bounds the data of the entries storage keeps in memory
// (a leader whose entries do not commit keeps writing them for at most an
// election timeout).
const maxRecentBytes = 8 << 20

// remember keeps e, just written, among the recent entries. Called with mu
// held.
func (s *storage) remember(e *pb.Entry) {
	if n := len(s.recent); n > 0 && s.recent[n-1].GetIndex()+1 != e.GetIndex() {
		s.forgetLocked()
	}
	s.recent = append(s.recent, e)
	s.recentBytes += len(e.GetData())
	for s.recentBytes > maxRecentBytes && len(s.recent) > 0 {
		s.recentBytes -= len(s.recent[0].GetData())
		s.recent[0] = nil
		s.recent = s.recent[1:]
	}
}

// forgetLocked drops every recent entry (the log was cut, reset or
// moved). Called with mu held.
func (s *storage) forgetLocked() {
	clear(s.recent)
	s.recent, s.recentBytes = s.recent[:0], 0
}

// forgetFromLocked drops the recent entries from index i on (a conflicting
// suffix cut). Called with mu held.
func (s *storage) forgetFromLocked(i uint64) {
	for n := len(s.recent); n > 0 && s.recent[n-1].GetIndex() >= i; n-- {
		s.recentBytes -= len(s.recent[n-1].GetData())
		s.recent[n-1] = nil
		s.recent = s.recent[:n-1]
	}
}

// forgetTo drops the recent entries up to index i, applied.
func (s *storage) forgetTo(i uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := 0
	for k < len(s.recent) && s.recent[k].GetIndex() <= i {
		s.recentBytes -= len(s.recent[k].GetData())
		s.recent[k] = nil
		k++
	}
	if k == len(s.recent) {
		s.recent = s.recent[:0]
		return
	}
	s.recent = s.recent[k:]
}

// recentLocked returns entries [lo, hi) from the recent ones, limited to
// maxSize bytes of data (at least one entry), if it holds them all with
// the terms the table has. Called with mu held.
func (s *storage) recentLocked(lo, hi, maxSize uint64) ([]*pb.Entry, bool) {
	if len(s.recent) == 0 {
		return nil, false
	}
	first := s.recent[0].GetIndex()
	if lo < first || hi > first+uint64(len(s.recent)) {
		return nil, false
	}
	var out []*pb.Entry
	var size uint64
	for i := lo; i < hi; i++ {
		e := s.recent[i-first]
		if e.GetIndex() != i || e.GetTerm() != s.ents[i-s.baseIndex-1].term {
			return nil, false
		}
		sz := uint64(len(e.GetData()))
		if len(out) > 0 && size+sz > maxSize {
			break
		}
		out = append(out, e)
		size += sz
	}
	return out, true
}

func (s *storage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.CloneOf(s.hard), proto.CloneOf(s.conf), nil
}

func (s *storage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.baseIndex + 1, nil
}

func (s *storage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastLocked(), nil
}

func (s *storage) lastLocked() uint64 { return s.baseIndex + uint64(len(s.ents)) }

func (s *storage) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case i == s.baseIndex:
		return s.baseTerm, nil
	case i < s.baseIndex:
		return 0, raft.ErrCompacted
	case i > s.lastLocked():
		return 0, raft.ErrUnavailable
	}
	return s.ents[i-s.baseIndex-1].term, nil
}

// offsetOf returns the offset the batch of entry i starts at; i may be
// one past the last entry (the log's end). Called with mu held.
func (s *storage) offsetOf(i uint64) int64 {
	if i <= s.baseIndex+1 {
		return s.baseNext
	}
	return s.ents[i-s.baseIndex-2].next
}

// endOf returns the offset after entry i's batch (baseNext for the base).
func (s *storage) endOf(i uint64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i <= s.baseIndex {
		return s.baseNext
	}
	if i > s.lastLocked() {
		i = s.lastLocked()
		if i == s.baseIndex {
			return s.baseNext
		}
	}
	return s.ents[i-s.baseIndex-1].next
}

func (s *storage) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	s.mu.Lock()
	if lo <= s.baseIndex {
		s.mu.Unlock()
		return nil, raft.ErrCompacted
	}
	if hi > s.lastLocked()+1 {
		last := s.lastLocked()
		s.mu.Unlock()
		return nil, fmt.Errorf("replica: entries [%d, %d) asked of a log that ends at %d", lo, hi, last)
	}
	if out, ok := s.recentLocked(lo, hi, maxSize); ok {
		s.mu.Unlock()
		return out, nil
	}
	off, end := s.offsetOf(lo), s.offsetOf(hi)
	terms := make([]uint64, 0, hi-lo)
	for i := lo; i < hi; i++ {
		terms = append(terms, s.ents[i-s.baseIndex-1].term)
	}
	s.mu.Unlock()

	var out []*pb.Entry
	var size uint64
	idx := lo
	for off < end && idx < hi {
		want := int(min(uint64(1<<20), max(maxSize-min(size, maxSize), 1)))
		buf, err := s.log.Read(nil, off, want)
		var ce *seglog.CorruptionError
		if errors.As(err, &ce) {
			// raft would panic on any error but ErrCompacted; panic
			// ourselves, with what the group needs to repair the log.
			at := ce.Offset
			if at < 0 {
				at = off
			}
			panic(damagePanic{offset: at, err: err})
		}
		if err != nil {
			return nil, fmt.Errorf("replica: read entry %d at offset %d: %w", idx, off, err)
		}
		if len(buf) == 0 {
			return nil, fmt.Errorf("replica: entry %d at offset %d is not readable yet", idx, off)
		}
		for len(buf) > 0 && idx < hi {
			h, err := batch.ParseHeader(buf)
			if err != nil {
				return nil, err
			}
			n := h.Size()
			e, err := entryOf(buf[:n:n], terms[idx-lo], idx)
			if err != nil {
				return nil, err
			}
			sz := uint64(n)
			if len(out) > 0 && size+sz > maxSize {
				return out, nil
			}
			out = append(out, e)
			size += sz
			off = h.NextOffset()
			idx++
			buf = buf[n:]
		}
		if size >= maxSize {
			break
		}
	}
	return out, nil
}

// entryOf turns a stored batch back into the raft entry it holds.
func entryOf(b []byte, term, index uint64) (*pb.Entry, error) {
	e := &pb.Entry{Term: &term, Index: &index}
	typ, value, ctl, err := batch.ControlType(b)
	if err != nil {
		return nil, err
	}
	switch {
	case !ctl:
		e.Data = b
	case typ == batch.ControlRaftConfig:
		if len(value) < 1 {
			return nil, fmt.Errorf("replica: raft configuration record at index %d is empty", index)
		}
		t := pb.EntryType(value[0])
		e.Type = &t
		e.Data = value[1:]
	case typ == batch.ControlLeaderChange:
		// The leader's empty entry at the start of its term: raft sees it
		// as empty, and every replica writes the same marker for it.
	default:
		// A control record written through raft (a trim): the entry is
		// the batch itself, so that every replica stores the same bytes.
		e.Data = b
	}
	return e, nil
}

// batchOf returns the batch that stores entry e, and whether it is a
// control batch built here (so its CRC need not be checked again). Every
// replica builds the same bytes: a control batch's timestamp is 0.
func batchOf(e *pb.Entry) (b []byte, built bool) {
	const ts = 0
	switch {
	case e.GetType() != pb.EntryNormal:
		v := make([]byte, 1+len(e.Data))
		v[0] = byte(e.GetType())
		copy(v[1:], e.Data)
		return batch.Control(ts, batch.ControlRaftConfig, v), true
	case len(e.Data) == 0:
		return batch.Control(ts, batch.ControlLeaderChange, nil), true
	}
	return e.Data, false
}
