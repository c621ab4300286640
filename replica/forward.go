package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
)

// Forwarding: any node accepts a produce for any buffer and hands the
// batch to the buffer's leader (the design's stateless router). A follower
// forwards to the leader it knows; a node that holds no replica (Remote)
// to the replica it last heard lead. The leader appends as if the batch
// had come from a client and answers when it is committed.
//
// Frames (docs/cluster.md):
//
//	KindForward:     u64 request id, u16 key length, key, u8 flags, batch
//	KindForwardResp: u64 request id, u16 code, i64 base offset,
//	                 u16 length + message, u16 length + leader name
const (
	KindForward     byte = 2
	KindForwardResp byte = 3
)

const fwdSparse = 1

// DefaultForwardTimeout bounds the wait for a forwarded append's answer.
const DefaultForwardTimeout = 5 * time.Second

type fwdResult struct {
	base   int64
	err    error
	leader string
}

func encodeForward(id uint64, key string, sparse bool, b []byte) []byte {
	p := make([]byte, 0, 8+2+len(key)+1+len(b))
	p = binary.BigEndian.AppendUint64(p, id)
	p = binary.BigEndian.AppendUint16(p, uint16(len(key)))
	p = append(p, key...)
	var f byte
	if sparse {
		f |= fwdSparse
	}
	p = append(p, f)
	return append(p, b...)
}

func decodeForward(p []byte) (id uint64, key string, sparse bool, b []byte, err error) {
	if len(p) < 11 {
		return 0, "", false, nil, fmt.Errorf("%w: forward of %d bytes", errFrame, len(p))
	}
	id = binary.BigEndian.Uint64(p)
	n := int(binary.BigEndian.Uint16(p[8:]))
	if n == 0 || n > maxKeyLen || len(p) < 11+n {
		return 0, "", false, nil, fmt.Errorf("%w: forward with a key of %d bytes in %d", errFrame, n, len(p))
	}
	key = string(p[10 : 10+n])
	sparse = p[10+n]&fwdSparse != 0
	return id, key, sparse, p[11+n:], nil
}

func encodeForwardResp(id uint64, base int64, err error, leader string) []byte {
	code, msg := result.OK, ""
	if err != nil {
		code, msg = codeOf(err), err.Error()
	}
	msg = msg[:min(len(msg), 1024)]
	leader = leader[:min(len(leader), maxKeyLen)]
	p := make([]byte, 0, 8+2+8+2+len(msg)+2+len(leader))
	p = binary.BigEndian.AppendUint64(p, id)
	p = binary.BigEndian.AppendUint16(p, uint16(code))
	p = binary.BigEndian.AppendUint64(p, uint64(base))
	p = binary.BigEndian.AppendUint16(p, uint16(len(msg)))
	p = append(p, msg...)
	p = binary.BigEndian.AppendUint16(p, uint16(len(leader)))
	return append(p, leader...)
}

func decodeForwardResp(p []byte) (uint64, fwdResult, error) {
	var r fwdResult
	if len(p) < 22 {
		return 0, r, fmt.Errorf("%w: forward answer of %d bytes", errFrame, len(p))
	}
	id := binary.BigEndian.Uint64(p)
	code := result.Code(binary.BigEndian.Uint16(p[8:]))
	r.base = int64(binary.BigEndian.Uint64(p[10:]))
	n := int(binary.BigEndian.Uint16(p[18:]))
	if len(p) < 20+n+2 {
		return 0, r, fmt.Errorf("%w: forward answer message of %d bytes in %d", errFrame, n, len(p))
	}
	msg := string(p[20 : 20+n])
	q := p[20+n:]
	m := int(binary.BigEndian.Uint16(q))
	if len(q) != 2+m {
		return 0, r, fmt.Errorf("%w: forward answer leader of %d bytes in %d", errFrame, m, len(q))
	}
	r.leader = string(q[2:])
	if code != result.OK {
		r.err = errorOf(code, msg)
	}
	return id, r, nil
}

