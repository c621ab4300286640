package replica

import (
	"errors"
	"sort"

	raft "go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/sensehq/sense/seglog"
)

// Repairing a damaged log.
//
// Every read of a replica's log checks each batch's CRC, and a damaged
// batch is never served. When one is found in a replicated buffer, by a
// reader or by raft itself (sending entries to a follower, applying
// committed ones), the replica repairs its log from the others:
//
//  1. It cuts its log at the damaged batch: that batch and everything
//     after it go (seglog.Log.Truncate), its high watermark comes down to
//     what is left, and appends it had not committed fail with NOT_LEADER.
//  2. It restarts raft over the shorter log, as a follower (a leader gives
//     up the lead; the others elect one after the election timeout).
//  3. The leader finds the follower's log shorter and sends it the
//     entries again, from the cut on, as to any follower that fell behind.
//
// The leader, though, still believes the repaired follower holds what it
// acknowledged (raft assumes a persisted entry is never lost): its
// heartbeats would carry a commit index past the follower's log, and it
// would never send the lost entries again. So the follower tells it
// (KindRepair, with the group key, at the cut and then on every heartbeat
// of that leader's term), and the leader hands its leadership to another
// follower. A new leader starts every follower's progress afresh, probes
// the repaired one, and fills its log from where it was cut. Until then the
// follower clips the commit index of heartbeats to its own log.
//
// A replica that lost entries could, by its vote, help elect a leader that
// lacks entries it had helped commit. So until it is repaired it neither
// votes, nor campaigns, nor takes a leadership transfer: it is repaired
// once it has applied the commit index of the first append the leader sent
// it since the cut (the leader's commit covers every entry committed
// before it, this replica's acknowledgements included). Raft reads a
// damaged batch of its own log through storage.Entries, where any error
// but ErrCompacted would make it panic; storage panics first, with a
// damagePanic, which runOnce recovers to repair.

// damagePanic carries a damaged batch's place out of raft's call stack.
type damagePanic struct {
	offset int64 // the damaged batch's base offset
	err    error
}

// damaged asks run to repair the log when err reports a damaged batch
// (from a reader).
func (g *Group) damaged(err error) {
	var ce *seglog.CorruptionError
	if !errors.As(err, &ce) || ce.Offset < 0 {
		return
	}
	select {
	case g.props <- &proposal{op: opRepair, qoffset: ce.Offset, qerr: err}:
	default: // a repair is queued or running; a later read asks again
	}
}

// Repairs reports how many times this replica cut a damaged log.
func (g *Group) Repairs() uint64 { return g.repairs.Load() }

// Repairing reports whether this replica is repairing its log (and so does
// not vote).
func (g *Group) Repairing() bool { return g.repairState.Load() }

// newRawNode starts raft over the group's storage.
func (g *Group) newRawNode(applied uint64) (*raft.RawNode, error) {
	return raft.NewRawNode(&raft.Config{
		ID:              g.id,
		ElectionTick:    g.h.opts.ElectionTicks,
		HeartbeatTick:   g.h.opts.HeartbeatTicks,
		Storage:         g.st,
		Applied:         applied,
		MaxSizePerMsg:   g.h.opts.MaxSizePerMsg,
		MaxInflightMsgs: 256,
		// A follower far behind (one refilled after a snapshot) is sent
		// its entries as fast as it acknowledges them: bound what one Ready
		// reads from the log and queues for it to half the transport's
		// queue for a peer (cluster.MaxQueueBytes, 64 MiB), rather than
		// 256 messages of MaxSizePerMsg, most of which the transport would
		// refuse.
		MaxInflightBytes: 32 * g.h.opts.MaxSizePerMsg,
		CheckQuorum:      true,
		PreVote:          true,
		// A proposal made on a replica that is not the leader is dropped
		// (propose answers NOT_LEADER), never passed on to the leader:
		// the leader appends a forwarded proposal without checking its
		// producer sequences, so a retry the leader already holds would
		// be stored twice. Every batch enters the log through its
		// leader's own propose (see docs/cluster.md, Idempotence).
		DisableProposalForwarding: true,
		Logger:                    raftLogger{g.lg},
	})
}

// repair cuts the log at the batch holding offset and restarts raft over
// what is left. Called by run.
func (g *Group) repair(offset int64, cause error) {
	s := g.st
	s.mu.Lock()
	// The entry holding offset: the first whose batch ends past it.
	k := sort.Search(len(s.ents), func(i int) bool { return s.ents[i].next > offset })
	if k == len(s.ents) || offset < s.baseNext {
		s.mu.Unlock()
		return // already cut (a second report of the same damage)
	}
	index := s.baseIndex + uint64(k) + 1
	from := s.offsetOf(index)
	s.mu.Unlock()
	g.lg.Error("a batch of this replica's log is damaged: cutting the log there and fetching it again from the leader",
		"offset", offset, "index", index, "cut_from_offset", from, "err", cause)

	g.failPending(g.notLeader())
	// Readers first: nothing at or past the cut is served from here on.
	g.hwMu.Lock()
	if g.hw > from {
		g.hw = from
	}
	g.hwMu.Unlock()
	if err := g.log.Truncate(from); err != nil {
		g.fail(err)
		return
	}
	s.mu.Lock()
	s.ents = s.ents[:k]
	s.forgetLocked()
	last := s.lastLocked()
	commit := min(s.hard.GetCommit(), last)
	term, vote := s.hard.GetTerm(), s.hard.GetVote()
	s.hard = &pb.HardState{Term: &term, Vote: &vote, Commit: &commit}
	s.mu.Unlock()
	g.applied = min(g.applied, last)
	rn, err := g.newRawNode(g.applied)
	if err != nil {
		g.fail(err)
		return
	}
	g.rn = rn
	g.isLeader = false
	g.leader.Store(0)
	g.quiet.Store(false)
	g.repairing, g.repairTarget, g.repairTerm = true, 0, term
	g.repairState.Store(true)
	g.repairs.Add(1)
}

