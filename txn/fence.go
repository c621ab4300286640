package txn

import "sync"

// The fence of EndTxn. Kafka's EndTxn before KIP-890 (versions 0 to 4)
// names the producer id and epoch, not the transaction: an EndTxn delayed
// on one connection (its producer timed out, aborted, and began another
// transaction on another connection) would end the producer's next
// transaction with the outcome meant for the earlier one (the anomaly
// Jepsen found in Kafka's protocol, analysis of Bufstream 0.1, 2024).
// For those versions Sense fences EndTxn by connection (EndTxn 5, of
// transaction version 2, fences by epoch instead: EndTxnBump):
//
//   - each transaction of a transactional id has a number (Txn.Seq,
//     durable), and the coordinator notes, in memory, the order in which
//     transactions began and connections (Sessions) opened;
//   - a connection remembers, per transactional id, the number of the
//     last transaction it carried a request of (InitProducerId,
//     AddPartitionsToTxn, AddOffsetsToTxn, EndTxn);
//   - an EndTxn ends the ongoing transaction only if its connection
//     carried a request of that transaction, or was opened after it
//     began. Otherwise it was sent before that transaction existed, for an
//     earlier one, and is refused with INVALID_TXN_STATE.
//
// A connection's requests are handled in order, so a delayed EndTxn is
// handled before any later request on its own connection; a client that
// reconnects opens a new connection after the transaction began. After a
// restart of a node alone every connection is new, and the ongoing
// transactions were aborted. After a cluster's failover they go on at the
// new coordinator, which numbers them as it applied their beginning: an
// EndTxn there on a connection opened before that, which carried none of
// the transaction, is refused like a delayed one (the client's connection
// to the old coordinator carried it).

// Session is one client connection, for the fence.
type Session struct {
	opened uint64
	mu     sync.Mutex
	last   map[string]uint64
}

// NewSession returns the session of a connection opened now.
func (c *Coordinator) NewSession() *Session {
	return &Session{opened: c.clock.Add(1)}
}

func (s *Session) note(id string, seq uint64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = map[string]uint64{}
	}
	s.last[id] = seq
}

// mayEnd reports whether an EndTxn on this connection may end
// transaction seq of id, which began at clock beganAt.
func (s *Session) mayEnd(id string, seq, beganAt uint64) bool {
	if s == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.last[id]
	return ok && last == seq || s.opened > beganAt
}
