package replica

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
)

// Digests: a sum of the records one producer id wrote to a buffer,
// computed by a node that holds a replica of it and sent back as numbers
// only (batch.ProducerSum), so that checking what was stored somewhere
// never moves an event byte out of the nodes that hold it. The migrator
// reads its copies back this way before it trims their source.
//
// Frames (docs/cluster.md):
//
//	KindDigest:     u64 request id, u16 key length, key, i64 from, i64 producer id
//	KindDigestResp: u64 request id, u16 code, i64 records, u32 checksum,
//	                i64 first, i64 last, i64 end, u16 length + message
//
// A request whose from is negative asks only for end.
const (
	KindDigest     byte = 7
	KindDigestResp byte = 8
)

// Digest is what a replica holds of one producer's records from an
// offset: Records of them, Checksum over their keys and values in log
// order (batch.AddRecord), at offsets First to Last (-1 when none), up to
// End, the replica's high watermark when it read.
type Digest struct {
	Records     int64
	Checksum    uint32
	First, Last int64
	End         int64
}

// Digest sums the committed records of producer pid in this replica's log
// from offset from (from < 0: only End).
func (g *Group) Digest(from, pid int64) (Digest, error) {
	end := g.HighWatermark()
	d := Digest{First: -1, Last: -1, End: end}
	if from < 0 {
		return d, nil
	}
	s, err := batch.SumLog(g.Read, max(from, g.StartOffset()), end, pid)
	if err != nil {
		return d, fmt.Errorf("replica: digest of %s: %w", g.key, err)
	}
	d.Records, d.Checksum, d.First, d.Last = s.Records, s.Checksum, s.First, s.Last
	return d, nil
}

// DigestAt asks node to (this one included) for its replica's digest of
// the buffer key.
func (h *Host) DigestAt(to, key string, from, pid int64) (Digest, error) {
	if to == h.self {
		g := h.Group(key)
		if g == nil {
			return Digest{}, result.New(result.NotReady, fmt.Sprintf("node %s holds no open replica of %s", h.self, key))
		}
		return g.Digest(from, pid)
	}
	id := h.fwdID.Add(1)
	ch := make(chan digestResult, 1)
	h.digests.Store(id, ch)
	defer h.digests.Delete(id)
	if !h.send.Send(to, KindDigest, encodeDigest(id, key, from, pid)) {
		return Digest{}, result.New(result.NotReady, fmt.Sprintf("cannot reach node %s for a digest of %s", to, key))
	}
	t := time.NewTimer(digestTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.d, r.err
	case <-t.C:
		return Digest{}, result.New(result.Timeout, fmt.Sprintf("node %s did not answer a digest of %s within %s", to, key, digestTimeout))
	case <-h.quit:
		return Digest{}, result.New(result.NotReady, "replica: host closed")
	}
}

// digestTimeout bounds the wait for a digest: reading a buffer takes a
// while.
const digestTimeout = time.Minute

type digestResult struct {
	d   Digest
	err error
}

func encodeDigest(id uint64, key string, from, pid int64) []byte {
	p := make([]byte, 0, 8+2+len(key)+16)
	p = binary.BigEndian.AppendUint64(p, id)
	p = binary.BigEndian.AppendUint16(p, uint16(len(key)))
	p = append(p, key...)
	p = binary.BigEndian.AppendUint64(p, uint64(from))
	return binary.BigEndian.AppendUint64(p, uint64(pid))
}

func decodeDigest(p []byte) (id uint64, key string, from, pid int64, err error) {
	if len(p) < 10 {
		return 0, "", 0, 0, fmt.Errorf("%w: digest request of %d bytes", errFrame, len(p))
	}
	id = binary.BigEndian.Uint64(p)
	n := int(binary.BigEndian.Uint16(p[8:]))
	if n == 0 || n > maxKeyLen || len(p) != 10+n+16 {
		return 0, "", 0, 0, fmt.Errorf("%w: digest request with a key of %d bytes in %d", errFrame, n, len(p))
	}
	key = string(p[10 : 10+n])
	from = int64(binary.BigEndian.Uint64(p[10+n:]))
	pid = int64(binary.BigEndian.Uint64(p[18+n:]))
	return id, key, from, pid, nil
}

