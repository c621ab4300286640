package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/router"
	"github.com/sensehq/sense/seglog"
)

// Routing headers a Kafka producer may set on a record: the text forms
// (codes or groups such as "MA,SN"; low, medium or critical) and the binary
// forms the node writes (event.HeaderMask, event.HeaderPriority).
const (
	headerJurisdictionText = "sense.jurisdiction"
	headerPriorityText     = "sense.priority"
)

// stamper checks and restamps the records of one raw batch. Pooled: its
// buffers are reused.
type stamper struct {
	dec []byte // decompressed records
	rb  batch.Rebuilder
	// enc holds the routing headers as a record carries them (see
	// routingHeaders); each record patches its mask and class in.
	enc []byte
}

// add re-encodes record r into st.rb with the binary routing headers it
// lacks.
func (st *stamper) add(r *batch.Record, mask jurisdiction.Mask, prio event.Priority, hasJ, hasP bool) {
	if st.enc == nil {
		st.enc = routingHeaders()
	}
	setRouting(st.enc, mask, prio)
	switch {
	case !hasJ && !hasP:
		st.rb.AddEncoded(r, st.enc, 2)
	case !hasJ:
		st.rb.AddEncoded(r, st.enc[:encMaskEnd], 1)
	case !hasP:
		st.rb.AddEncoded(r, st.enc[encMaskEnd:], 1)
	default:
		st.rb.AddEncoded(r, nil, 0)
	}
}

var stamperPool = sync.Pool{New: func() any { return new(stamper) }}