// checkLost starts a repair when a heartbeat's commit index lies past this
// replica's log. A leader sends a follower a commit index no higher than
// what the follower acknowledged, so this replica lost entries it had
// acknowledged: its directory was wiped, replaced by an old copy, or its
// disk replaced. Raft assumes an acknowledged entry is never lost (it
// would panic on that commit index), and its leader would go on sending
// from where it believes this replica's log ends. So the replica repairs
// as after a cut: it asks that leader to hand over the lead, so that the
// next one probes it afresh and refills its log (with a snapshot when it
// needs entries below the leader's base, snapshot.go), and it votes for no
// one meanwhile. Called by run.
func (g *Group) checkLost(m *pb.Message) {
	last, _ := g.st.LastIndex()
	if m.GetCommit() <= last {
		return
	}
	g.lg.Error("this replica's leader believes it holds entries its log lacks: the log was lost (a wiped or replaced directory or disk); it is filled in again from a new leader, without voting meanwhile",
		"leader", g.replicas[m.GetFrom()], "leader_commit", m.GetCommit(), "last_index", last)
	g.repairing, g.repairTarget, g.repairTerm = true, 0, m.GetTerm()
	g.repairState.Store(true)
	g.repairs.Add(1)
}

// repairStep filters what a repairing replica takes: no votes, no
// campaigns; a leader of the term of the cut is asked to step aside, and
// the commit index its heartbeats carry is clipped to this log; the first
// append of a later leader gives the target. It reports whether m is to be
// stepped.
func (g *Group) repairStep(m *pb.Message) bool {
	switch m.GetType() {
	case pb.MessageType_MsgVote, pb.MessageType_MsgPreVote, pb.MessageType_MsgTimeoutNow:
		return false
	case pb.MessageType_MsgHeartbeat, pb.MessageType_MsgApp:
		if m.GetTerm() <= g.repairTerm {
			if name := g.replicas[m.GetFrom()]; name != "" {
				g.h.send.Send(name, KindRepair, encodeRepair(g.key))
			}
			// The commit index raft has, not more: the leader's counts
			// entries this replica acknowledged and then lost, and raft
			// would panic on a commit index past its log. (Not this log's
			// end either: a log restored from an old copy may hold entries
			// no leader sent it since.)
			if c, have := m.GetCommit(), g.rn.BasicStatus().GetCommit(); c > have {
				m.Commit = &have
			}
			return true
		}
		if m.GetType() == pb.MessageType_MsgApp && g.repairTarget == 0 {
			g.repairTarget = max(m.GetCommit(), 1)
		}
	}
	return true
}

// KindRepair is the transport frame kind of a repairing follower's notice
// to its leader: u16 key length, key.
const KindRepair byte = 6

var errBadRepair = errors.New("replica: malformed repair frame")

func encodeRepair(key string) []byte {
	p := make([]byte, 0, 2+len(key))
	p = append(p, byte(len(key)>>8), byte(len(key)))
	return append(p, key...)
}

func decodeRepair(p []byte) (string, error) {
	if len(p) < 2 {
		return "", errBadRepair
	}
	n := int(p[0])<<8 | int(p[1])
	if n == 0 || n > maxKeyLen || len(p) != 2+n {
		return "", errBadRepair
	}
	return string(p[2:]), nil
}

// handleRepair passes a follower's repair notice to its group.
func (h *Host) handleRepair(from string, p []byte) {
	key, err := decodeRepair(p)
	h.control(from, "repair", key, err, &proposal{op: opPeerRepair, qfrom: RaftID(from)})
}

// peerRepaired hands the lead to another follower than the repairing one,
// whose progress this leader can no longer trust. Called by run.
func (g *Group) peerRepaired(from uint64) {
	g.wake()
	if !g.isLeader {
		return
	}
	g.lg.Warn("a follower cut its damaged log; handing the lead over so that a new leader refills it", "follower", g.replicas[from])
	g.transferExcept(from)
}

// checkRepaired ends the repair once the target is applied. Called by run.
func (g *Group) checkRepaired() {
	if g.repairing && g.repairTarget > 0 && g.applied >= g.repairTarget {
		g.repairing = false
		g.repairState.Store(false)
		g.lg.Info("log repaired from the leader", "applied", g.applied)
	}
}
