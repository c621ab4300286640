package replica

import (
	"fmt"
	"sync"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
)

// Remote is a buffer this node holds no replica of (its hub's nodes do):
// appends are forwarded to the replica that leads it, so that a producer
// needs one address. Reads are not served here yet: they answer
// NOT_LEADER naming the replicas to read from.
type Remote struct {
	h        *Host
	key      string
	replicas []string

	mu     sync.Mutex
	leader string // the replica that last answered as leader, or a guess
	next   int    // the next replica to try when the leader is unknown
	ch     chan struct{}
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
// none is known to lead.
func (r *Remote) Append(b []byte, sparse bool) *Ack {
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

// Read is not served on a node without a replica.
func (r *Remote) Read(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	return dst, r.readErr()
}

// Locate is not served on a node without a replica.
func (r *Remote) Locate(offset int64, maxBytes int) (seglog.Slice, error) {
	return seglog.Slice{}, r.readErr()
}

// OffsetForTime is not served on a node without a replica.
func (r *Remote) OffsetForTime(ts int64) (int64, error) { return 0, r.readErr() }

// StartOffset, NextOffset and HighWatermark are not known here: 0.
func (r *Remote) StartOffset() int64   { return 0 }
func (r *Remote) NextOffset() int64    { return 0 }
func (r *Remote) HighWatermark() int64 { return 0 }

// Changed returns a channel that closes when the Remote does.
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
