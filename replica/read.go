package replica

import (
	"fmt"

	"github.com/sensehq/sense/seglog"
)

// The read side of a Group: what the node's Buffer needs besides Append.
// Readers never see past the high watermark (the commit point).

// Read appends whole committed batches from offset to dst (see
// seglog.Log.Read).
func (g *Group) Read(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	if offset < g.logStart.Load() {
		return dst, fmt.Errorf("%w: %w", seglog.ErrOffsetOutOfRange, g.errBeforeStart(offset))
	}
	out, err := g.log.ReadBelow(dst, offset, maxBytes, g.HighWatermark())
	g.damaged(err)
	return out, err
}

// Locate is Read without the copy.
func (g *Group) Locate(offset int64, maxBytes int) (seglog.Slice, error) {
	if offset < g.logStart.Load() {
		return seglog.Slice{}, fmt.Errorf("%w: %w", seglog.ErrOffsetOutOfRange, g.errBeforeStart(offset))
	}
	sl, err := g.log.LocateBelow(offset, maxBytes, g.HighWatermark())
	g.damaged(err)
	return sl, err
}

// OffsetForTime returns the base offset of the first committed batch whose
// max timestamp is at or after ts, or the high watermark.
func (g *Group) OffsetForTime(ts int64) (int64, error) {
	hw := g.HighWatermark()
	off, err := g.log.OffsetForTime(ts)
	if err != nil {
		return 0, err
	}
	return min(max(off, g.logStart.Load()), hw), nil
}

// TxnFreeFrom is seglog.Log.TxnFreeFrom of this replica's log.
func (g *Group) TxnFreeFrom() int64 { return g.log.TxnFreeFrom() }

// StartOffset is the first offset readers see: the log's first, or past
// it after a trim (trim.go).
func (g *Group) StartOffset() int64 { return max(g.log.StartOffset(), g.logStart.Load()) }

// NextOffset is the offset after the last batch written here, committed
// or not (Kafka's log end offset of this replica).
func (g *Group) NextOffset() int64 { return g.log.NextOffset() }

// HighWatermark is the offset after the last committed batch.
func (g *Group) HighWatermark() int64 { return g.highWatermark() }

// Changed returns a channel closed when the high watermark next moves or
// the group closes.
func (g *Group) Changed() <-chan struct{} {
	g.hwMu.Lock()
	defer g.hwMu.Unlock()
	if g.hwCh == nil {
		g.hwCh = make(chan struct{})
		g.closeMu.Lock()
		closed := g.closed
		g.closeMu.Unlock()
		if closed {
			close(g.hwCh)
			ch := g.hwCh
			g.hwCh = nil
			return ch
		}
	}
	return g.hwCh
}

// Truncate is refused: raft alone cuts a replicated log.
func (g *Group) Truncate(offset int64) error {
	return fmt.Errorf("replica: %s is replicated; only raft cuts its log (asked to cut at %d)", g.key, offset)
}