// stamp decides whether the records of batch b may be stored in buffer buf
// of pipeline p, and returns the batch to store: every record then carries
// the binary routing headers sense.j (its mask) and sense.p (its
// priority), as records produced over the native protocol do, so the
// place each record may rest is provable from disk whatever the edge.
//
// A record's mask is its sense.j header (8 bytes) or its sense.jurisdiction
// header (codes or groups), which must agree when both are present; without
// either it takes the pipeline's default mask. Its priority is its sense.p
// or sense.priority header, else the lane's. The mask must include the
// hub's jurisdiction and the priority must be the lane's; otherwise the
// batch is refused whole with PolicyViolation and a reason naming the
// record. When every record already carries both binary headers the batch
// is stored as it came; otherwise it is re-encoded with the producer's
// codec, fields, timestamps and headers kept and the binary headers added
// (docs/storage.md). b must already have passed batch.Check.
//
// With maxRecord above 0, a record whose key, value and headers take more
// bytes is refused with EventTooLarge, as the native edges refuse such an
// event.
func (st *stamper) stamp(n *Node, p *pipeline, defMask jurisdiction.Mask, buf router.Buffer, hub router.Hub, h *batch.Header, b []byte, maxRecord int64) ([]byte, result.Code, string) {
	var it batch.Iter
	records := b[batch.HeaderSize:]
	if h.Compression() != batch.CompressionNone {
		var err error
		if st.dec, err = batch.Decompress(st.dec[:0], b); err != nil {
			return nil, result.CorruptBatch, err.Error()
		}
		records = st.dec
	}
	if err := it.ResetRecords(records, h.RecordCount); err != nil {
		return nil, result.CorruptBatch, err.Error()
	}
	// A producer numbers the records of its batch 0, 1, 2, ...: only a
	// broker's compaction leaves gaps. A gap from a producer would move the
	// partition's offsets by up to 2^31 per batch (and past what a
	// segment's index can address), so it is refused, as Kafka refuses it.
	if h.LastDelta != h.RecordCount-1 {
		return nil, result.CorruptBatch, fmt.Sprintf("the batch holds %d records but its last offset delta is %d; a producer's records are numbered 0 to count-1", h.RecordCount, h.LastDelta)
	}
	// First pass: check, and see whether any record lacks a binary header.
	// When the first one does (a Kafka producer's batch mostly carries
	// none), the batch is re-encoded in this same pass.
	restamp, building := false, false
	for i := int32(0); it.Next(); i++ {
		r := it.Record()
		if r.OffsetDelta != i {
			return nil, result.CorruptBatch, fmt.Sprintf("record %d has offset delta %d; a producer's records are numbered 0 to count-1", i, r.OffsetDelta)
		}
		if r.Key == nil && p.spec.Compacted() {
			return nil, result.CorruptBatch, fmt.Sprintf("record at offset delta %d has no key; topic %s is compacted (cleanup.policy %s), which keeps the latest record of each key: give every record a key", r.OffsetDelta, p.spec.Name, p.spec.CleanupPolicy)
		}
		if size := int64(r.Size()); maxRecord > 0 && size > maxRecord {
			return nil, result.EventTooLarge, fmt.Sprintf("record at offset delta %d holds %d bytes of key, value and headers, more than pipeline %s's max.message.bytes, %d; send smaller records, or raise the limit (kafka-configs --alter --entity-type topics --entity-name %s --add-config max.message.bytes=N)",
				r.OffsetDelta, size, p.spec.Name, maxRecord, p.spec.Name)
		}
		mask, prio, hasJ, hasP, code, why := n.recordRouting(r, defMask, buf.Lane)
		if code != result.OK {
			return nil, code, why
		}
		if !hasJ || !hasP {
			restamp = true
		}
		if mask&hub.Mask == 0 {
			return nil, result.PolicyViolation, fmt.Sprintf("record at offset delta %d may rest only in %s; partition %d is in hub %s (%s)",
				r.OffsetDelta, n.reg.Format(mask), buf.Partition, buf.Hub, hub.Jurisdiction)
		}
		if lane := p.routes.LaneFor(prio); lane != buf.Lane {
			return nil, result.PolicyViolation, fmt.Sprintf("record at offset delta %d is %s; partition %d is the %s lane (send it to a partition of the %s lane)", r.OffsetDelta, prio, buf.Partition, buf.Lane, lane)
		}
		if i == 0 && restamp {
			building = true
			st.reset(h, len(records))
		}
		if building {
			st.add(r, mask, prio, hasJ, hasP)
		}
	}
	if err := it.Err(); err != nil {
		return nil, result.CorruptBatch, err.Error()
	}
	if !restamp {
		return b, result.OK, ""
	}
	if !building {
		// Second pass: re-encode with the binary headers the records lack.
		st.reset(h, len(records))
		it.ResetRecords(records, h.RecordCount)
		for it.Next() {
			r := it.Record()
			mask, prio, hasJ, hasP, _, _ := n.recordRouting(r, defMask, buf.Lane)
			st.add(r, mask, prio, hasJ, hasP)
		}
	}
	out, err := st.rb.FinishCompressed(h.Compression())
	if err != nil {
		return nil, result.Unknown, fmt.Sprintf("re-encode the batch with codec %d: %v", h.Compression(), err)
	}
	return out, result.OK, ""
}

// reset starts re-encoding a batch of header h whose records take size
// bytes.
func (st *stamper) reset(h *batch.Header, size int) {
	st.rb.Reset(h)
	st.rb.Grow(size + int(h.RecordCount)*(len(event.HeaderMask)+len(event.HeaderPriority)+13))
}

