package replica

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
)

// Remote is a buffer this node holds no replica of (its hub's nodes do):
// appends are forwarded to the replica that leads it, so that a producer
// needs one address. Reads are answered by a replica too (remoteread.go).
type Remote struct {
	h        *Host
	key      string
	replicas []string

	mu     sync.Mutex
	leader string // the replica that last answered as leader, or a guess
	next   int    // the next replica to try when the leader is unknown
	ch     chan struct{}
	// chains keep each producer's batches in order (order.go).
	chains chains

	// start and watermark are the buffer's offsets as the last remote
	// read answered them.
	start, watermark atomic.Int64
}

// Remote returns the buffer key held by replicas, none of which is this
// host.
func (h *Host) Remote(key string, replicas []string) (*Remote, error) {
	for _, r := range replicas {
		if r == h.self {
			return nil, fmt.Errorf("replica: %s is held here; open it instead", key)
		}
	}
	if len(replicas) == 0 {
		return nil, fmt.Errorf("replica: %s has no replicas", key)
	}
	return &Remote{h: h, key: key, replicas: replicas, leader: replicas[0], ch: make(chan struct{})}, nil
}

// Append forwards b to the leader; it tries each replica in turn while
// none is known to lead. An idempotent batch is tried again while its fate
// is unknown, in its producer's order, as on a follower (order.go).
func (r *Remote) Append(b []byte, sparse bool) *Ack {
	if h, err := batch.ParseHeader(b); err == nil && h.Idempotent() {
		b = append([]byte(nil), b...)
		attempt := func() (*Ack, string, error) {
			return r.appendOnce(b, sparse), r.Leader(), nil
		}
		return r.chains.appendOrdered(h.ProducerID, r.Leader(), attempt, r.h.opts.RetryFor, r.h.quit)
	}
	return r.appendOnce(b, sparse)
}

// appendOnce forwards b to the leader as known, following the answers
// that name another, and each replica in turn while none is known.
func (r *Remote) appendOnce(b []byte, sparse bool) *Ack {
	a := newAck()
	// The first attempt is queued now, in the caller's order (see
	// sendForward); retries after a NOT_LEADER go from the goroutine.
	r.mu.Lock()
	first := r.h.sendForward(r.leader, r.key, b, sparse)
	r.mu.Unlock()
	b = append([]byte(nil), b...)
	go func() {
		var res fwdResult
		for i := range len(r.replicas) + 1 {
			r.mu.Lock()
			to := r.leader
			r.mu.Unlock()
			if i == 0 {
				to = first.to
				res = r.h.awaitForward(first)
			} else {
				res = r.h.forward(to, r.key, b, sparse)
			}
			code := result.CodeOf(res.err)
			if code != result.NotLeader && code != result.NotReady {
				break
			}
			r.mu.Lock()
			if res.leader != "" && res.leader != to {
				r.leader = res.leader
			} else {
				r.next = (r.next + 1) % len(r.replicas)
				r.leader = r.replicas[r.next]
			}
			r.mu.Unlock()
		}
		a.resolve(res.base, res.err)
	}()
	return a
}

// Leader returns the replica last known to lead.
func (r *Remote) Leader() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

// Replicas returns the nodes holding the buffer.
func (r *Remote) Replicas() []string { return r.replicas }

func (r *Remote) readErr() error {
	return result.New(result.NotLeader, fmt.Sprintf("%s is held by nodes %v, not by %s; read from one of them", r.key, r.replicas, r.h.self))
}

// remoteCallTimeout bounds Read and OffsetForTime, which take no context.
const remoteCallTimeout = 10 * time.Second

// Read reads from a replica, without waiting for data.
func (r *Remote) Read(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), remoteCallTimeout)
	defer cancel()
	rr, err := r.ReadRemote(ctx, ReadBatches, ReadUncommitted, offset, max(maxBytes, 1), 0)
	return append(dst, rr.Batches...), err
}

// Locate is not served on a node without a replica: there is no file here.
func (r *Remote) Locate(offset int64, maxBytes int) (seglog.Slice, error) {
	return seglog.Slice{}, r.readErr()
}

// OffsetForTime asks a replica.
func (r *Remote) OffsetForTime(ts int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), remoteCallTimeout)
	defer cancel()
	rr, err := r.ReadRemote(ctx, ReadTime, ReadUncommitted, ts, 0, 0)
	return rr.Offset, err
}

// StartOffset and HighWatermark are as the last remote read answered
// them (0 before the first); NextOffset is the high watermark: a reader
// here sees only what is committed.
func (r *Remote) StartOffset() int64   { return r.start.Load() }
func (r *Remote) NextOffset() int64    { return r.watermark.Load() }
func (r *Remote) HighWatermark() int64 { return r.watermark.Load() }

// Changed returns a channel that closes when the Remote does: a reader
// here waits in ReadRemote, at a replica.
func (r *Remote) Changed() <-chan struct{} { return r.ch }

// Truncate is refused.
func (r *Remote) Truncate(offset int64) error { return r.readErr() }

// Close releases the Remote.
func (r *Remote) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.ch:
	default:
		close(r.ch)
	}
	return nil
}
