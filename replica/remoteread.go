package replica

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
)

// Remote reads: a node that holds no replica of a buffer (a node of
// another hub, or of the same hub outside the buffer's replicas) serves
// its readers by asking a node that does, as it forwards produces. Only
// committed batches cross, as a replica would serve them to a local
// reader; the bytes go from a node of the buffer's hub to the node the
// reader chose, as they would to the reader itself.
//
// Frames (docs/cluster.md):
//
//	KindRead:     u64 request id, u16 key length, key, u8 op, i64 offset,
//	              u32 max bytes, u32 wait (ms), [u8 isolation]
//	KindReadResp: u64 request id, u16 code, i64 offset, i64 start, i64 high
//	              watermark, u16 length + message,
//	              [i64 last stable offset, u32 count,
//	               count × (i64 producer id, i64 first offset, i64 last offset)],
//	              batches
//
// The isolation byte is present only when it is not ReadUncommitted (a
// request without it reads uncommitted, as before the byte existed), and
// the bracketed part of the answer only when the request carried it: the
// node that asked knows which layout to expect. A node that predates the
// byte refuses such a request as malformed and does not answer, so a
// committed read never gets uncommitted data from it; the reader asks the
// next replica, then again.
//
// op ReadBatches reads whole batches from offset (Earliest and Latest
// resolve; the answer's offset is the resolved one), waiting up to wait
// for data when none is there yet; with max bytes 0 it only answers the
// offsets. op ReadTime answers in offset the first batch at or after the
// timestamp offset (ms), as OffsetForTime.
const (
	KindRead     byte = 9
	KindReadResp byte = 10
)

// Read operations.
const (
	ReadBatches byte = 0
	ReadTime    byte = 1
)

// Isolations of a remote read (the request's last byte). The node that
// holds the buffer applies them with its Isolator (HostOptions), which
// knows the partition's transactions (Sense's node.Isolation).
const (
	// ReadUncommitted reads up to the high watermark, everything.
	ReadUncommitted byte = 0
	// ReadCommitted reads below the last stable offset, the aborted
	// transactions' batches emptied.
	ReadCommitted byte = 1
	// ReadCommittedKafka reads below the last stable offset, aborted
	// batches as they are; the answer lists the aborted transactions of
	// the batches returned.
	ReadCommittedKafka byte = 2
)

// AbortedTxn is an aborted transaction of a partition: its producer, its
// first offset and the offset of its abort marker.
type AbortedTxn struct {
	ProducerID, FirstOffset, LastOffset int64
}

// Isolator applies an isolation to the reads a node serves for others
// from its replicas. Without one, a read with an isolation other than
// ReadUncommitted is refused.
type Isolator interface {
	// StableOffset returns g's last stable offset.
	StableOffset(g *Group) (int64, error)
	// Isolate cuts whole batches read from g at offset at the last
	// stable offset, as iso asks (ReadCommitted empties the aborted
	// transactions' batches), in place. It returns the batches kept, the
	// last stable offset (at or past their end) and, for
	// ReadCommittedKafka, the aborted transactions that hold offsets in
	// the batches kept.
	Isolate(g *Group, iso byte, batches []byte, offset int64) ([]byte, int64, []AbortedTxn, error)
}

// Offsets a remote read resolves (node.Earliest and node.Latest).
const (
	Latest   int64 = -1
	Earliest int64 = -2
)

// Bounds of one remote read: what one answer carries and how long a
// replica holds a read open waiting for data. The reading node asks again
// while its reader waits.
const (
	MaxRemoteReadBytes = 1 << 20
	MaxRemoteReadWait  = 2 * time.Second
	// maxServedReads bounds the reads a node serves at once for others;
	// more are refused with NOT_READY (retriable).
	maxServedReads = 512
)

// remoteReadRespLen is a read answer's length without message and batches.
const remoteReadRespLen = 8 + 2 + 8 + 8 + 8 + 2

// Lengths of an isolated answer's part (see the frames above): the last
// stable offset and the count, then each aborted transaction.
const (
	isolatedRespLen = 8 + 4
	abortedTxnLen   = 8 + 8 + 8
)

