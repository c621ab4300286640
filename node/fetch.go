package node

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/router"
	"github.com/sensehq/sense/seglog"
)

// Offsets for Fetch and Subscribe.
const (
	Latest   int64 = -1
	Earliest int64 = -2
)

// Partition describes one buffer of a pipeline.
type Partition struct {
	router.Buffer
	Start, HighWatermark int64
	// Denied: the hub's policy denies the pipeline; the partition takes
	// no new events, and what it holds awaits migration.
	Denied bool
}

// Partitions returns the buffers of a pipeline with their offsets.
// pipeline may be a jurisdiction view (view.go): its partitions are
// numbered as the view numbers them.
func (n *Node) Partitions(pipeline string) ([]Partition, result.Code) {
	s := n.st.Load()
	p := s.pipeline(pipeline)
	if p == nil {
		v := s.view(pipeline, n.reg)
		if v == nil {
			return nil, result.UnknownPipeline
		}
		bufs := v.p.routes.Partitions()
		out := make([]Partition, len(v.parts))
		for i, part := range v.parts {
			b := bufs[part]
			b.Partition = int32(i)
			out[i] = Partition{Buffer: b, Start: v.p.bufs[part].StartOffset(), HighWatermark: v.p.bufs[part].HighWatermark(), Denied: !v.p.routes.Allowed(b.HubIndex)}
		}
		return out, result.OK
	}
	bufs := p.routes.Partitions()
	out := make([]Partition, len(bufs))
	for i, b := range bufs {
		out[i] = Partition{Buffer: b, Start: p.bufs[i].StartOffset(), HighWatermark: p.bufs[i].HighWatermark(), Denied: !p.routes.Allowed(b.HubIndex)}
	}
	return out, result.OK
}

// PartitionCount returns how many partitions a pipeline (or a view) has,
// as Partitions would list them, without listing them: a produce checks a
// partition number with it, allocating nothing.
func (n *Node) PartitionCount(pipeline string) (int, result.Code) {
	s := n.st.Load()
	if p := s.pipeline(pipeline); p != nil {
		return len(p.bufs), result.OK
	}
	if v := s.view(pipeline, n.reg); v != nil {
		return len(v.parts), result.OK
	}
	return 0, result.UnknownPipeline
}

// Lane returns the priority class a partition's buffer holds (its lane);
// ok is false for an unknown pipeline or partition.
func (n *Node) Lane(pipeline string, partition int32) (lane event.Priority, ok bool) {
	p, part, _, code := n.resolve(n.st.Load(), pipeline, partition)
	if code != result.OK {
		return 0, false
	}
	b, ok := p.routes.Buffer(part)
	return b.Lane, ok
}

// buffer returns the buffer of a pipeline's (or a view's) partition.
func (n *Node) buffer(pipeline string, partition int32) (Buffer, result.Code) {
	p, part, _, code := n.resolve(n.st.Load(), pipeline, partition)
	if code != result.OK {
		return nil, code
	}
	if p.refused != nil {
		return nil, result.StorageError // its cause was logged at start
	}
	return p.bufs[part], result.OK
}

// Offsets returns a partition's first offset and high watermark.
func (n *Node) Offsets(pipeline string, partition int32) (start, hw int64, code result.Code) {
	b, code := n.buffer(pipeline, partition)
	if code != result.OK {
		return -1, -1, code
	}
	if rr, ok := b.(RemoteReader); ok {
		ctx, cancel := context.WithTimeout(context.Background(), remoteOffsetsTimeout)
		defer cancel()
		r, err := rr.ReadFrom(ctx, Latest, 0, 0, ReadUncommitted)
		if err != nil {
			return -1, -1, n.readCode(pipeline, partition, err)
		}
		return r.Start, r.HighWatermark, result.OK
	}
	return b.StartOffset(), b.HighWatermark(), result.OK
}

// KnownHighWatermark is a partition's high watermark as this node knows it
// without asking another: for a buffer held on other nodes, as its last
// remote read answered it. For metrics.
func (n *Node) KnownHighWatermark(pipeline string, partition int32) (int64, bool) {
	b, code := n.buffer(pipeline, partition)
	if code != result.OK {
		return -1, false
	}
	return b.HighWatermark(), true
}

// remoteOffsetsTimeout bounds asking another node for a buffer's offsets.
const remoteOffsetsTimeout = 10 * time.Second

// remoteWait is the longest a node holding a buffer keeps one remote read
// open waiting for data; a reader that waits longer asks again.
const remoteWait = 2 * time.Second