// recordRouting reads a record's routing headers: its mask and priority
// (defaults when absent), whether the binary headers are present, and a
// PolicyViolation for a header that cannot be read or two that disagree.
func (n *Node) recordRouting(r *batch.Record, defMask jurisdiction.Mask, lane event.Priority) (jurisdiction.Mask, event.Priority, bool, bool, result.Code, string) {
	var textMask, binMask jurisdiction.Mask
	var textPrio, binPrio event.Priority
	var hasTextJ, hasTextP, hasJ, hasP bool
	hi := r.Headers()
	for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
		switch string(k) {
		case event.HeaderMask:
			m, err := event.DecodeMaskHeader(v)
			if err == nil && !n.reg.Contains(m) {
				err = fmt.Errorf("mask %#x has bits outside the registry", uint64(m))
			}
			if err != nil {
				return 0, 0, false, false, result.PolicyViolation, fmt.Sprintf("record at offset delta %d: %s header: %v", r.OffsetDelta, event.HeaderMask, err)
			}
			binMask, hasJ = m, true
		case event.HeaderPriority:
			pr, err := event.DecodePriorityHeader(v)
			if err != nil {
				return 0, 0, false, false, result.PolicyViolation, fmt.Sprintf("record at offset delta %d: %s header: %v", r.OffsetDelta, event.HeaderPriority, err)
			}
			binPrio, hasP = pr, true
		case headerJurisdictionText:
			m, err := n.reg.Parse(string(v))
			if err != nil {
				return 0, 0, false, false, result.PolicyViolation, fmt.Sprintf("record at offset delta %d: %s %q: %v", r.OffsetDelta, headerJurisdictionText, v, err)
			}
			textMask, hasTextJ = m, true
		case headerPriorityText:
			pr, err := event.ParsePriority(string(v))
			if err != nil {
				return 0, 0, false, false, result.PolicyViolation, fmt.Sprintf("record at offset delta %d: %v", r.OffsetDelta, err)
			}
			textPrio, hasTextP = pr, true
		}
	}
	mask, prio := defMask, lane
	switch {
	case hasJ && hasTextJ && binMask != textMask:
		return 0, 0, false, false, result.PolicyViolation, fmt.Sprintf("record at offset delta %d: %s says %s, %s says %s; send one",
			r.OffsetDelta, event.HeaderMask, n.reg.Format(binMask), headerJurisdictionText, n.reg.Format(textMask))
	case hasJ:
		mask = binMask
	case hasTextJ:
		mask = textMask
	}
	switch {
	case hasP && hasTextP && binPrio != textPrio:
		return 0, 0, false, false, result.PolicyViolation, fmt.Sprintf("record at offset delta %d: %s says %s, %s says %s; send one",
			r.OffsetDelta, event.HeaderPriority, binPrio, headerPriorityText, textPrio)
	case hasP:
		prio = binPrio
	case hasTextP:
		prio = textPrio
	}
	return mask, prio, hasJ, hasP, result.OK, ""
}

// AppendRaw stores a record batch that came from outside (a Kafka
// producer's) in a partition: it checks the batch's CRC and framing, checks
// every record's jurisdiction and priority against the partition's hub and
// lane and writes the binary routing headers into records that lack them
// (see stamp), and appends it with Kafka's idempotence rules (strict
// sequences). It returns the base offset once the batch is durable, or a
// code and a reason. The pipeline's state is looked up once. The caller
// has reserved b's bytes (Reserve) with the request that holds them.
func (n *Node) AppendRaw(ctx context.Context, pipeline string, partition int32, b []byte) (int64, result.Code, string) {
	return n.StartAppendRaw(ctx, pipeline, partition, b).Wait()
}

// StartAppendRaw is AppendRaw up to the batch's write: it returns once the
// batch is written (in order with the partition's appends) or refused,
// without waiting for it to be durable, so that a connection can start its
// next request while this one's fdatasync runs (and the group commit
// covers both). b may be reused once it returns. Wait gives the outcome.
func (n *Node) StartAppendRaw(ctx context.Context, pipeline string, partition int32, b []byte) *RawAppend {
	return n.appendRaw(ctx, pipeline, partition, b, AppendChecked|AppendLocal, new(RawAppend))
}

// StartAppendRawInto is StartAppendRaw into a RawAppend of the caller's (an
// edge keeps them with the request that holds b, so that starting an
// append allocates nothing); ra may be reused once its Wait has returned.
func (n *Node) StartAppendRawInto(ctx context.Context, pipeline string, partition int32, b []byte, ra *RawAppend) {
	n.appendRaw(ctx, pipeline, partition, b, AppendChecked|AppendLocal, ra)
}

