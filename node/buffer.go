package node

import (
	"context"
	"errors"
	"time"

	"github.com/sensehq/sense/seglog"
)

// Buffer is one partition's ordered, durable log as the node drives it:
// the Buffer of the design. A *seglog.Log on one node is one
// implementation (OpenSegmentBuffer); the raft-replicated buffer is
// another. Edges never hold a Buffer: they call the node, which looks the
// partition up once per request.
//
// Offsets are Kafka's: every record of a batch has one, batches are
// appended whole and numbered in order. StartOffset <= HighWatermark <=
// NextOffset: the high watermark is the offset after the last acknowledged
// batch, and readers never see past it.
//
// A Buffer is safe for concurrent use.
type Buffer interface {
	// Append writes the record batch b, assigning its offsets and stamping
	// the epoch (both in header fields outside the CRC), and returns an
	// Ack that resolves once the batch is durable (and, replicated,
	// committed by a quorum). Batches are ordered as Append was called.
	// b must not be used until Append returns. The flags say whether b's
	// CRC must be checked (bytes from outside) and how producer sequences
	// are checked.
	Append(b []byte, f AppendFlags) (Ack, error)
	// Read appends to dst whole batches starting with the one holding
	// offset, up to maxBytes but at least one batch; at the high watermark
	// it returns dst unchanged. Every batch's CRC is checked.
	Read(dst []byte, offset int64, maxBytes int) ([]byte, error)
	// Locate is Read without the copy: the batches' place in a file, for
	// sendfile. The caller releases the Slice.
	Locate(offset int64, maxBytes int) (seglog.Slice, error)
	// OffsetForTime returns the base offset of the first batch whose max
	// timestamp is at or after ts (ms), or the high watermark.
	OffsetForTime(ts int64) (int64, error)
	StartOffset() int64
	NextOffset() int64
	HighWatermark() int64
	// Changed returns a channel closed when the high watermark next moves
	// (or the buffer closes).
	Changed() <-chan struct{}
	// Truncate removes every batch at or past offset (a batch boundary).
	Truncate(offset int64) error
	// SetEpoch sets the leader epoch stamped into appended batches.
	SetEpoch(epoch int32)
	Close() error
}

// Leadership is implemented by a replicated Buffer: which node leads it.
// A Buffer without it is led by this node.
type Leadership interface {
	// Leader returns the name of the node leading the buffer as last
	// known, "" when none is.
	Leader() string
	// IsLeader reports whether this node leads it.
	IsLeader() bool
	// Term is the leader's raft term (the batches' leader epoch).
	Term() uint64
	// Replicas names the nodes holding the buffer.
	Replicas() []string
}

// RemoteReader is implemented by a Buffer whose log is on other nodes (a
// cluster node's buffer it holds no replica of): a node that holds it
// answers its reads. Fetch, Offsets and StableOffset go through it; the
// Buffer's own StartOffset and HighWatermark are then only as fresh as its
// last read.
type RemoteReader interface {
	// ReadFrom reads whole batches from offset (Earliest and Latest
	// resolve to the start and the high watermark) up to maxBytes, at
	// least one batch, with the isolation iso applied by the node that
	// holds the buffer, as FetchIsolated applies it to a local one; with
	// nothing there yet (nothing below the last stable offset, for a
	// committed read) that node waits up to wait for data. With maxBytes
	// 0 it answers the offsets only.
	ReadFrom(ctx context.Context, offset int64, maxBytes int, wait time.Duration, iso Isolation) (RemoteRead, error)
}

// RemoteRead is a RemoteReader's answer: the batches, the resolved
// offset, the buffer's start, high watermark and last stable offset (the
// high watermark for ReadUncommitted) and, for ReadCommittedKafka, the
// aborted transactions that hold offsets in the batches.
type RemoteRead struct {
	Batches                           []byte
	Offset, Start, HighWatermark, LSO int64
	Aborted                           []AbortedTxn
}

// AppendFlags qualify one Append.
type AppendFlags uint8

