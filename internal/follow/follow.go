// Package follow applies a replicated log's committed batches in order: the
// loop shared by every state machine kept in a raft group (committed
// offsets, the cluster metadata).
package follow

import "time"

// Log is a replicated log as a follower reads it: reads never pass the
// high watermark, the commit point.
type Log interface {
	Read(dst []byte, offset int64, maxBytes int) ([]byte, error)
	HighWatermark() int64
	// Changed returns a channel closed when the high watermark next moves
	// (or the log closes).
	Changed() <-chan struct{}
}

// RetryAfter is how long Run waits after a failed read or apply before it
// tries again.
const RetryAfter = 100 * time.Millisecond

// readBytes bounds one read.
const readBytes = 1 << 20

// Run applies l's committed batches from offset from until quit closes.
// apply gets the bytes read at off (whole batches) and returns the offset
// after the last batch it applied; an error (logged by onErr) makes Run
// wait RetryAfter and read again from where apply got to. Run returns
// when quit closes.
func Run(l Log, from int64, apply func(p []byte, off int64) (next int64, err error), onErr func(off int64, err error), quit <-chan struct{}) {
	off := from
	var buf []byte
	for {
		ch := l.Changed()
		for off < l.HighWatermark() {
			var err error
			buf, err = l.Read(buf[:0], off, readBytes)
			if err == nil && len(buf) == 0 {
				break
			}
			if err == nil {
				var next int64
				next, err = apply(buf, off)
				off = max(off, next)
			}
			if err != nil {
				onErr(off, err)
				select {
				case <-quit:
					return
				case <-time.After(RetryAfter):
				}
			}
		}
		select {
		case <-quit:
			return
		case <-ch:
		}
	}
}

// Replicated is a replicated log as the store of a state machine kept in
// it uses it: package group's committed offsets, package meta's cluster
// metadata (package replica's Group, through an adapter of the server's).
type Replicated interface {
	Log
	// Append proposes the record batch b; the Ack resolves once it is
	// committed, with its base offset, or cannot be.
	Append(b []byte) (Ack, error)
	StartOffset() int64
	// LeaderReady reports whether this node leads the log and has
	// committed an entry of its own term (so the high watermark covers
	// every earlier leader's commits).
	LeaderReady() bool
}

// Ack is a pending append to a Replicated log.
type Ack interface {
	Wait() (int64, error)
}
