package replica

import (
	"encoding/binary"
	"errors"
	"fmt"

	raft "go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Quiet groups.
//
// A raft leader heartbeats every group it leads, busy or not: with a
// thousand idle buffers that is tens of thousands of messages a second
// between two nodes. So an idle group goes quiet, as CockroachDB's ranges
// do: once the leader has had nothing pending, and every live follower has
// matched its whole log and the commit point, for QuiesceTicks ticks, it
// stops its clock and sends each live follower a quiesce frame
// (KindQuiesce) naming its term and last index. A follower whose own term,
// leader, last index and commit point are exactly those stops its clock
// too; one that does not match ignores the frame, keeps its clock, and in
// time campaigns, and its pre-vote wakes the leader.
//
// A quiet group sends nothing and ticks nothing. It wakes (its clock runs
// again) on a raft message other than the leader-follower traffic of
// appends and heartbeats (see wakes), on a proposal, on an append made on a
// follower, and, on a follower, when HostOptions.Alive says its leader's
// node is gone: then the election timeout runs out and the followers elect
// a new leader, as if the leader had stopped heartbeating. Groups go quiet
// only when HostOptions.Alive is set.

// KindQuiesce is the transport frame kind of a leader's quiesce notice:
// u16 key length, key, u64 term, u64 last index.
const KindQuiesce byte = 5

var errBadQuiesce = errors.New("replica: malformed quiesce frame")

func encodeQuiesce(key string, term, index uint64) []byte {
	p := make([]byte, 0, 2+len(key)+16)
	p = binary.BigEndian.AppendUint16(p, uint16(len(key)))
	p = append(p, key...)
	p = binary.BigEndian.AppendUint64(p, term)
	return binary.BigEndian.AppendUint64(p, index)
}

func decodeQuiesce(p []byte) (key string, term, index uint64, err error) {
	if len(p) < 2 {
		return "", 0, 0, fmt.Errorf("%w: %d bytes", errBadQuiesce, len(p))
	}
	n := int(binary.BigEndian.Uint16(p))
	if n == 0 || n > maxKeyLen || len(p) != 2+n+16 {
		return "", 0, 0, fmt.Errorf("%w: key of %d bytes in a frame of %d", errBadQuiesce, n, len(p))
	}
	key = string(p[2 : 2+n])
	p = p[2+n:]
	return key, binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:]), nil
}

// handleQuiesce passes a leader's quiesce notice to its group.
func (h *Host) handleQuiesce(from string, p []byte) {
	key, term, index, err := decodeQuiesce(p)
	h.control(from, "quiesce", key, err, &proposal{op: opQuiesce, qterm: term, qindex: index, qfrom: RaftID(from)})
}

// control hands a control frame's operation (quiesce, repair) to the group
// key names, from one of its replicas; a frame that did not decode (err),
// or names a group or sender it should not, is counted and dropped. A
// group whose queue is full is busy, and the notice moot: it is dropped.
func (h *Host) control(from, what, key string, err error, p *proposal) {
	if err != nil {
		h.dropped.Add(1)
		h.log.Warn("dropping a "+what+" frame", "from", from, "err", err)
		return
	}
	g := h.Group(key)
	if g == nil || !g.isReplica(RaftID(from)) {
		h.dropped.Add(1)
		return
	}
	select {
	case g.props <- p:
	default:
	}
}

// leaderAlive reports whether g's leader, as last known, is this node or
// alive by HostOptions.Alive.
func (h *Host) leaderAlive(g *Group) bool {
	l := g.Leader()
	switch {
	case l == "":
		return false
	case l == h.self:
		return true
	}
	return h.opts.Alive != nil && h.opts.Alive(l)
}

// wakes reports whether a message of type t wakes a quiet group. The
// traffic between a live leader and its followers does not: a follower
// needs no clock while its leader lives (Alive watches that), and a
// leader needs none to answer, or to send what raft's Ready gives it. A
// heartbeat sent in the tick that made the group quiet, or its answer,
// must not wake it again. Everything else does: a campaign (pre-votes,
// votes, a leadership transfer), a proposal, a snapshot.
func wakes(t pb.MessageType) bool {
	switch t {
	case pb.MessageType_MsgHeartbeat, pb.MessageType_MsgHeartbeatResp, pb.MessageType_MsgApp, pb.MessageType_MsgAppResp:
		return false
	}
	return true
}

// wake starts a quiet group's clock again; the leader counts its idle
// ticks anew. Called by run, on everything that wakes a group: messages
// (heartbeat answers too, which must not keep a group awake, so the count
// restarts only when the group was quiet), proposals, ticks.
func (g *Group) wake() {
	if g.quiet.Load() {
		g.quiet.Store(false)
		g.idleTicks = 0
	}
}

// nudge wakes a quiet group from outside run (an append on a follower).
func (g *Group) nudge() {
	if g.quiet.Load() {
		select {
		case g.tickc <- struct{}{}:
		default:
		}
	}
}

// maybeQuiesce, called by run after a tick, counts the leader's idle ticks
// and makes the group quiet after QuiesceTicks of them.
func (g *Group) maybeQuiesce() {
	alive := g.h.opts.Alive
	if alive == nil || !g.isLeader || len(g.waiting)+len(g.byIndex)+len(g.byOffset) > 0 {
		g.idleTicks = 0
		return
	}
	last, _ := g.st.LastIndex()
	bs := g.rn.BasicStatus()
	if bs.GetCommit() != last || g.applied != last {
		g.idleTicks = 0
		return
	}
	caughtUp := true
	var followers []string
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == g.id {
			return
		}
		name := g.replicas[id]
		if !alive(name) {
			return // a dead follower catches up when it is back (its campaign wakes us)
		}
		followers = append(followers, name)
		if pr.Match != last {
			caughtUp = false
		}
	})
	if !caughtUp {
		g.idleTicks = 0
		return
	}
	g.idleTicks++
	if g.idleTicks < g.h.opts.QuiesceTicks {
		return
	}
	g.quiet.Store(true)
	p := encodeQuiesce(g.key, bs.GetTerm(), last)
	for _, f := range followers {
		g.h.send.Send(f, KindQuiesce, p)
	}
}

// followQuiesce makes a follower quiet when the leader's notice matches its
// own state exactly. Called by run.
func (g *Group) followQuiesce(term, index, from uint64) {
	if g.isLeader {
		return
	}
	last, _ := g.st.LastIndex()
	bs := g.rn.BasicStatus()
	if bs.GetTerm() == term && bs.Lead == from && last == index && bs.GetCommit() == index && g.applied == index {
		g.quiet.Store(true)
		g.idleTicks = 0
	}
}

// Quiet reports whether the group is quiet now (its clock stands still).
func (g *Group) Quiet() bool { return g.quiet.Load() }