const (
	// AppendChecked says the node built the batch itself (batch.Builder) or
	// has just checked its CRC (batch.Check), so the buffer does not compute
	// it again. Bytes the node has not checked never carry it.
	AppendChecked AppendFlags = 1 << iota
	// AppendSparse accepts producer sequences above the last ones with
	// gaps: a native producer's events are spread over several buffers.
	// Without it sequences are strict, as Kafka's idempotence wants.
	AppendSparse
	// AppendLocal refuses with NOT_LEADER where a replicated buffer would
	// forward the batch to its leader: Kafka clients find leaders
	// themselves.
	AppendLocal
)

// Ack is an append written but not yet known durable.
type Ack interface {
	// Wait blocks until the batch is durable under the policy and returns
	// its base offset, or the error that keeps it from being durable.
	Wait() (int64, error)
	// Ready reports whether Wait would return at once. It may say false
	// for an Ack that is about to resolve, never true for one that would
	// block.
	Ready() bool
}

// ErrBufferUnavailable is matched by every error of a buffer the node
// could not open when it started (or reloaded): its pipeline is refused
// alone, with the cause, while the node serves the others.
var ErrBufferUnavailable = errors.New("node: buffer unavailable")

// refusedBuffer stands for the buffers of a pipeline whose buffers could
// not be opened: every operation fails with err, which wraps
// ErrBufferUnavailable and the cause.
type refusedBuffer struct {
	err   error
	never chan struct{} // Changed: the buffer never changes
}

func newRefusedBuffer(cause error) *refusedBuffer {
	return &refusedBuffer{err: errors.Join(ErrBufferUnavailable, cause), never: make(chan struct{})}
}

func (r *refusedBuffer) Append([]byte, AppendFlags) (Ack, error)         { return nil, r.err }
func (r *refusedBuffer) Read(dst []byte, _ int64, _ int) ([]byte, error) { return dst, r.err }
func (r *refusedBuffer) Locate(int64, int) (seglog.Slice, error)         { return seglog.Slice{}, r.err }
func (r *refusedBuffer) OffsetForTime(int64) (int64, error)              { return 0, r.err }
func (r *refusedBuffer) StartOffset() int64                              { return 0 }
func (r *refusedBuffer) NextOffset() int64                               { return 0 }
func (r *refusedBuffer) HighWatermark() int64                            { return 0 }
func (r *refusedBuffer) Changed() <-chan struct{}                        { return r.never }
func (r *refusedBuffer) Truncate(int64) error                            { return r.err }
func (r *refusedBuffer) SetEpoch(int32)                                  {}
func (r *refusedBuffer) Close() error                                    { return nil }

// segmentBuffer is a Buffer on one node: a seglog.Log.
type segmentBuffer struct{ *seglog.Log }

// OpenSegmentBuffer opens (recovering) the single-node buffer in dir.
func OpenSegmentBuffer(dir string, opts seglog.Options) (Buffer, error) {
	l, err := seglog.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	return segmentBuffer{l}, nil
}

func (b segmentBuffer) Append(p []byte, f AppendFlags) (Ack, error) {
	return b.appendInto(p, f, new(seglog.Pending))
}

// appendInto is Append with the acknowledgement kept in dst, which the
// Ack returned points to: produce keeps one per partition of a request
// (part.seg), so that an append allocates nothing.
func (b segmentBuffer) appendInto(p []byte, f AppendFlags, dst *seglog.Pending) (Ack, error) {
	var o seglog.AppendOptions
	o.Sparse = f&AppendSparse != 0
	o.Trusted = f&AppendChecked != 0
	pd, err := b.Log.AppendWith(p, o)
	if err != nil {
		return nil, err
	}
	*dst = pd
	return dst, nil
}

// Trim moves the log's start to offset (seglog's Trim: durable when it
// returns), so a node alone can migrate a buffer's records: it is
// Trimmer.
func (b segmentBuffer) Trim(offset int64) (Ack, error) {
	if err := b.Log.Trim(offset); err != nil {
		return nil, err
	}
	return trimmed(b.Log.StartOffset()), nil
}

// trimmed is the Ack of a trim that is durable already: the start.
type trimmed int64

func (t trimmed) Wait() (int64, error) { return int64(t), nil }

func (t trimmed) Ready() bool { return true }
