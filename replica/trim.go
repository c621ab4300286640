package replica

import (
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
)

// Trimming moves a replicated log's start forward: the records below the
// new start leave the buffer on every replica (a migration moved them
// elsewhere). The leader proposes a control record (batch.ControlTrim)
// holding the new start; every replica, as it applies the record, moves
// the start readers see to it and drops the segments that hold only
// offsets below it, moving its raft log's base (a compaction) to the first
// segment left. The state file records the new base and start before any
// file is removed, and opening a log whose first segments a crash left
// behind removes them then.
//
// Raft never needs an entry below the new base again: the leader proposes
// a trim only once every replica holds the log up to the new start, so no
// follower is sent an entry from before it. A replica that lost its log
// (a wiped directory, a replaced disk) does need them: it gets a snapshot
// instead, which starts its log at the leader's start (snapshot.go).

// ErrTrimBehind is returned by Trim while a replica does not hold the log
// up to the new start yet: try again once it has caught up. Its code is
// TIMEOUT (retriable; Kafka's DeleteRecords answers REQUEST_TIMED_OUT when
// the replicas do not reach the new start in time).
var ErrTrimBehind = result.New(result.Timeout, "replica: a replica has not caught up to the new start yet; try again")

// Trim proposes to move the log's start to offset, a batch boundary at or
// below the high watermark, and returns once the trim is committed (its
// Ack). Only the leader may trim; every replica must hold the log up to
// offset (ErrTrimBehind otherwise).
func (g *Group) Trim(offset int64) (*Ack, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	if !g.IsLeader() {
		return nil, g.notLeader()
	}
	start, hw := g.StartOffset(), g.HighWatermark()
	if offset <= start {
		a := newAck()
		a.resolve(start, nil)
		return a, nil
	}
	if offset > hw {
		return nil, fmt.Errorf("replica: %s: trim to offset %d, past the high watermark %d", g.key, offset, hw)
	}
	if _, ok := g.st.indexEnding(offset); !ok {
		return nil, fmt.Errorf("replica: %s: offset %d is not a batch boundary; trim to the start of a batch", g.key, offset)
	}
	for _, pr := range g.Progress() {
		if pr.Match < offset {
			return nil, fmt.Errorf("%w: %s: node %s holds the log up to offset %d, the trim needs %d", ErrTrimBehind, g.key, pr.Node, pr.Match, offset)
		}
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(offset))
	return g.appendLocal(batch.Control(time.Now().UnixMilli(), batch.ControlTrim, v[:]), true, false)
}

// trimOf returns the new start a committed entry's trim record holds.
func trimOf(e *pb.Entry) (int64, bool) {
	d := e.GetData()
	if e.GetType() != pb.EntryNormal || len(d) < batch.HeaderSize || binary.BigEndian.Uint16(d[batch.OffAttributes:])&batch.AttrControl == 0 {
		return 0, false
	}
	typ, v, ok, err := batch.ControlType(d)
	if err != nil || !ok || typ != batch.ControlTrim || len(v) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v)), true
}

// applyTrim moves this replica's start to offset and compacts its log
// below it. Called by run as the trim is applied.
func (g *Group) applyTrim(offset int64) error {
	s := g.st
	if offset <= g.logStart.Load() {
		return nil
	}
	// The segments below offset go; the log then starts at newBase, a
	// batch boundary, the end of entry baseIdx.
	newBase := g.log.StartAfterDrop(offset)
	s.mu.Lock()
	baseIdx := s.baseIndex
	if newBase > s.baseNext {
		k := sort.Search(len(s.ents), func(i int) bool { return s.ents[i].next >= newBase })
		if k == len(s.ents) || s.ents[k].next != newBase {
			s.mu.Unlock()
			return fmt.Errorf("trim to %d: the log's segments would start at %d, which ends no entry", offset, newBase)
		}
		baseIdx = s.baseIndex + uint64(k) + 1
		s.baseIndex, s.baseTerm, s.baseNext = baseIdx, s.ents[k].term, newBase
		s.ents = append([]meta(nil), s.ents[k+1:]...)
		s.forgetLocked()
	}
	s.start = offset
	hs := s.hard
	st := state{term: hs.GetTerm(), vote: hs.GetVote(), commit: hs.GetCommit(),
		baseIndex: s.baseIndex, baseTerm: s.baseTerm, baseNext: s.baseNext, start: offset, voters: s.conf.GetVoters()}
	s.mu.Unlock()
	g.logStart.Store(offset)
	if err := writeState(g.fs, g.dir, &st); err != nil {
		return fmt.Errorf("trim to %d: save raft state: %w", offset, err)
	}
	g.lg.Info("log start moved", "start", offset, "raft_base_index", baseIdx, "segments_start", newBase)
	g.dropTo = newBase
	return g.dropSegments()
}

// dropSegments drops the segments below the raft log's base that a trim
// left (one still being sealed is dropped at a later tick). Called by run.
func (g *Group) dropSegments() error {
	if g.dropTo == 0 {
		return nil
	}
	got, err := g.log.DropBefore(g.dropTo)
	if err != nil {
		return fmt.Errorf("drop the segments below offset %d: %w", g.dropTo, err)
	}
	if got >= g.dropTo {
		g.dropTo = 0
	}
	return nil
}

// indexEnding returns the raft index of the entry whose batch ends at
// offset.
func (s *storage) indexEnding(offset int64) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if offset == s.baseNext {
		return s.baseIndex, true
	}
	k := sort.Search(len(s.ents), func(i int) bool { return s.ents[i].next >= offset })
	if k == len(s.ents) || s.ents[k].next != offset {
		return 0, false
	}
	return s.baseIndex + uint64(k) + 1, true
}

// errBeforeStart is a read below the log's start.
func (g *Group) errBeforeStart(offset int64) error {
	return result.New(result.OffsetOutOfRange, fmt.Sprintf("offset %d of %s is before the log's start %d", offset, g.key, g.logStart.Load()))
}