// remoteRetryPause is the pause before asking again after no replica could
// answer a remote read.
const remoteRetryPause = 50 * time.Millisecond

// Resolve turns Earliest and Latest into a partition's offsets and checks
// that offset lies in [start, high watermark] (OffsetOutOfRange if not).
// It returns the offset and the partition's range.
func (n *Node) Resolve(pipeline string, partition int32, offset int64) (off, start, hw int64, code result.Code) {
	start, hw, code = n.Offsets(pipeline, partition)
	if code != result.OK {
		return offset, start, hw, code
	}
	switch offset {
	case Earliest:
		offset = start
	case Latest:
		offset = hw
	}
	if offset < start || offset > hw {
		return offset, start, hw, result.OffsetOutOfRange
	}
	return offset, start, hw, result.OK
}

// OffsetForTime returns the base offset of a partition's first batch whose
// max timestamp is at or after ts (ms), or its high watermark when none is.
func (n *Node) OffsetForTime(pipeline string, partition int32, ts int64) (int64, result.Code) {
	b, code := n.buffer(pipeline, partition)
	if code != result.OK {
		return -1, code
	}
	off, err := b.OffsetForTime(ts)
	if err != nil {
		return -1, n.readCode(pipeline, partition, err)
	}
	return off, result.OK
}

// Changed returns a channel closed when the partition's high watermark
// next moves, or when its buffer closes (the pipeline was deleted, the node
// stops). For a partition that does not exist it returns nil, which never
// fires. Take it before reading, then wait on it: nothing appended after
// the read is missed.
func (n *Node) Changed(pipeline string, partition int32) <-chan struct{} {
	b, code := n.buffer(pipeline, partition)
	if code != result.OK {
		return nil
	}
	return b.Changed()
}

// selectMax is how many channels WaitAny waits on in one select; beyond it
// a goroutine watches each.
const selectMax = 8