// RawAppend is an append StartAppendRaw began.
type RawAppend struct {
	n        *Node
	ack      Ack // nil when refused before its write
	base     int64
	code     result.Code
	why      string
	pipeline string
	hub      string
	lane     event.Priority
	records  int
	size     int
	seg      seglog.Pending // ack's value on a node alone (segmentBuffer.appendInto)
}

// refused makes ra an append refused before its write, and returns it.
func (ra *RawAppend) refused(code result.Code, why string) *RawAppend {
	*ra = RawAppend{base: -1, code: code, why: why}
	return ra
}

// Ready reports whether Wait returns at once.
func (a *RawAppend) Ready() bool { return a.ack == nil || a.ack.Ready() }

// Wait returns the batch's base offset once it is durable, or the code
// and reason that kept it from being stored.
func (a *RawAppend) Wait() (int64, result.Code, string) {
	if a.ack == nil {
		return a.base, a.code, a.why
	}
	n := a.n
	base, err := a.ack.Wait()
	a.ack = nil
	if err != nil {
		c := n.appendCode(err)
		if errors.Is(err, batch.ErrCorrupt) || errors.Is(err, batch.ErrInvalid) {
			c = result.CorruptBatch
		}
		a.base, a.code, a.why = -1, c, err.Error()
		return a.base, a.code, a.why
	}
	n.Metrics.stored(a.pipeline, a.hub, a.lane, a.records, a.size)
	a.base, a.code = base, result.OK
	return base, result.OK, ""
}

// AppendMoved stores a batch the migrator built from records it moves out
// of a hub: checked exactly as a Kafka producer's batch (every record's
// mask against the partition's hub, its priority against the lane, the
// hub's policy), then appended with sparse sequences (the copy's sequence
// numbers are the source offsets) and, on a cluster node that does not
// lead the partition, forwarded to its leader.
func (n *Node) AppendMoved(ctx context.Context, pipeline string, partition int32, b []byte) (int64, result.Code, string) {
	return n.appendRaw(ctx, pipeline, partition, b, AppendChecked|AppendSparse, new(RawAppend)).Wait()
}

// Trimmer is implemented by a Buffer whose start can move forward (a
// replicated buffer, and a single node's seglog.Log): its Ack resolves
// once the new start is committed, and durable.
type Trimmer interface {
	Trim(offset int64) (Ack, error)
}

// Syncer is implemented by a Buffer whose acknowledgements may come
// before its data is durable (a single node's seglog.Log under the
// interval and never policies): Sync makes everything appended so far
// durable. A replicated buffer's acknowledgement means a quorum holds the
// data; it has no Sync.
type Syncer interface {
	Sync() error
}

// Sync makes what a partition acknowledged durable, when its buffer is a
// Syncer; otherwise it does nothing. The migrator of a node alone calls
// it on its destinations before the source loses anything.
func (n *Node) Sync(pipeline string, partition int32) error {
	b, code := n.buffer(pipeline, partition)
	if code != result.OK {
		return result.New(code, fmt.Sprintf("sync %s/%d", pipeline, partition))
	}
	if s, ok := b.(Syncer); ok {
		if err := s.Sync(); err != nil {
			return fmt.Errorf("sync %s/%d: %w", pipeline, partition, err)
		}
	}
	return nil
}

// Trim moves a partition's start to offset (a batch boundary): the
// records below it leave the buffer.
func (n *Node) Trim(pipeline string, partition int32, offset int64) error {
	b, code := n.buffer(pipeline, partition)
	if code != result.OK {
		return result.New(code, fmt.Sprintf("trim %s/%d", pipeline, partition))
	}
	t, ok := b.(Trimmer)
	if !ok {
		return fmt.Errorf("%w: %s/%d: this buffer's start cannot move", ErrInvalidSpec, pipeline, partition)
	}
	a, err := t.Trim(offset)
	if err != nil {
		return err
	}
	_, err = a.Wait()
	return err
}

