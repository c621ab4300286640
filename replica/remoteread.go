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
//	              u32 max bytes, u32 wait (ms)
//	KindReadResp: u64 request id, u16 code, i64 offset, i64 start, i64 high
//	              watermark, u16 length + message, batches
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

// RemoteRead is what a replica answered to a read.
type RemoteRead struct {
	Batches                  []byte
	Offset, Start, Watermark int64
}

type readResult struct {
	r   RemoteRead
	err error
}

func encodeRead(id uint64, key string, op byte, offset int64, maxBytes int, wait time.Duration) []byte {
	p := make([]byte, 0, 8+2+len(key)+1+8+4+4)
	p = binary.BigEndian.AppendUint64(p, id)
	p = binary.BigEndian.AppendUint16(p, uint16(len(key)))
	p = append(p, key...)
	p = append(p, op)
	p = binary.BigEndian.AppendUint64(p, uint64(offset))
	p = binary.BigEndian.AppendUint32(p, uint32(maxBytes))
	return binary.BigEndian.AppendUint32(p, uint32(wait.Milliseconds()))
}

type readReq struct {
	id       uint64
	key      string
	op       byte
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
	if n == 0 || n > maxKeyLen || len(p) != 10+n+1+8+4+4 {
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
	return q, nil
}

func encodeReadResp(id uint64, r RemoteRead, err error) []byte {
	code, msg := result.OK, ""
	if err != nil {
		code, msg = codeOf(err), err.Error()
		r.Batches = nil
	}
	msg = msg[:min(len(msg), 1024)]
	p := make([]byte, 0, remoteReadRespLen+len(msg)+len(r.Batches))
	p = binary.BigEndian.AppendUint64(p, id)
	p = binary.BigEndian.AppendUint16(p, uint16(code))
	p = binary.BigEndian.AppendUint64(p, uint64(r.Offset))
	p = binary.BigEndian.AppendUint64(p, uint64(r.Start))
	p = binary.BigEndian.AppendUint64(p, uint64(r.Watermark))
	p = binary.BigEndian.AppendUint16(p, uint16(len(msg)))
	p = append(p, msg...)
	return append(p, r.Batches...)
}

func decodeReadResp(p []byte) (uint64, readResult, error) {
	var r readResult
	if len(p) < remoteReadRespLen {
		return 0, r, fmt.Errorf("%w: read answer of %d bytes", errFrame, len(p))
	}
	id := binary.BigEndian.Uint64(p)
	code := result.Code(binary.BigEndian.Uint16(p[8:]))
	r.r.Offset = int64(binary.BigEndian.Uint64(p[10:]))
	r.r.Start = int64(binary.BigEndian.Uint64(p[18:]))
	r.r.Watermark = int64(binary.BigEndian.Uint64(p[26:]))
	n := int(binary.BigEndian.Uint16(p[34:]))
	if len(p) < remoteReadRespLen+n {
		return 0, r, fmt.Errorf("%w: read answer message of %d bytes in %d", errFrame, n, len(p))
	}
	if code != result.OK {
		if len(p) != remoteReadRespLen+n {
			return 0, r, fmt.Errorf("%w: read answer with code %d carries %d bytes of batches", errFrame, code, len(p)-remoteReadRespLen-n)
		}
		r.err = result.New(code, string(p[remoteReadRespLen:remoteReadRespLen+n]))
		return id, r, nil
	}
	// A copy: the transport reuses p.
	r.r.Batches = append([]byte(nil), p[remoteReadRespLen+n:]...)
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
		h.send.Send(from, KindReadResp, encodeReadResp(q.id, RemoteRead{}, result.New(result.NotReady, fmt.Sprintf("node %s holds no open replica of %s", h.self, q.key))))
		return
	}
	if h.served.Add(1) > maxServedReads {
		h.served.Add(-1)
		h.send.Send(from, KindReadResp, encodeReadResp(q.id, RemoteRead{}, result.New(result.NotReady, fmt.Sprintf("node %s serves %d reads for other nodes already; retry shortly", h.self, maxServedReads))))
		return
	}
	go func() {
		defer h.served.Add(-1)
		r, err := g.serveRead(q, h.quit)
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
	resp := encodeReadResp(q.id, r, err)
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
	h.send.Send(to, KindReadResp, encodeReadResp(q.id, RemoteRead{}, result.New(result.NotReady, fmt.Sprintf("node %s could not send %d bytes of %s to node %s within %s: its queue to that node is full; retry shortly", h.self, len(r.Batches), q.key, to, bulkWait))))
}

// bulkWait bounds how long a read's answer waits for room in a peer's
// queue.
const bulkWait = 2 * time.Second

// serveRead answers one read request from this replica's committed log.
func (g *Group) serveRead(q readReq, quit <-chan struct{}) (RemoteRead, error) {
	r := RemoteRead{Offset: q.offset, Start: g.StartOffset(), Watermark: g.HighWatermark()}
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
		return r, nil
	}
	var timer *time.Timer
	for {
		ch := g.Changed()
		r.Start, r.Watermark = g.StartOffset(), g.HighWatermark()
		if r.Offset < r.Start || r.Offset > r.Watermark {
			return r, result.New(result.OffsetOutOfRange, fmt.Sprintf("offset %d of %s is outside %d..%d", r.Offset, g.key, r.Start, r.Watermark))
		}
		if r.Offset < r.Watermark {
			b, err := g.Read(nil, r.Offset, q.maxBytes)
			if errors.Is(err, seglog.ErrOffsetOutOfRange) {
				err = result.New(result.OffsetOutOfRange, err.Error())
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

func (h *Host) handleReadResp(from string, p []byte) {
	id, r, err := decodeReadResp(p)
	if err != nil {
		h.dropped.Add(1)
		h.log.Warn("dropping a read answer", "from", from, "err", err)
		return
	}
	if ch, ok := h.reads.Load(id); ok {
		select {
		case ch.(chan readResult) <- r:
		default:
		}
	}
}

// readAt asks node to for a read of the buffer key; ctx bounds the wait.
func (h *Host) readAt(ctx context.Context, to, key string, op byte, offset int64, maxBytes int, wait time.Duration) (RemoteRead, error) {
	id := h.fwdID.Add(1)
	ch := make(chan readResult, 1)
	h.reads.Store(id, ch)
	defer h.reads.Delete(id)
	if !h.send.Send(to, KindRead, encodeRead(id, key, op, offset, maxBytes, wait)) {
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
// op, offset, maxBytes and wait are as in KindRead. The offsets of every
// answer are kept: StartOffset and HighWatermark report them.
func (r *Remote) ReadRemote(ctx context.Context, op byte, offset int64, maxBytes int, wait time.Duration) (RemoteRead, error) {
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
		rr, err = r.h.readAt(ctx, to, r.key, op, offset, maxBytes, wait)
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
