package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Snapshots.
//
// A trim moves every replica's log start and raft base forward (trim.go)
// once every replica holds the log that far, so a replica that is merely
// down is never left behind. One that lost its log (its disk replaced, its
// directory wiped) is: it needs entries below the leader's base, which
// raft no longer has, and raft sends it a snapshot instead.
//
// A buffer's state machine is its log, and everything in the leader's log
// from its start on is still raft log: the leader can send it as entries,
// as to any follower that fell behind. So a snapshot carries no records.
// Its metadata is the entry the leader's log starts after as readers see
// it (the index and term of the entry that ends at the leader's start, or
// the raft base when no entry does) and the voters; its data says where
// the log begins:
//
//	0  [4]byte "SSN1"
//	4  u64     next: the offset after the snapshot's entry
//	12 u64     start: the first offset readers see, at or past next
//
// (20 bytes). The follower installs it (installSnapshot): it empties its
// log and starts it again at next (seglog.Log.Reset), records the new base
// and start in its state file, and then takes appends as any follower:
// raft sends it the leader's batches from next on in messages of at most
// HostOptions.MaxSizePerMsg (1 MiB), each batch's CRC checked as it is
// written, and resends what a lost message or a restart left out. The
// follower's log then holds exactly the leader's batches from the leader's
// start, the same bytes at the same offsets; nothing below the start, which
// a trim removed, is copied again.
//
// The snapshot travels as a raft message (KindRaft), so only between the
// group's replicas, all in the buffer's hub: a group addresses only its
// replicas, and a host drops a raft message from a node that is not one.
//
// Crash safety. The log is emptied first (its files deleted durably), then
// the state file is written with the new base. A replica stopped in between
// finds its old state beside an empty log, or the first segments of its old
// log (Reset deletes them last first): a log that ends early, consistent
// with the old state, whose leader sends the snapshot again. One stopped
// after finds the new state beside an empty log. Opening a group whose log
// holds nothing and does not start where its state says starts the log
// there (recover), so neither case ever leaves a log that claims entries
// it lacks.

// snapMagic starts a snapshot's data.
const snapMagic = "SSN1"

// snapSize is the length of a snapshot's data.
const snapSize = 4 + 8 + 8

// snapData is where a snapshot's log begins.
type snapData struct {
	next  int64 // the offset after the snapshot's entry: the log's first batch
	start int64 // the first offset readers see
}

var errBadSnapshot = errors.New("replica: malformed snapshot")

func (d snapData) encode() []byte {
	b := make([]byte, 0, snapSize)
	b = append(b, snapMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(d.next))
	return binary.BigEndian.AppendUint64(b, uint64(d.start))
}

func decodeSnapshot(b []byte) (snapData, error) {
	if len(b) != snapSize || string(b[:4]) != snapMagic {
		return snapData{}, fmt.Errorf("%w: %d bytes of data, want %d starting %q", errBadSnapshot, len(b), snapSize, snapMagic)
	}
	d := snapData{next: int64(binary.BigEndian.Uint64(b[4:])), start: int64(binary.BigEndian.Uint64(b[12:]))}
	if d.next < 0 || d.start < d.next {
		return snapData{}, fmt.Errorf("%w: log from offset %d, readers from %d", errBadSnapshot, d.next, d.start)
	}
	return d, nil
}

// checkSnapshot checks what a snapshot message brings before raft takes
// it: a snapshot of a real entry whose data decodes.
func checkSnapshot(s *pb.Snapshot) error {
	if s.GetMetadata().GetIndex() == 0 {
		return fmt.Errorf("%w: at index 0", errBadSnapshot)
	}
	_, err := decodeSnapshot(s.GetData())
	return err
}

// Snapshot gives raft, on a leader, the snapshot to send a follower that
// needs entries below the log's base: the entry the log's start follows.
func (s *storage) Snapshot() (*pb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, term := s.baseIndex, s.baseTerm
	if idx == 0 {
		// Nothing was ever cut from this log: the empty snapshot (raft
		// never sends it: it has every entry).
		return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: &idx, Term: &term, ConfState: proto.CloneOf(s.conf)}}, nil
	}
	d := snapData{next: s.baseNext, start: max(s.start, s.baseNext)}
	if d.start > d.next {
		// The start is a batch boundary past the base (a trim keeps the
		// segment that holds it): begin the follower's log there, so that
		// nothing below the start is sent again.
		k := sort.Search(len(s.ents), func(i int) bool { return s.ents[i].next >= d.start })
		if k < len(s.ents) && s.ents[k].next == d.start {
			idx, term, d.next = s.baseIndex+uint64(k)+1, s.ents[k].term, d.start
		}
	}
	return &pb.Snapshot{Data: d.encode(), Metadata: &pb.SnapshotMetadata{Index: &idx, Term: &term, ConfState: proto.CloneOf(s.conf)}}, nil
}