// RemoteRead is what a replica answered to a read. Stable (the last
// stable offset) and Aborted are answered only to a read with an
// isolation; otherwise Stable is the high watermark.
type RemoteRead struct {
	Batches                          []byte
	Offset, Start, Watermark, Stable int64
	Aborted                          []AbortedTxn
}

type readResult struct {
	r   RemoteRead
	err error
}

func encodeRead(id uint64, key string, op, iso byte, offset int64, maxBytes int, wait time.Duration) []byte {
	p := make([]byte, 0, 8+2+len(key)+1+8+4+4+1)
	p = binary.BigEndian.AppendUint64(p, id)
	p = binary.BigEndian.AppendUint16(p, uint16(len(key)))
	p = append(p, key...)
	p = append(p, op)
	p = binary.BigEndian.AppendUint64(p, uint64(offset))
	p = binary.BigEndian.AppendUint32(p, uint32(maxBytes))
	p = binary.BigEndian.AppendUint32(p, uint32(wait.Milliseconds()))
	if iso != ReadUncommitted {
		p = append(p, iso)
	}
	return p
}

type readReq struct {
	id       uint64
	key      string
	op       byte
	iso      byte
	offset   int64
	maxBytes int
	wait     time.Duration
}

func decodeRead(p []byte) (readReq, error) {
	var q readReq
	if len(p) < 10 {
		return q, fmt.Errorf("%w: read request of %d bytes", errFrame, len(p))
	}
	q.id = binary.BigEndian.Uint64(p)
	n := int(binary.BigEndian.Uint16(p[8:]))
	if base := 10 + n + 1 + 8 + 4 + 4; n == 0 || n > maxKeyLen || (len(p) != base && len(p) != base+1) {
		return q, fmt.Errorf("%w: read request with a key of %d bytes in %d", errFrame, n, len(p))
	}
	q.key = string(p[10 : 10+n])
	r := p[10+n:]
	q.op = r[0]
	if q.op != ReadBatches && q.op != ReadTime {
		return q, fmt.Errorf("%w: read request of unknown op %d", errFrame, q.op)
	}
	q.offset = int64(binary.BigEndian.Uint64(r[1:]))
	q.maxBytes = int(min(binary.BigEndian.Uint32(r[9:]), MaxRemoteReadBytes))
	q.wait = min(time.Duration(binary.BigEndian.Uint32(r[13:]))*time.Millisecond, MaxRemoteReadWait)
	if len(r) > 17 {
		// Present only when not ReadUncommitted: one spelling per read.
		q.iso = r[17]
		if q.iso != ReadCommitted && q.iso != ReadCommittedKafka {
			return q, fmt.Errorf("%w: read request of unknown isolation %d", errFrame, q.iso)
		}
	}
	return q, nil
}

// encodeReadResp encodes a read's answer; isolated says the request
// carried an isolation, so the answer carries the last stable offset and
// the aborted transactions (none with an error).
func encodeReadResp(id uint64, r RemoteRead, err error, isolated bool) []byte {
	code, msg := result.OK, ""
	if err != nil {
		code, msg = codeOf(err), err.Error()
		r.Batches, r.Aborted = nil, nil
	}
	msg = msg[:min(len(msg), 1024)]
	n := remoteReadRespLen + len(msg) + len(r.Batches)
	if isolated {
		n += isolatedRespLen + abortedTxnLen*len(r.Aborted)
	}
	p := make([]byte, 0, n)
	p = binary.BigEndian.AppendUint64(p, id)
	p = binary.BigEndian.AppendUint16(p, uint16(code))
	p = binary.BigEndian.AppendUint64(p, uint64(r.Offset))
	p = binary.BigEndian.AppendUint64(p, uint64(r.Start))
	p = binary.BigEndian.AppendUint64(p, uint64(r.Watermark))
	p = binary.BigEndian.AppendUint16(p, uint16(len(msg)))
	p = append(p, msg...)
	if isolated {
		p = binary.BigEndian.AppendUint64(p, uint64(r.Stable))
		p = binary.BigEndian.AppendUint32(p, uint32(len(r.Aborted)))
		for _, a := range r.Aborted {
			p = binary.BigEndian.AppendUint64(p, uint64(a.ProducerID))
			p = binary.BigEndian.AppendUint64(p, uint64(a.FirstOffset))
			p = binary.BigEndian.AppendUint64(p, uint64(a.LastOffset))
		}
	}
	return append(p, r.Batches...)
}

