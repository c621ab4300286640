package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/txn"
)

// Transaction version 2 (KIP-890 part 2) in a cluster. A Produce of
// version 12 adds its transactional batches' partitions to the producer's
// transaction itself, before they are appended; it reaches the partition's
// leader, which is often not the transaction coordinator (the leader of
// __offsets). That leader asks the coordinator to add them, with a cluster
// request, and appends once the answer says they are added (durably, in
// the replicated __offsets log) and its own replica of that log has
// applied the add (txn.Coordinator.BeginProduce waits for it), so a
// transactional batch is never stored in a partition the coordinator's log
// does not name, as on a node alone.
//
// Frames (docs/cluster.md):
//
//	kindTxnAdd:     u64 request id, u16 length + transactional id,
//	                i64 producer id, i16 epoch, u16 partition count,
//	                count × (u16 length + topic, i32 partition)
//	kindTxnAddResp: u64 request id, u8 outcome, u16 length + message
//
// Every length is checked against the bytes received; nothing may
// follow (FuzzTxnAdd).
const (
	kindTxnAdd     byte = 20
	kindTxnAddResp byte = 21
)

// maxTxnAddParts is the most partitions one add names.
const maxTxnAddParts = 1<<16 - 1

// txnAddTimeout bounds the wait for the coordinator's answer.
const txnAddTimeout = 10 * time.Second

// Outcomes of an add, as the answer carries them.
const (
	txnAddOK byte = iota
	txnAddNotCoordinator
	txnAddFenced
	txnAddInvalidState
	txnAddConcurrent
	txnAddInvalidMapping
	txnAddFailed // any other error, with its message
)

// txnAddRequest is a decoded kindTxnAdd frame.
type txnAddRequest struct {
	id    uint64
	txnID string
	pid   int64
	epoch int16
	parts []txn.TopicPartition
}

var errTxnAddFrame = errors.New("malformed transaction add frame")

func encodeTxnAdd(r txnAddRequest) []byte {
	p := make([]byte, 0, 8+2+len(r.txnID)+8+2+2+len(r.parts)*16)
	p = binary.BigEndian.AppendUint64(p, r.id)
	p = binary.BigEndian.AppendUint16(p, uint16(len(r.txnID)))
	p = append(p, r.txnID...)
	p = binary.BigEndian.AppendUint64(p, uint64(r.pid))
	p = binary.BigEndian.AppendUint16(p, uint16(r.epoch))
	p = binary.BigEndian.AppendUint16(p, uint16(len(r.parts)))
	for _, tp := range r.parts {
		p = binary.BigEndian.AppendUint16(p, uint16(len(tp.Topic)))
		p = append(p, tp.Topic...)
		p = binary.BigEndian.AppendUint32(p, uint32(tp.Partition))
	}
	return p
}

// readString reads a u16 length and that many bytes of p.
func readString(p []byte) (string, []byte, bool) {
	if len(p) < 2 {
		return "", nil, false
	}
	n := int(binary.BigEndian.Uint16(p))
	if len(p) < 2+n {
		return "", nil, false
	}
	return string(p[2 : 2+n]), p[2+n:], true
}

func decodeTxnAdd(p []byte) (txnAddRequest, error) {
	var r txnAddRequest
	if len(p) < 8 {
		return r, fmt.Errorf("%w: %d bytes", errTxnAddFrame, len(p))
	}
	r.id = binary.BigEndian.Uint64(p)
	var ok bool
	if r.txnID, p, ok = readString(p[8:]); !ok || r.txnID == "" {
		return r, fmt.Errorf("%w: transactional id", errTxnAddFrame)
	}
	if len(p) < 12 {
		return r, fmt.Errorf("%w: producer id, epoch and count in %d bytes", errTxnAddFrame, len(p))
	}
	r.pid = int64(binary.BigEndian.Uint64(p))
	r.epoch = int16(binary.BigEndian.Uint16(p[8:]))
	n := int(binary.BigEndian.Uint16(p[10:]))
	p = p[12:]
	// A partition takes 6 bytes at least (an empty topic name cannot be
	// one, but is refused below, after the bound).
	if n == 0 || n > len(p)/6 {
		return r, fmt.Errorf("%w: %d partitions in %d bytes", errTxnAddFrame, n, len(p))
	}
	r.parts = make([]txn.TopicPartition, 0, n)
	for range n {
		var tp txn.TopicPartition
		if tp.Topic, p, ok = readString(p); !ok || tp.Topic == "" || len(p) < 4 {
			return r, fmt.Errorf("%w: partition %d", errTxnAddFrame, len(r.parts))
		}
		tp.Partition = int32(binary.BigEndian.Uint32(p))
		p = p[4:]
		r.parts = append(r.parts, tp)
	}
	if len(p) != 0 {
		return r, fmt.Errorf("%w: %d bytes after the partitions", errTxnAddFrame, len(p))
	}
	return r, nil
}

func encodeTxnAddResp(id uint64, err error) []byte {
	outcome, msg := txnAddOK, ""
	switch {
	case err == nil:
	case errors.Is(err, txn.ErrNotCoordinator):
		outcome = txnAddNotCoordinator
	case errors.Is(err, txn.ErrFenced):
		outcome = txnAddFenced
	case errors.Is(err, txn.ErrInvalidState):
		outcome = txnAddInvalidState
	case errors.Is(err, txn.ErrConcurrent):
		outcome = txnAddConcurrent
	case errors.Is(err, txn.ErrInvalidMapping):
		outcome = txnAddInvalidMapping
	default:
		outcome = txnAddFailed
	}
	if err != nil {
		msg = err.Error()
		msg = msg[:min(len(msg), 1024)]
	}
	p := make([]byte, 0, 8+1+2+len(msg))
	p = binary.BigEndian.AppendUint64(p, id)
	p = append(p, outcome)
	p = binary.BigEndian.AppendUint16(p, uint16(len(msg)))
	return append(p, msg...)
}