// DeleteRecords moves a partition's start up to offset, as Kafka's
// DeleteRecords moves a log start offset (-1: the high watermark), and
// returns the new start. The start moves by whole batches: an offset inside
// a batch moves it to that batch's first offset, so the batch's records
// below offset stay readable (Kafka would hide them; a start is a batch
// boundary here, docs/storage.md). An offset past the high watermark is
// OFFSET_OUT_OF_RANGE; a pipeline whose cleanup policy is compact alone
// refuses (POLICY_VIOLATION, as Kafka does); a partition another node
// leads answers NOT_LEADER.
func (n *Node) DeleteRecords(pipeline string, partition int32, offset int64) (int64, error) {
	b, code := n.buffer(pipeline, partition)
	if code != result.OK {
		return -1, result.New(code, fmt.Sprintf("delete records of %s/%d", pipeline, partition))
	}
	if spec, ok := n.Pipeline(pipeline); ok && spec.CleanupPolicy == CleanupCompact {
		return -1, result.New(result.PolicyViolation, fmt.Sprintf("pipeline %s is compacted (cleanup.policy compact): its records are not deleted by offset; use compact,delete to delete them", pipeline))
	}
	if _, remote := b.(RemoteReader); remote {
		return -1, result.New(result.NotLeader, fmt.Sprintf("%s/%d is led by another node", pipeline, partition))
	}
	if l, ok := b.(Leadership); ok && !l.IsLeader() {
		return -1, result.New(result.NotLeader, fmt.Sprintf("%s/%d is led by %s", pipeline, partition, l.Leader()))
	}
	hw := b.HighWatermark()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return -1, result.New(result.OffsetOutOfRange, fmt.Sprintf("offset %d of %s/%d is not between 0 and its high watermark %d", offset, pipeline, partition, hw))
	}
	if offset <= b.StartOffset() {
		return b.StartOffset(), nil
	}
	if offset < hw {
		data, err := b.Read(nil, offset, 1)
		if err != nil {
			return -1, err
		}
		h, err := batch.ParseHeader(data)
		if err != nil {
			return -1, fmt.Errorf("delete records of %s/%d: the batch holding offset %d: %w", pipeline, partition, offset, err)
		}
		offset = min(offset, h.BaseOffset)
	}
	if err := n.Trim(pipeline, partition, offset); err != nil {
		return -1, err
	}
	return b.StartOffset(), nil
}

