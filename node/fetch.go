package node

import (
	"context"
	"errors"

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
}

// Partitions returns the buffers of a pipeline with their offsets.
func (n *Node) Partitions(pipeline string) ([]Partition, Code) {
	p := n.st.Load().pipelines[pipeline]
	if p == nil {
		return nil, UnknownPipeline
	}
	bufs := p.routes.Partitions()
	out := make([]Partition, len(bufs))
	for i, b := range bufs {
		out[i] = Partition{Buffer: b, Start: p.logs[i].StartOffset(), HighWatermark: p.logs[i].HighWatermark()}
	}
	return out, OK
}

// Log returns the log of a pipeline's partition.
func (n *Node) Log(pipeline string, partition int32) (*seglog.Log, Code) {
	p := n.st.Load().pipelines[pipeline]
	if p == nil {
		return nil, UnknownPipeline
	}
	if partition < 0 || int(partition) >= len(p.logs) {
		return nil, UnknownPartition
	}
	return p.logs[partition], OK
}

// Fetch appends to dst whole record batches of a partition from offset
// (Earliest and Latest resolve), up to maxBytes (at least one batch). When
// nothing is there yet it waits until data arrives or ctx ends. It returns
// the batches, the resolved offset and the high watermark.
func (n *Node) Fetch(ctx context.Context, pipeline string, partition int32, offset int64, maxBytes int, dst []byte) ([]byte, int64, int64, Code) {
	l, code := n.Log(pipeline, partition)
	if code != OK {
		return dst, offset, -1, code
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
		if offset < hw {
			out, err := l.Read(dst, offset, maxBytes)
			if errors.Is(err, seglog.ErrOffsetOutOfRange) {
				return dst, offset, hw, OffsetOutOfRange
			}
			if errors.Is(err, seglog.ErrClosed) {
				return dst, offset, hw, n.closedCode()
			}
			if err != nil {
				n.log.Error("read failed", "pipeline", pipeline, "partition", partition, "offset", offset, "err", err)
				return dst, offset, hw, StorageError
			}
			return out, offset, hw, OK
		}
		if offset > hw || offset < l.StartOffset() {
			return dst, offset, hw, OffsetOutOfRange
		}
		// DeletePipeline swaps the state before it closes the logs, and
		// closing a log closes the channel taken above: a wait that began
		// before the swap wakes, one that would begin after it stops here.
		if cur, _ := n.Log(pipeline, partition); cur != l || n.closed.Load() {
			return dst, offset, hw, n.closedCode()
		}
		select {
		case <-ctx.Done():
			return dst, offset, hw, OK
		case <-ch:
		}
	}
}