// codeOf gives an append error its code on the wire; the producer-sequence
// errors of seglog keep their identity through errorOf.
func codeOf(err error) result.Code {
	if c, ok := seglog.ProducerCode(err); ok {
		return c
	}
	if errors.Is(err, seglog.ErrClosed) {
		return result.NotReady
	}
	if c := result.CodeOf(err); c != result.Unknown {
		return c
	}
	return result.StorageError
}

func errorOf(code result.Code, msg string) error {
	e := result.New(code, msg)
	switch code {
	case result.OutOfOrderSequence:
		return fmt.Errorf("%w (%w)", seglog.ErrOutOfOrderSequence, e)
	case result.DuplicateSequence:
		return fmt.Errorf("%w (%w)", seglog.ErrDuplicateSequence, e)
	case result.ProducerFenced:
		return fmt.Errorf("%w (%w)", seglog.ErrProducerFenced, e)
	}
	return e
}

// forward sends b to node to for the group key and waits for the answer.
func (h *Host) forward(to, key string, b []byte, sparse bool) fwdResult {
	return h.awaitForward(h.sendForward(to, key, b, sparse))
}

// pendingForward is a forwarded append whose answer has not come yet.
type pendingForward struct {
	id  uint64
	to  string
	key string
	ch  chan fwdResult
	err *fwdResult // set when the frame could not be queued
}

// sendForward queues the forward frame for node to at once, in the
// caller's order: the transport keeps a peer's frames in the order they
// were queued, so a producer's batches reach the leader in the order it
// sent them, and its sequence numbers stay in order.
func (h *Host) sendForward(to, key string, b []byte, sparse bool) pendingForward {
	id := h.fwdID.Add(1)
	pf := pendingForward{id: id, to: to, key: key, ch: make(chan fwdResult, 1)}
	h.fwdMu.Lock()
	h.fwd[id] = pendingFwd{ch: pf.ch, to: to}
	h.fwdMu.Unlock()
	if !h.send.Send(to, KindForward, encodeForward(id, key, sparse, b)) {
		pf.err = &fwdResult{err: result.New(result.NotReady, fmt.Sprintf("cannot reach node %s, which leads %s; retry shortly", to, key))}
	}
	return pf
}

// awaitForward waits for the answer to a forward sendForward queued.
func (h *Host) awaitForward(pf pendingForward) fwdResult {
	defer func() {
		h.fwdMu.Lock()
		delete(h.fwd, pf.id)
		h.fwdMu.Unlock()
	}()
	if pf.err != nil {
		return *pf.err
	}
	t := time.NewTimer(h.opts.ForwardTimeout)
	defer t.Stop()
	select {
	case r := <-pf.ch:
		return r
	case <-t.C:
		return fwdResult{err: result.New(result.Timeout, fmt.Sprintf("node %s did not answer for %s within %s; the append may or may not be stored (an idempotent producer's retry is safe)", pf.to, pf.key, h.opts.ForwardTimeout))}
	case <-h.quit:
		return fwdResult{err: seglog.ErrClosed}
	}
}

// handleForward appends a forwarded batch here and answers when it is
// committed, without holding up the transport's reader.
func (h *Host) handleForward(from string, p []byte) {
	id, key, sparse, b, err := decodeForward(p)
	if err != nil {
		h.dropped.Add(1)
		h.log.Warn("dropping a forwarded append", "from", from, "err", err)
		return
	}
	g := h.Group(key)
	if g == nil {
		h.send.Send(from, KindForwardResp, encodeForwardResp(id, -1,
			result.New(result.NotReady, fmt.Sprintf("node %s holds no open replica of %s", h.self, key)), ""))
		return
	}
	a, err := g.appendLocal(b, false, sparse) // appendLocal copies b out of the frame
	if err != nil {
		h.send.Send(from, KindForwardResp, encodeForwardResp(id, -1, err, g.Leader()))
		return
	}
	go func() {
		base, err := a.Wait()
		h.send.Send(from, KindForwardResp, encodeForwardResp(id, base, err, g.Leader()))
	}()
}