// decodeTxnAddResp returns the request id and the coordinator's answer as
// an error that wraps the txn package's (nil when added).
func decodeTxnAddResp(p []byte) (uint64, error, error) {
	if len(p) < 9 {
		return 0, nil, fmt.Errorf("%w: answer of %d bytes", errTxnAddFrame, len(p))
	}
	id, outcome := binary.BigEndian.Uint64(p), p[8]
	msg, rest, ok := readString(p[9:])
	if !ok || len(rest) != 0 || outcome > txnAddFailed {
		return id, nil, fmt.Errorf("%w: answer", errTxnAddFrame)
	}
	var sentinel error
	switch outcome {
	case txnAddOK:
		return id, nil, nil
	case txnAddNotCoordinator:
		sentinel = txn.ErrNotCoordinator
	case txnAddFenced:
		sentinel = txn.ErrFenced
	case txnAddInvalidState:
		sentinel = txn.ErrInvalidState
	case txnAddConcurrent:
		sentinel = txn.ErrConcurrent
	case txnAddInvalidMapping:
		sentinel = txn.ErrInvalidMapping
	default:
		return id, fmt.Errorf("the transaction coordinator: %s", msg), nil
	}
	return id, fmt.Errorf("%w (the transaction coordinator: %s)", sentinel, msg), nil
}

// txnAdds is a cluster node's side of the adds: the requests it waits for
// an answer to, and what runs the adds it is asked for (the Kafka edge's
// coordinator; nil while this node has none).
type txnAdds struct {
	next    atomic.Uint64
	waiting sync.Map // request id → chan error
	handler atomic.Pointer[func(ctx context.Context, txnID string, pid int64, epoch int16, parts []txn.TopicPartition) error]
	// The adds run for other nodes: ended by stop (the runtime's close),
	// which waits for them (wg); mu orders their start with it.
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

// stop ends the adds run for other nodes and waits for them.
func (t *txnAdds) stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
}

// start runs fn in a goroutine of its own unless stop was called.
func (t *txnAdds) start(fn func(ctx context.Context)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		fn(t.ctx)
	}()
}

// AddPartitionsToTxn is kafka.Cluster: it adds parts to the transaction of
// txnID at the coordinator, the leader of __offsets (this node, or
// another by a cluster request), and returns once it is added, or the
// coordinator's error (txn's errors, wrapped).
func (c *clusterRuntime) AddPartitionsToTxn(ctx context.Context, txnID string, pid int64, epoch int16, parts []txn.TopicPartition) error {
	// A frame names at most 65535 partitions.
	for len(parts) > maxTxnAddParts {
		if err := c.AddPartitionsToTxn(ctx, txnID, pid, epoch, parts[:maxTxnAddParts]); err != nil {
			return err
		}
		parts = parts[maxTxnAddParts:]
	}
	leader := ""
	if c.offsets != nil {
		leader = c.offsets.Leader()
	}
	switch {
	case leader == "":
		return fmt.Errorf("%w: the committed-offsets log has no leader", txn.ErrNotCoordinator)
	case leader == c.cfg.Node.ID:
		h := c.txnAdds.handler.Load()
		if h == nil {
			return fmt.Errorf("%w: node %s runs no Kafka listener", txn.ErrNotCoordinator, leader)
		}
		return (*h)(ctx, txnID, pid, epoch, parts)
	}
	id := c.txnAdds.next.Add(1)
	ch := make(chan error, 1)
	c.txnAdds.waiting.Store(id, ch)
	defer c.txnAdds.waiting.Delete(id)
	if !c.sender.Send(leader, kindTxnAdd, encodeTxnAdd(txnAddRequest{id: id, txnID: txnID, pid: pid, epoch: epoch, parts: parts})) {
		return fmt.Errorf("%w: cannot reach node %s, which coordinates transactions", txn.ErrNotCoordinator, leader)
	}
	t := time.NewTimer(txnAddTimeout)
	defer t.Stop()
	select {
	case err := <-ch:
		return err
	case <-t.C:
		return fmt.Errorf("%w: node %s did not answer within %s", txn.ErrNotCoordinator, leader, txnAddTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handleTxnAdd runs an add another node asks for and answers it.
func (c *clusterRuntime) handleTxnAdd(from string, payload []byte) {
	r, err := decodeTxnAdd(payload)
	if err != nil {
		c.log.Warn("dropping a cluster frame", "kind", "transaction add", "from", from, "err", err)
		return
	}
	h := c.txnAdds.handler.Load()
	if h == nil {
		c.sender.Send(from, kindTxnAddResp, encodeTxnAddResp(r.id, fmt.Errorf("%w: node %s runs no Kafka listener", txn.ErrNotCoordinator, c.cfg.Node.ID)))
		return
	}
	c.txnAdds.start(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, txnAddTimeout)
		defer cancel()
		err := (*h)(ctx, r.txnID, r.pid, r.epoch, r.parts)
		c.sender.Send(from, kindTxnAddResp, encodeTxnAddResp(r.id, err))
	})
}

// handleTxnAddResp hands an answer to the add waiting for it.
func (c *clusterRuntime) handleTxnAddResp(from string, payload []byte) {
	id, answer, err := decodeTxnAddResp(payload)
	if err != nil {
		c.log.Warn("dropping a cluster frame", "kind", "transaction add answer", "from", from, "err", err)
		return
	}
	if ch, ok := c.txnAdds.waiting.Load(id); ok {
		select {
		case ch.(chan error) <- answer:
		default:
		}
	}
}