func (n *Node) appendRaw(ctx context.Context, pipeline string, partition int32, b []byte, flags AppendFlags, ra *RawAppend) *RawAppend {
	s := n.st.Load()
	p, partition, defMask, code := n.resolve(s, pipeline, partition)
	switch code {
	case result.UnknownPipeline:
		return ra.refused(code, "unknown pipeline")
	case result.UnknownPartition:
		return ra.refused(code, "unknown partition")
	}
	pipeline = p.spec.Name
	if p.refused != nil {
		return ra.refused(result.StorageError, p.refused.err.Error())
	}
	buf, _ := p.routes.Buffer(partition)
	if f := n.fence.Load(); f != nil {
		return ra.refused(result.NotReady, *f)
	}
	if !p.routes.Allowed(buf.HubIndex) {
		n.Metrics.dropped(pipeline, "policy_violation")
		return ra.refused(result.PolicyViolation, fmt.Sprintf("partition %d is in hub %s, whose policy denies pipeline %s (routing table version %d); send to a partition of another hub, or allow it with `sense hub policy %s --allow %s`",
			partition, buf.Hub, pipeline, s.table.Version(), buf.Hub, pipeline))
	}
	// A Kafka producer's batch, compressed as sent, and each of its
	// records: the pipeline's max.message.bytes.
	var maxRecord int64
	if flags&AppendLocal != 0 {
		maxRecord = n.MaxMessageBytes(p.spec)
		if int64(len(b)) > maxRecord {
			return ra.refused(result.EventTooLarge, fmt.Sprintf("a record batch of %d bytes is larger than pipeline %s's max.message.bytes, %d; send smaller batches (batch.size, max.request.size), or raise the limit (kafka-configs --alter --entity-type topics --entity-name %s --add-config max.message.bytes=N)",
				len(b), pipeline, maxRecord, pipeline))
		}
	}
	h, err := batch.Check(b)
	if err != nil {
		return ra.refused(result.CorruptBatch, err.Error())
	}
	if h.Attributes&batch.AttrControl != 0 {
		// Control records (transaction markers, a replicated log's
		// trims) are the broker's to write, as in Kafka.
		return ra.refused(result.InvalidRequest, "the batch is a control batch; producers may not write control records")
	}
	// Overload: the lane's events are shed as on the native path (a
	// Kafka client retries NOT_ENOUGH_REPLICAS after a back-off).
	// A Kafka connection's requests are handled in order (docs/kafka.md):
	// the wait behind the connection's own earlier requests is the
	// client's pipeline, not the node's queue, so the delay runs from
	// here.
	start := time.Now()
	reason := ""
	switch {
	case n.budget.shed(buf.Lane):
		reason = shedBytes
	case !n.lanes.admit(buf.Lane, start):
		reason = shedDelay
	}
	if reason != "" {
		n.Metrics.shed(pipeline, buf.Lane, reason, int(h.RecordCount))
		return ra.refused(result.Overloaded, fmt.Sprintf("the node is overloaded and sheds %s events (%s); retry later or send critical events", buf.Lane, reason))
	}
	// Checking and restamping takes memory beyond the request's bytes (the
	// decompressed records, up to batch.MaxDecompressed, and the new
	// batch). It comes from a budget of its own: a check never waits for
	// anything but the CPU once it has its bytes, so waiting for them
	// cannot deadlock with requests that hold ingress bytes while they
	// wait.
	work := int64(len(b)) + 16*int64(h.RecordCount)
	if h.Compression() != batch.CompressionNone {
		work += 2 * min(int64(len(b))*20, batch.MaxDecompressed)
	}
	if err := n.checkBudget.reserve(ctx, work, nil); err != nil {
		return ra.refused(result.NotReady, err.Error())
	}
	defer n.checkBudget.release(work)
	// The batch's place among the appends, by its lane (see lanes).
	if err := n.lanes.acquire(ctx, buf.Lane); err != nil {
		return ra.refused(result.Timeout, err.Error())
	}
	now := time.Now()
	delay := now.Sub(start)
	n.lanes.observe(buf.Lane, delay, now)
	n.Metrics.laneDelay[buf.Lane].Observe(delay.Seconds())
	placed := true
	defer func() {
		if placed {
			n.lanes.release(buf.Lane)
		}
	}()
	st := stamperPool.Get().(*stamper)
	defer func() {
		if cap(st.dec) > 4<<20 {
			st.dec = nil
		}
		stamperPool.Put(st)
	}()
	stored, code, why := st.stamp(n, p, defMask, buf, s.table.Hub(buf.HubIndex), &h, b, maxRecord)
	if code != result.OK {
		if code == result.PolicyViolation {
			n.Metrics.dropped(pipeline, "policy_violation")
			n.log.Warn("batch refused: policy violation", "pipeline", pipeline, "partition", partition, "reason", why)
		}
		return ra.refused(code, why)
	}
	// The batch was checked above, or built here: its CRC is not computed
	// again.
	*ra = RawAppend{n: n, base: -1, pipeline: pipeline, hub: buf.Hub, lane: buf.Lane, records: int(h.RecordCount), size: len(stored)}
	var ack Ack
	if sb, ok := p.bufs[partition].(segmentBuffer); ok {
		ack, err = sb.appendInto(stored, flags, &ra.seg)
	} else {
		ack, err = p.bufs[partition].Append(stored, flags)
	}
	placed = false
	n.lanes.release(buf.Lane)
	if err != nil {
		c := n.appendCode(err)
		if errors.Is(err, batch.ErrCorrupt) || errors.Is(err, batch.ErrInvalid) {
			c = result.CorruptBatch
		}
		return ra.refused(c, err.Error())
	}
	ra.ack = ack
	return ra
}