// Snapshots reports how many snapshots this replica installed.
func (g *Group) Snapshots() uint64 { return g.snapshots.Load() }

// installSnapshot replaces this replica's log by the snapshot's: an empty
// log from the snapshot's offset on, whose raft base is the snapshot's
// entry. hs is the Ready's HardState, if any: its term and vote are saved
// with the new base. Called by run, for a Ready that carries a snapshot,
// before its entries are written.
func (g *Group) installSnapshot(snap *pb.Snapshot, hs *pb.HardState) error {
	md := snap.GetMetadata()
	idx, term := md.GetIndex(), md.GetTerm()
	d, err := decodeSnapshot(snap.GetData())
	if err != nil {
		return fmt.Errorf("snapshot at index %d: %w", idx, err) // checked on arrival (checkSnapshot)
	}
	cs := md.GetConfState()
	s := g.st
	s.mu.Lock()
	voters := s.conf.GetVoters()
	s.mu.Unlock()
	if !sameSet(cs.GetVoters(), voters) {
		return fmt.Errorf("a snapshot at index %d names the voters %v; this replica's are %v", idx, cs.GetVoters(), voters)
	}
	g.lg.Warn("this replica's log is behind its leader's start: installing a snapshot; the log starts again there and takes the leader's batches from there on",
		"index", idx, "term", term, "offset", d.next, "start", d.start, "was_next_offset", g.log.NextOffset())

	// Readers first: nothing of the old log is served from here on (the
	// old high watermark is at or below the snapshot's offset).
	if d.start > g.logStart.Load() {
		g.logStart.Store(d.start)
	}
	g.failPending(g.notLeader())
	if err := g.log.Reset(d.next); err != nil {
		return fmt.Errorf("install the snapshot at index %d: empty the log: %w", idx, err)
	}
	s.mu.Lock()
	s.baseIndex, s.baseTerm, s.baseNext, s.start = idx, term, d.next, d.start
	s.ents = nil
	s.forgetLocked()
	if hs == nil {
		hs = s.hard
	}
	hterm, vote, commit := hs.GetTerm(), hs.GetVote(), idx
	s.hard = &pb.HardState{Term: &hterm, Vote: &vote, Commit: &commit}
	s.conf = &pb.ConfState{Voters: voters, Learners: g.learners}
	st := state{term: hterm, vote: vote, commit: commit,
		baseIndex: idx, baseTerm: term, baseNext: d.next, start: d.start, voters: voters}
	s.mu.Unlock()
	if err := writeState(g.fs, g.dir, &st); err != nil {
		return fmt.Errorf("install the snapshot at index %d: save raft state: %w", idx, err)
	}
	g.saved.term, g.saved.vote = hterm, vote
	g.applied = idx
	g.appliedTerm.Store(term)
	g.dropTo = 0
	g.hwMu.Lock()
	g.hw = d.next
	if g.hwCh != nil {
		close(g.hwCh)
		g.hwCh = nil
	}
	g.hwMu.Unlock()
	g.snapshots.Add(1)
	g.lg.Info("snapshot installed", "index", idx, "offset", d.next, "start", d.start)
	return nil
}

// reportSnapshot tells raft, on a leader, what became of a snapshot
// message: it carries the whole snapshot, so once queued it is as good as
// delivered (lost on the way, the follower's answer to the next append
// asks for it again); refused, it is retried after a heartbeat.
func (g *Group) reportSnapshot(to uint64, sent bool) {
	if sent {
		g.lg.Info("sent a snapshot to a replica behind the log's start", "to", g.replicas[to])
		g.rn.ReportSnapshot(to, raft.SnapshotFinish)
		return
	}
	g.rn.ReportSnapshot(to, raft.SnapshotFailure)
}