func (h *Host) handleForwardResp(from string, p []byte) {
	id, r, err := decodeForwardResp(p)
	if err != nil {
		h.dropped.Add(1)
		h.log.Warn("dropping a forward answer", "from", from, "err", err)
		return
	}
	h.fwdMu.Lock()
	pf, ok := h.fwd[id]
	h.fwdMu.Unlock()
	if ok {
		select {
		case pf.ch <- r:
		default:
		}
	}
}

// forwardAck forwards b to the leader in the background, following one
// leader hint, and returns the Ack that resolves with the answer. With
// owned, b stays as it is until the answer (appendRetrying's copy);
// otherwise forwardAck keeps a copy for the retry.
func (h *Host) forwardAck(key, leader string, b []byte, sparse, owned bool) *Ack {
	a := newAck()
	pf := h.sendForward(leader, key, b, sparse)
	if !owned {
		b = append([]byte(nil), b...) // for a retry, after Append has returned
	}
	go func() {
		r := h.awaitForward(pf)
		if r.err != nil && result.CodeOf(r.err) == result.NotLeader && r.leader != "" && r.leader != leader && r.leader != h.self {
			r = h.forward(r.leader, key, b, sparse)
		}
		a.resolve(r.base, r.err)
	}()
	return a
}

// pendingFwd is a forwarded append's answer channel and the node it went
// to.
type pendingFwd struct {
	ch chan fwdResult
	to string
}

// failForwardsToDead ends the forwards waiting for a node that is no
// longer alive (HostOptions.Alive) at once, rather than after the forward
// timeout: their outcome is unknown, which the retry of an idempotent
// batch (appendRetrying) settles. Called by the ticker.
func (h *Host) failForwardsToDead() {
	if h.opts.Alive == nil {
		return
	}
	h.fwdMu.Lock()
	defer h.fwdMu.Unlock()
	for _, pf := range h.fwd {
		if !h.opts.Alive(pf.to) {
			select {
			case pf.ch <- fwdResult{err: result.New(result.NotReady, fmt.Sprintf("node %s went down before it answered a forwarded append; whether it was stored is unknown", pf.to))}:
			default:
			}
		}
	}
}

// DefaultRetryFor is HostOptions.RetryFor's default.
const DefaultRetryFor = 10 * time.Second

// unknownOutcome reports whether err leaves an append's fate unknown, or
// its refusal temporary: the codes an idempotent batch is tried again on.
func unknownOutcome(err error) bool {
	switch result.CodeOf(err) {
	case result.NotLeader, result.Timeout, result.NotReady:
		return true
	}
	return false
}

// appendRetrying appends an idempotent batch (producer id and sequence
// set) on a node that may not lead the group, and tries the same bytes
// again after an answer that leaves its fate unknown — its leader went
// down or stepped down before committing it, or did not answer, or none
// is known yet — until it gets a definite one or RetryFor passes. The
// same bytes are safe to send again: a leader that has the batch answers
// with its original offsets. Answering the unknown outcome to the producer
// instead would make it send the events again under new sequence numbers,
// stored twice if the first attempt was committed after all, and after
// batches it sent later. The producer's batches keep their order through
// the tries (order.go).
func (g *Group) appendRetrying(pid int64, b []byte, checked, sparse bool) *Ack {
	b = append([]byte(nil), b...) // the tries' own copy, never written to
	target := func() string {
		if g.IsLeader() {
			return g.h.self
		}
		return g.Leader()
	}
	attempt := func() (*Ack, string, error) {
		to := target()
		a, err := g.appendOnce(b, checked, sparse)
		return a, to, err
	}
	return g.chains.appendOrdered(pid, target(), attempt, g.h.opts.RetryFor, g.quit)
}
