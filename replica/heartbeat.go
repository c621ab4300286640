package replica

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Coalesced heartbeats. A leader's group heartbeats each of its followers
// every HeartbeatTicks, and each follower answers; with many busy groups
// between two nodes that would be a message per group and direction each
// heartbeat period. Instead a group hands its heartbeats and answers to
// the host, which gathers those for one peer for a moment (every group's
// heartbeat of one tick comes within it) and sends them as one frame.
// Idle groups go quiet and send none at all (quiesce.go).
//
// Frame (docs/cluster.md), a sequence of entries:
//
//	KindHeartbeats: { u16 key length, key, u8 type (0 heartbeat,
//	                 1 answer), u64 term, u64 commit, u16 length +
//	                 context }
//
// The sender and receiver of each message are the frame's: its sender's
// raft id and this host's, as the transport authenticated them.
const KindHeartbeats byte = 11

// heartbeatLinger is how long the host gathers a peer's heartbeats before
// it sends them: a fraction of a tick, far below an election timeout.
const heartbeatLinger = 10 * time.Millisecond

// maxHeartbeatFrame bounds one frame of heartbeats; more go in another.
const maxHeartbeatFrame = 1 << 20

const (
	hbHeartbeat byte = 0
	hbAnswer    byte = 1
)

// heartbeats gathers heartbeats per peer.
type heartbeats struct {
	mu      sync.Mutex
	pending map[string][]byte // peer → entries not yet sent
}

// isHeartbeat reports whether m is a heartbeat or its answer, which the
// host coalesces.
func isHeartbeat(m *pb.Message) bool {
	t := m.GetType()
	return t == pb.MsgHeartbeat || t == pb.MsgHeartbeatResp
}

// queueHeartbeat adds m, a heartbeat or answer of group key, to the
// entries for node to.
func (h *Host) queueHeartbeat(to, key string, m *pb.Message) {
	typ := hbHeartbeat
	if m.GetType() == pb.MsgHeartbeatResp {
		typ = hbAnswer
	}
	h.hb.mu.Lock()
	if h.hb.pending == nil {
		h.hb.pending = map[string][]byte{}
	}
	p := h.hb.pending[to]
	first := len(p) == 0
	p = appendHeartbeat(p, key, typ, m.GetTerm(), m.GetCommit(), m.GetContext())
	full := len(p) >= maxHeartbeatFrame
	if full {
		delete(h.hb.pending, to)
	} else {
		h.hb.pending[to] = p
	}
	h.hb.mu.Unlock()
	switch {
	case full:
		h.sendHeartbeats(to, p)
	case first:
		time.AfterFunc(heartbeatLinger, func() { h.flushHeartbeats(to) })
	}
}

// flushHeartbeats sends the heartbeats gathered for node to.
func (h *Host) flushHeartbeats(to string) {
	h.hb.mu.Lock()
	p := h.hb.pending[to]
	delete(h.hb.pending, to)
	h.hb.mu.Unlock()
	if len(p) > 0 {
		h.sendHeartbeats(to, p)
	}
}

func (h *Host) sendHeartbeats(to string, p []byte) {
	if !h.send.Send(to, KindHeartbeats, p) {
		// Lost, as a raft message may be: the leader heartbeats again next
		// period, and a follower that hears nothing campaigns.
		h.dropped.Add(1)
	}
}

func appendHeartbeat(p []byte, key string, typ byte, term, commit uint64, ctx []byte) []byte {
	p = binary.BigEndian.AppendUint16(p, uint16(len(key)))
	p = append(p, key...)
	p = append(p, typ)
	p = binary.BigEndian.AppendUint64(p, term)
	p = binary.BigEndian.AppendUint64(p, commit)
	p = binary.BigEndian.AppendUint16(p, uint16(len(ctx)))
	return append(p, ctx...)
}

// heartbeatEntry is one decoded entry of a heartbeats frame.
type heartbeatEntry struct {
	key          string
	typ          byte
	term, commit uint64
	ctx          []byte
}

// decodeHeartbeats calls fn for each entry of a heartbeats frame, and
// stops at the first malformed one with an error.
func decodeHeartbeats(p []byte, fn func(e heartbeatEntry)) error {
	for len(p) > 0 {
		if len(p) < 2 {
			return fmt.Errorf("%w: heartbeat entry of %d bytes", errFrame, len(p))
		}
		n := int(binary.BigEndian.Uint16(p))
		if n == 0 || n > maxKeyLen || len(p) < 2+n+1+16+2 {
			return fmt.Errorf("%w: heartbeat entry with a key of %d bytes in %d", errFrame, n, len(p))
		}
		e := heartbeatEntry{key: string(p[2 : 2+n])}
		q := p[2+n:]
		e.typ = q[0]
		if e.typ != hbHeartbeat && e.typ != hbAnswer {
			return fmt.Errorf("%w: heartbeat entry of unknown type %d", errFrame, e.typ)
		}
		e.term = binary.BigEndian.Uint64(q[1:])
		e.commit = binary.BigEndian.Uint64(q[9:])
		c := int(binary.BigEndian.Uint16(q[17:]))
		if len(q) < 19+c {
			return fmt.Errorf("%w: heartbeat context of %d bytes in %d", errFrame, c, len(q)-19)
		}
		if c > 0 {
			e.ctx = q[19 : 19+c]
		}
		fn(e)
		p = q[19+c:]
	}
	return nil
}

// handleHeartbeats delivers each heartbeat of a frame from node from to
// its group, checked as any raft message (deliverRaft).
func (h *Host) handleHeartbeats(from string, p []byte) {
	fromID := RaftID(from)
	err := decodeHeartbeats(p, func(e heartbeatEntry) {
		typ := pb.MsgHeartbeat
		if e.typ == hbAnswer {
			typ = pb.MsgHeartbeatResp
		}
		to, term, commit := h.id, e.term, e.commit
		m := &pb.Message{Type: &typ, From: &fromID, To: &to, Term: &term, Commit: &commit}
		if e.ctx != nil {
			m.Context = append([]byte(nil), e.ctx...) // p is the transport's
		}
		h.deliverRaft(from, e.key, m)
	})
	if err != nil {
		h.dropped.Add(1)
		h.log.Warn("dropping the rest of a heartbeats frame", "from", from, "err", err)
	}
}
