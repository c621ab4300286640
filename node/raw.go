package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/result"
)

// CheckRecords decides whether the records of a batch may be stored in a
// buffer of hub mask hubMask and lane lane: a record's sense.jurisdiction
// header (codes or groups, e.g. "MA,SN") must include the hub's
// jurisdiction, and its sense.priority header (low, medium, critical) must
// match the lane. Records without the headers take the pipeline's default
// mask and the lane's priority. Compressed batches (gzip, snappy, lz4,
// zstd) are decompressed to read their records (at most
// batch.MaxDecompressed bytes; more is result.CorruptBatch); the batch is stored
// as it came. It returns result.OK or result.PolicyViolation with a reason.
func (n *Node) CheckRecords(pipeline string, partition int32, b []byte) (result.Code, string) {
	st := n.st.Load()
	p := st.pipelines[pipeline]
	if p == nil {
		return result.UnknownPipeline, "unknown pipeline"
	}
	buf, ok := p.routes.Buffer(partition)
	if !ok {
		return result.UnknownPartition, "unknown partition"
	}
	h, err := batch.Check(b)
	if err != nil {
		return result.CorruptBatch, err.Error()
	}
	hub := st.table.Hub(buf.HubIndex)
	var it *batch.Iter
	if h.Compression() == batch.CompressionNone {
		it, err = batch.NewIter(b)
	} else {
		var records []byte
		if records, err = batch.Decompress(nil, b); err == nil {
			it, err = batch.NewIterRecords(records, h.RecordCount)
		}
	}
	if err != nil {
		return result.CorruptBatch, err.Error()
	}
	for it.Next() {
		r := it.Record()
		mask, prio := p.mask, buf.Lane
		hi := r.Headers()
		for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
			switch string(k) {
			case "sense.jurisdiction":
				m, err := n.reg.Parse(string(v))
				if err != nil {
					return result.PolicyViolation, fmt.Sprintf("record at offset delta %d: sense.jurisdiction %q: %v", r.OffsetDelta, v, err)
				}
				mask = m
			case "sense.priority":
				pr, err := event.ParsePriority(string(v))
				if err != nil {
					return result.PolicyViolation, fmt.Sprintf("record at offset delta %d: %v", r.OffsetDelta, err)
				}
				prio = pr
			}
		}
		if mask&hub.Mask == 0 {
			return result.PolicyViolation, fmt.Sprintf("record at offset delta %d may rest only in %s; partition %d is in hub %s (%s)",
				r.OffsetDelta, n.reg.Format(mask), partition, buf.Hub, hub.Jurisdiction)
		}
		if prio != buf.Lane {
			return result.PolicyViolation, fmt.Sprintf("record at offset delta %d is %s; partition %d is the %s lane", r.OffsetDelta, prio, partition, buf.Lane)
		}
	}
	if err := it.Err(); err != nil {
		return result.CorruptBatch, err.Error()
	}
	return result.OK, ""
}

// AppendRaw stores a record batch as it came (a Kafka producer's) in a
// partition: it checks the batch (CheckRecords) and appends it with Kafka's
// idempotence rules (strict sequences). It returns the base offset once the
// batch is durable, or a code and a reason. The caller has reserved b's
// bytes (Reserve) with the request that holds them.
func (n *Node) AppendRaw(ctx context.Context, pipeline string, partition int32, b []byte) (int64, result.Code, string) {
	// A compressed batch is decompressed to be checked, up to
	// batch.MaxDecompressed. That memory comes from a budget of its own:
	// a check never waits for anything but the CPU once it has its bytes,
	// so waiting for them cannot deadlock with requests that hold ingress
	// bytes while they wait.
	h, err := batch.ParseHeader(b)
	if err != nil {
		return -1, result.CorruptBatch, err.Error()
	}
	// Overload: the lane's events are shed as on the native path (a
	// Kafka client retries NOT_ENOUGH_REPLICAS after a back-off).
	if p := n.st.Load().pipelines[pipeline]; p != nil {
		if buf, ok := p.routes.Buffer(partition); ok && n.budget.shed(buf.Lane) {
			n.Metrics.shedTotal.WithLabelValues(pipeline, buf.Lane.String()).Add(float64(h.RecordCount))
			return -1, result.Overloaded, fmt.Sprintf("the node is overloaded and sheds %s events; retry later or send critical events", buf.Lane)
		}
	}
	if h.Compression() != batch.CompressionNone {
		size := min(int64(len(b))*20, batch.MaxDecompressed)
		if err := n.checkBudget.reserve(ctx, size); err != nil {
			return -1, result.NotReady, err.Error()
		}
		defer n.checkBudget.release(size)
	}
	if code, why := n.CheckRecords(pipeline, partition, b); code != result.OK {
		if code == result.PolicyViolation {
			n.Metrics.dropped(pipeline, "policy_violation")
			n.log.Warn("batch refused: policy violation", "pipeline", pipeline, "partition", partition, "reason", why)
		}
		return -1, code, why
	}
	l, code := n.buffer(pipeline, partition)
	if code != result.OK {
		return -1, code, code.String()
	}
	base, err := appendAndWait(l, b, 0)
	if err != nil {
		c := n.appendCode(err)
		if errors.Is(err, batch.ErrCorrupt) || errors.Is(err, batch.ErrInvalid) {
			c = result.CorruptBatch
		}
		return -1, c, err.Error()
	}
	return base, result.OK, ""
}