// WaitAny blocks until one of chans (from Changed) is closed, and reports
// true, or until ctx ends, and reports false. Every reader that waits for
// new data (Fetch, so native subscriptions and HTTP reads; the Kafka
// edge's fetch across partitions) waits through it or Fetch.
func WaitAny(ctx context.Context, chans []<-chan struct{}) bool {
	switch len(chans) {
	case 0:
		<-ctx.Done()
		return false
	case 1:
		select {
		case <-chans[0]:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if len(chans) <= selectMax {
		// One select over them (a nil channel never wakes it): no
		// goroutine per channel for the common fetch of a few partitions.
		var c [selectMax]<-chan struct{}
		copy(c[:], chans)
		select {
		case <-c[0]:
		case <-c[1]:
		case <-c[2]:
		case <-c[3]:
		case <-c[4]:
		case <-c[5]:
		case <-c[6]:
		case <-c[7]:
		case <-ctx.Done():
			return false
		}
		return true
	}
	ctx, cancel := context.WithCancel(ctx)
	woke := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	// The watchers end once ctx is cancelled: cancel first, then wait for
	// them (waiting first would hold the caller until ctx's deadline).
	defer func() {
		cancel()
		wg.Wait()
	}()
	for _, ch := range chans {
		if ch == nil {
			continue
		}
		wg.Go(func() {
			select {
			case <-ch:
				once.Do(func() { close(woke) })
			case <-ctx.Done():
			}
		})
	}
	select {
	case <-woke:
		return true
	case <-ctx.Done():
		return false
	}
}

// readCode is the code of a failed read.
func (n *Node) readCode(pipeline string, partition int32, err error) result.Code {
	switch {
	case errors.Is(err, seglog.ErrOffsetOutOfRange):
		return result.OffsetOutOfRange
	case errors.Is(err, seglog.ErrClosed):
		return n.closedCode()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return result.Timeout
	}
	if c := result.CodeOf(err); c != result.Unknown {
		// An answer from another node (a remote read), with its code.
		return c
	}
	n.log.Error("read failed", "pipeline", pipeline, "partition", partition, "err", err)
	return result.StorageError
}

// Fetch appends to dst whole record batches of a partition from offset
// (Earliest and Latest resolve), up to maxBytes (at least one batch), read
// committed (ReadCommitted: below the last stable offset, the aborted
// transactions' batches emptied). When nothing is there yet it waits until
// data arrives or ctx ends. It returns the batches, the resolved offset and
// the high watermark.
func (n *Node) Fetch(ctx context.Context, pipeline string, partition int32, offset int64, maxBytes int, dst []byte) ([]byte, int64, int64, result.Code) {
	return n.FetchIsolated(ctx, pipeline, partition, offset, maxBytes, dst, ReadCommitted)
}

// FetchIsolated is Fetch with the isolation asked for. A buffer held on
// other nodes is read from a node that holds it, which applies the
// isolation (its replica knows the transactions; docs/cluster.md, "Remote
// reads").
func (n *Node) FetchIsolated(ctx context.Context, pipeline string, partition int32, offset int64, maxBytes int, dst []byte, iso Isolation) ([]byte, int64, int64, result.Code) {
	l, code := n.buffer(pipeline, partition)
	if code != result.OK {
		return dst, offset, -1, code
	}
	if rr, ok := l.(RemoteReader); ok {
		return n.fetchRemote(ctx, l, rr, pipeline, partition, offset, maxBytes, dst, iso)
	}
	switch offset {
	case Earliest:
		offset = l.StartOffset()
	case Latest:
		offset = l.HighWatermark()
	}
	for {
		ch := l.Changed()
		hw := l.HighWatermark()
		limit := hw
		if iso != ReadUncommitted && offset < hw {
			lso, _, err := n.stable(l, 0, 0, false)
			if err != nil {
				return dst, offset, hw, n.readCode(pipeline, partition, err)
			}
			limit = lso
		}
		if offset < limit {
			out, err := l.Read(dst, offset, maxBytes)
			if err == nil && iso != ReadUncommitted {
				out, err = n.committed(l, iso, out, len(dst), offset)
			}
			if err != nil {
				return dst, offset, hw, n.readCode(pipeline, partition, err)
			}
			return out, offset, hw, result.OK
		}
		if offset > hw || offset < l.StartOffset() {
			return dst, offset, hw, result.OffsetOutOfRange
		}
		// DeletePipeline swaps the state before it closes the buffers,
		// and closing a buffer closes the channel taken above: a wait that
		// began before the swap wakes, one that would begin after it stops
		// here.
		if cur, _ := n.buffer(pipeline, partition); cur != l || n.closed.Load() {
			return dst, offset, hw, n.closedCode()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return dst, offset, hw, result.OK
		}
	}
}

// fetchRemote is FetchIsolated of a buffer held on other nodes: each round
// asks a node that holds it, which applies iso and waits up to remoteWait
// for data (below the last stable offset, for a committed read).
func (n *Node) fetchRemote(ctx context.Context, l Buffer, rr RemoteReader, pipeline string, partition int32, offset int64, maxBytes int, dst []byte, iso Isolation) ([]byte, int64, int64, result.Code) {
	hw := int64(-1)
	for {
		wait := remoteWait
		if d, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(d))
		}
		r, err := rr.ReadFrom(ctx, offset, max(maxBytes, 1), max(wait, 0), iso)
		if ctx.Err() != nil {
			// The reader stopped waiting: nothing new, as a local wait
			// that ends with its context.
			return dst, offset, hw, result.OK
		}
		if c := result.CodeOf(err); c == result.NotReady || c == result.Timeout {
			// No replica could answer now (an election, a node down, a
			// busy link): ask again while the reader waits.
			select {
			case <-ctx.Done():
				return dst, offset, hw, result.OK
			case <-time.After(remoteRetryPause):
			}
			continue
		}
		if err != nil {
			return dst, offset, hw, n.readCode(pipeline, partition, err)
		}
		offset, hw = r.Offset, r.HighWatermark
		if len(r.Batches) > 0 {
			return append(dst, r.Batches...), offset, hw, result.OK
		}
		if cur, _ := n.buffer(pipeline, partition); cur != l || n.closed.Load() {
			return dst, offset, hw, n.closedCode()
		}
	}
}

// appendAndWait appends b to l and waits for it to be durable.
func appendAndWait(l Buffer, b []byte, f AppendFlags) (int64, error) {
	ack, err := l.Append(b, f)
	if err != nil {
		return -1, err
	}
	return ack.Wait()
}

// Leadership returns who leads a partition when its buffer is replicated;
// ok is false for a buffer this node alone holds (it leads it) or an
// unknown partition.
func (n *Node) Leadership(pipeline string, partition int32) (l Leadership, ok bool) {
	p, part, _, code := n.resolve(n.st.Load(), pipeline, partition)
	if code != result.OK {
		return nil, false
	}
	l, ok = p.bufs[part].(Leadership)
	return l, ok
}