func encodeDigestResp(id uint64, d Digest, err error) []byte {
	code, msg := result.OK, ""
	if err != nil {
		code, msg = codeOf(err), err.Error()
	}
	msg = msg[:min(len(msg), 1024)]
	p := make([]byte, 0, 8+2+8+4+24+2+len(msg))
	p = binary.BigEndian.AppendUint64(p, id)
	p = binary.BigEndian.AppendUint16(p, uint16(code))
	p = binary.BigEndian.AppendUint64(p, uint64(d.Records))
	p = binary.BigEndian.AppendUint32(p, d.Checksum)
	p = binary.BigEndian.AppendUint64(p, uint64(d.First))
	p = binary.BigEndian.AppendUint64(p, uint64(d.Last))
	p = binary.BigEndian.AppendUint64(p, uint64(d.End))
	p = binary.BigEndian.AppendUint16(p, uint16(len(msg)))
	return append(p, msg...)
}

// digestRespLen is a digest answer's length without its message.
const digestRespLen = 8 + 2 + 8 + 4 + 8 + 8 + 8 + 2

func decodeDigestResp(p []byte) (uint64, digestResult, error) {
	var r digestResult
	if len(p) < digestRespLen {
		return 0, r, fmt.Errorf("%w: digest answer of %d bytes", errFrame, len(p))
	}
	id := binary.BigEndian.Uint64(p)
	code := result.Code(binary.BigEndian.Uint16(p[8:]))
	r.d.Records = int64(binary.BigEndian.Uint64(p[10:]))
	r.d.Checksum = binary.BigEndian.Uint32(p[18:])
	r.d.First = int64(binary.BigEndian.Uint64(p[22:]))
	r.d.Last = int64(binary.BigEndian.Uint64(p[30:]))
	r.d.End = int64(binary.BigEndian.Uint64(p[38:]))
	n := int(binary.BigEndian.Uint16(p[46:]))
	if len(p) != digestRespLen+n {
		return 0, r, fmt.Errorf("%w: digest answer message of %d bytes in %d", errFrame, n, len(p))
	}
	if code != result.OK {
		r.err = errorOf(code, string(p[digestRespLen:]))
	}
	return id, r, nil
}

// handleDigest sums what this node's replica holds and answers, without
// holding up the transport's reader.
func (h *Host) handleDigest(from string, p []byte) {
	id, key, off, pid, err := decodeDigest(p)
	if err != nil {
		h.dropped.Add(1)
		h.log.Warn("dropping a digest request", "from", from, "err", err)
		return
	}
	g := h.Group(key)
	if g == nil {
		h.send.Send(from, KindDigestResp, encodeDigestResp(id, Digest{}, result.New(result.NotReady, fmt.Sprintf("node %s holds no open replica of %s", h.self, key))))
		return
	}
	go func() {
		d, err := g.Digest(off, pid)
		h.send.Send(from, KindDigestResp, encodeDigestResp(id, d, err))
	}()
}

func (h *Host) handleDigestResp(from string, p []byte) {
	id, r, err := decodeDigestResp(p)
	if err != nil {
		h.dropped.Add(1)
		h.log.Warn("dropping a digest answer", "from", from, "err", err)
		return
	}
	if ch, ok := h.digests.Load(id); ok {
		select {
		case ch.(chan digestResult) <- r:
		default:
		}
	}
}

// Digest asks the replica that leads the buffer for its digest, trying
// each replica in turn when it does not answer.
func (r *Remote) Digest(from, pid int64) (Digest, error) {
	r.mu.Lock()
	first := r.leader
	r.mu.Unlock()
	tries := append([]string{first}, r.replicas...)
	var err error
	for i, to := range tries {
		if i > 0 && to == first {
			continue
		}
		var d Digest
		if d, err = r.h.DigestAt(to, r.key, from, pid); err == nil {
			return d, nil
		}
	}
	return Digest{}, err
}

// DigestLeader is Digest from the replica that leads the group as far as
// this one knows (this one when it leads or none is known).
func (g *Group) DigestLeader(from, pid int64) (Digest, error) {
	if l := g.Leader(); l != "" && l != g.h.self {
		if d, err := g.h.DigestAt(l, g.key, from, pid); err == nil {
			return d, nil
		}
	}
	return g.Digest(from, pid)
}