// readRespID returns the request id of a read's answer, so that its
// reader (who knows whether the answer is isolated) can decode it.
func readRespID(p []byte) (uint64, error) {
	if len(p) < remoteReadRespLen {
		return 0, fmt.Errorf("%w: read answer of %d bytes", errFrame, len(p))
	}
	return binary.BigEndian.Uint64(p), nil
}

// decodeReadResp decodes a read's answer; isolated says the request
// carried an isolation (see encodeReadResp).
func decodeReadResp(p []byte, isolated bool) (uint64, readResult, error) {
	var r readResult
	id, err := readRespID(p)
	if err != nil {
		return 0, r, err
	}
	code := result.Code(binary.BigEndian.Uint16(p[8:]))
	r.r.Offset = int64(binary.BigEndian.Uint64(p[10:]))
	r.r.Start = int64(binary.BigEndian.Uint64(p[18:]))
	r.r.Watermark = int64(binary.BigEndian.Uint64(p[26:]))
	n := int(binary.BigEndian.Uint16(p[34:]))
	if len(p) < remoteReadRespLen+n {
		return 0, r, fmt.Errorf("%w: read answer message of %d bytes in %d", errFrame, n, len(p))
	}
	msg := p[remoteReadRespLen : remoteReadRespLen+n]
	rest := p[remoteReadRespLen+n:]
	r.r.Stable = r.r.Watermark
	if isolated {
		if len(rest) < isolatedRespLen {
			return 0, r, fmt.Errorf("%w: isolated read answer of %d bytes past its message", errFrame, len(rest))
		}
		r.r.Stable = int64(binary.BigEndian.Uint64(rest))
		count := uint64(binary.BigEndian.Uint32(rest[8:]))
		rest = rest[isolatedRespLen:]
		// The count is checked against the bytes left before anything is
		// allocated.
		if count > uint64(len(rest)/abortedTxnLen) {
			return 0, r, fmt.Errorf("%w: read answer with %d aborted transactions in %d bytes", errFrame, count, len(rest))
		}
		if count > 0 {
			r.r.Aborted = make([]AbortedTxn, count)
			for i := range r.r.Aborted {
				r.r.Aborted[i] = AbortedTxn{
					ProducerID:  int64(binary.BigEndian.Uint64(rest)),
					FirstOffset: int64(binary.BigEndian.Uint64(rest[8:])),
					LastOffset:  int64(binary.BigEndian.Uint64(rest[16:])),
				}
				rest = rest[abortedTxnLen:]
			}
		}
	}
	if code != result.OK {
		if len(rest) != 0 || len(r.r.Aborted) != 0 {
			return 0, r, fmt.Errorf("%w: read answer with code %d carries %d bytes of batches and %d aborted transactions", errFrame, code, len(rest), len(r.r.Aborted))
		}
		r.r.Aborted = nil
		r.err = result.New(code, string(msg))
		return id, r, nil
	}
	// A copy: the transport reuses p.
	r.r.Batches = append([]byte(nil), rest...)
	return id, r, nil
}

// handleRead serves a read for another node from this node's replica,
// without holding up the transport's reader.
func (h *Host) handleRead(from string, p []byte) {
	q, err := decodeRead(p)
	if err != nil {
		h.dropped.Add(1)
		h.log.Warn("dropping a read request", "from", from, "err", err)
		return
	}
	g := h.Group(q.key)
	if g == nil {
		h.send.Send(from, KindReadResp, encodeReadResp(q.id, RemoteRead{}, result.New(result.NotReady, fmt.Sprintf("node %s holds no open replica of %s", h.self, q.key)), q.iso != ReadUncommitted))
		return
	}
	if h.served.Add(1) > maxServedReads {
		h.served.Add(-1)
		h.send.Send(from, KindReadResp, encodeReadResp(q.id, RemoteRead{}, result.New(result.NotReady, fmt.Sprintf("node %s serves %d reads for other nodes already; retry shortly", h.self, maxServedReads)), q.iso != ReadUncommitted))
		return
	}
	go func() {
		defer h.served.Add(-1)
		r, err := g.serveRead(q, h.opts.Isolator, h.quit)
		if err == nil && len(r.Batches) > 0 && h.opts.ReadFilter != nil {
			if r.Batches, err = h.opts.ReadFilter(from, nil, r.Batches); err != nil {
				err = result.New(result.StorageError, fmt.Sprintf("node %s cannot filter %s for node %s: %v", h.self, q.key, from, err))
			}
		}
		h.sendReadResp(from, q, r, err)
	}()
}

// sendReadResp sends a read's answer. Batches go as bulk data, waiting
// while the peer's queue is busy (so that raft's messages keep their
// room), up to bulkWait; then the answer is NOT_READY, and the reader
// asks again.
func (h *Host) sendReadResp(to string, q readReq, r RemoteRead, err error) {
	resp := encodeReadResp(q.id, r, err, q.iso != ReadUncommitted)
	bs, ok := h.send.(BulkSender)
	if !ok || len(r.Batches) == 0 {
		h.send.Send(to, KindReadResp, resp)
		return
	}
	deadline := time.Now().Add(bulkWait)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		if bs.SendBulk(to, KindReadResp, resp) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-time.After(pause):
		case <-h.quit:
			return
		}
	}
	h.send.Send(to, KindReadResp, encodeReadResp(q.id, RemoteRead{}, result.New(result.NotReady, fmt.Sprintf("node %s could not send %d bytes of %s to node %s within %s: its queue to that node is full; retry shortly", h.self, len(r.Batches), q.key, to, bulkWait)), q.iso != ReadUncommitted))
}

// bulkWait bounds how long a read's answer waits for room in a peer's
// queue.
const bulkWait = 2 * time.Second

// serveRead answers one read request from this replica's committed log
// (committed by raft), with the isolation the request asks: with one
// other than ReadUncommitted, iz cuts it at the last stable offset, and a
// read at or past it waits as one at the high watermark does.
func (g *Group) serveRead(q readReq, iz Isolator, quit <-chan struct{}) (RemoteRead, error) {
	r := RemoteRead{Offset: q.offset, Start: g.StartOffset(), Watermark: g.HighWatermark()}
	r.Stable = r.Watermark
	if q.iso != ReadUncommitted && iz == nil {
		return r, result.New(result.NotReady, fmt.Sprintf("%s: this node cannot serve a read with isolation %d", g.key, q.iso))
	}
	// stable answers the last stable offset, at most the high watermark
	// as read.
	stable := func() error {
		if q.iso == ReadUncommitted {
			r.Stable = r.Watermark
			return nil
		}
		lso, err := iz.StableOffset(g)
		r.Stable = min(lso, r.Watermark)
		return err
	}
	if q.op == ReadTime {
		off, err := g.OffsetForTime(q.offset)
		r.Offset = off
		return r, err
	}
	switch q.offset {
	case Earliest:
		r.Offset = r.Start
	case Latest:
		r.Offset = r.Watermark
	}
	if q.maxBytes == 0 {
		return r, stable()
	}
	var timer *time.Timer
	for {
		ch := g.Changed()
		r.Start, r.Watermark = g.StartOffset(), g.HighWatermark()
		if r.Offset < r.Start || r.Offset > r.Watermark {
			return r, result.New(result.OffsetOutOfRange, fmt.Sprintf("offset %d of %s is outside %d..%d", r.Offset, g.key, r.Start, r.Watermark))
		}
		if err := stable(); err != nil {
			return r, err
		}
		if r.Offset < r.Stable {
			b, err := g.Read(nil, r.Offset, q.maxBytes)
			if errors.Is(err, seglog.ErrOffsetOutOfRange) {
				err = result.New(result.OffsetOutOfRange, err.Error())
			}
			if err == nil && q.iso != ReadUncommitted {
				var lso int64
				b, lso, r.Aborted, err = iz.Isolate(g, q.iso, b, r.Offset)
				// The watermark is read before the last stable offset, so
				// a later LSO may pass it: a batch is below both.
				r.Watermark = max(r.Watermark, g.HighWatermark())
				r.Stable = min(lso, r.Watermark)
			}
			r.Batches = b
			return r, err
		}
		if q.wait <= 0 {
			return r, nil
		}
		if timer == nil {
			timer = time.NewTimer(q.wait)
			defer timer.Stop()
		}
		select {
		case <-ch:
		case <-timer.C:
			return r, nil
		case <-quit:
			return r, nil
		}
	}
}

// pendingRead is a read asked of another node, awaiting its answer.
type pendingRead struct {
	ch       chan readResult
	isolated bool // the request carried an isolation: so does the answer
}

func (h *Host) handleReadResp(from string, p []byte) {
	id, err := readRespID(p)
	if err == nil {
		v, ok := h.reads.Load(id)
		if !ok {
			return // its reader stopped waiting
		}
		pr := v.(*pendingRead)
		var r readResult
		if _, r, err = decodeReadResp(p, pr.isolated); err == nil {
			select {
			case pr.ch <- r:
			default:
			}
			return
		}
	}
	h.dropped.Add(1)
	h.log.Warn("dropping a read answer", "from", from, "err", err)
}

// readAt asks node to for a read of the buffer key; ctx bounds the wait.
func (h *Host) readAt(ctx context.Context, to, key string, op, iso byte, offset int64, maxBytes int, wait time.Duration) (RemoteRead, error) {
	id := h.fwdID.Add(1)
	ch := make(chan readResult, 1)
	h.reads.Store(id, &pendingRead{ch: ch, isolated: iso != ReadUncommitted})
	defer h.reads.Delete(id)
	if !h.send.Send(to, KindRead, encodeRead(id, key, op, iso, offset, maxBytes, wait)) {
		return RemoteRead{}, result.New(result.NotReady, fmt.Sprintf("cannot reach node %s to read %s", to, key))
	}
	t := time.NewTimer(wait + remoteReadSlack)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.r, r.err
	case <-t.C:
		return RemoteRead{}, result.New(result.Timeout, fmt.Sprintf("node %s did not answer a read of %s within %s", to, key, wait+remoteReadSlack))
	case <-ctx.Done():
		return RemoteRead{}, ctx.Err()
	case <-h.quit:
		return RemoteRead{}, result.New(result.NotReady, "replica: host closed")
	}
}

// remoteReadSlack is how long past its wait a read may take to come back.
const remoteReadSlack = 5 * time.Second

// ReadRemote reads the buffer from a node that holds it: the leader as
// last known first, then each other replica while one cannot answer.
// op, iso, offset, maxBytes and wait are as in KindRead. The offsets of
// every answer are kept: StartOffset and HighWatermark report them.
func (r *Remote) ReadRemote(ctx context.Context, op, iso byte, offset int64, maxBytes int, wait time.Duration) (RemoteRead, error) {
	r.mu.Lock()
	first := r.leader
	r.mu.Unlock()
	maxBytes = min(maxBytes, MaxRemoteReadBytes)
	wait = min(wait, MaxRemoteReadWait)
	var err error
	for i, to := range append([]string{first}, r.replicas...) {
		if i > 0 && to == first {
			continue
		}
		if alive := r.h.opts.Alive; alive != nil && !alive(to) {
			err = result.New(result.NotReady, fmt.Sprintf("node %s, a replica of %s, is down", to, r.key))
			continue
		}
		var rr RemoteRead
		rr, err = r.h.readAt(ctx, to, r.key, op, iso, offset, maxBytes, wait)
		switch result.CodeOf(err) {
		case result.NotReady, result.Timeout, result.NotLeader:
			continue
		}
		if err == nil || result.CodeOf(err) == result.OffsetOutOfRange {
			r.start.Store(rr.Start)
			r.watermark.Store(rr.Watermark)
		}
		return rr, err
	}
	return RemoteRead{}, err
}
