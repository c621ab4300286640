package kafka

import (
	"encoding/binary"
	"sync"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
	"github.com/sensehq/sense/txn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Produce (key 0), versions 3 to 12 (RecordBatch v2 only; 9+ are
// flexible, decoded by decodeProduce; 13 names topics by id). Versions 0
// to 2 are advertised too, and
// answered UNSUPPORTED_FOR_MESSAGE_FORMAT for every partition (not
// retriable): they carry the legacy message sets (magic 0 and 1), which
// Sense does not store. librdkafka up to 2.11 compresses with gzip, snappy
// or lz4 only for a broker that advertises Produce v0 (it asks whether
// Produce [0, 0] is supported before it uses those codecs), and sends
// record batches at v3+ to a broker that advertises them: without v0,
// kcat -z gzip sent its batches uncompressed.
// Each partition's records go to node.AppendRaw as they came (it checks
// the CRC and the records' jurisdiction and priority headers against the
// partition's hub and lane, applies idempotence, and stores the batch
// unchanged); the partitions of one request are appended concurrently.
// acks 1 and -1 both answer once the batch is durable (one replica);
// acks 0 sends no response. A transactional batch (the transactional
// attribute) is accepted only from the producer id and epoch of a
// transactional id whose ongoing transaction holds the partition
// (AddPartitionsToTxn first): else INVALID_TXN_STATE, INVALID_PRODUCER_EPOCH
// for a fenced epoch, INVALID_PRODUCER_ID_MAPPING for a producer id of no
// transactional id. The coordinator counts the batch under way until it is
// appended, so that EndTxn writes its markers after it (txn.go).
//
// Version 12 is KIP-890 part 2's (transaction version 2, served only
// where it is in effect, see Options.TransactionVersion): the request's
// transactional id adds the partitions of its transactional batches to
// the producer's transaction itself, beginning one if none is ongoing,
// before any of them is appended (addImplicitly), as AddPartitionsToTxn
// would (one durable write of the coordinator, or none for partitions its
// log keeps from the id's last transaction); the producer id and epoch
// are checked there, so a fenced epoch is refused before anything is
// added.
const (
	produceAdvertisedMin = 0
	produceMin           = 3
	produceMax           = 12
	produceMaxTV1        = 8
	// produceImplicitAdd is the first version whose transactional
	// batches add their partition to the transaction.
	produceImplicitAdd = 12
)

// produceCall is one Produce request from its decoding to its answer: the
// frame its records alias, the request (decoded into the slices of the
// call's last use), the response, and the appends of its partitions.
// Calls are pooled: a Produce of the usual shape (no transaction, no
// error) allocates nothing on its way through the edge.
type produceCall struct {
	frame []byte
	req   kmsg.ProduceRequest
	resp  kmsg.ProduceResponse
	parts []partAppend
	codes []int16
}

// partAppend is the append of one partition of a produce call.
type partAppend struct {
	ti, pi    int // its answer: resp.Topics[ti].Partitions[pi]
	topic     string
	partition int32
	a         node.RawAppend
	done      func(appended bool) // the transaction's (BeginProduce), or nil
}

// maxPooledFrame bounds the frame a pooled call keeps for its next use.
const maxPooledFrame = 1 << 20

var callPool = sync.Pool{New: func() any { return new(produceCall) }}

func getCall() *produceCall { return callPool.Get().(*produceCall) }

// putCall puts pc back once its answer is written and its appends done.
func putCall(pc *produceCall) {
	if cap(pc.frame) > maxPooledFrame {
		pc.frame = nil
	}
	clear(pc.parts[:cap(pc.parts)]) // the appends and callbacks it held
	pc.parts = pc.parts[:0]
	callPool.Put(pc)
}

// buffer returns pc's frame buffer, of n bytes.
func (pc *produceCall) buffer(n int) []byte {
	if cap(pc.frame) < n {
		pc.frame = make([]byte, n)
	}
	return pc.frame[:n]
}

// startProduce stores the batches of pc's request up to their writes and
// sets up its response; finishProduce waits for them to be durable and
// gives it. The connection's next request is handled meanwhile (see
// handle): a Kafka producer's requests in flight join one fdatasync.
func (c *conn) startProduce(pc *produceCall) {
	req, resp := &pc.req, &pc.resp
	topics := resp.Topics[:0]
	*resp = kmsg.NewProduceResponse()
	resp.SetVersion(req.Version)
	pc.parts = pc.parts[:0]
	if req.Version < produceMin {
		c.produceLegacy(req, resp)
		return
	}
	// A topic's code: not the client's to write, or unknown (and not
	// created now).
	codes := pc.codes[:0]
	total := 0
	for _, t := range req.Topics {
		code := c.authorize(security.Write, security.PipelineResource(t.Topic))
		if code == 0 {
			if _, pcode := c.s.node.PartitionCount(t.Topic); pcode == result.UnknownPipeline && c.create(t.Topic) != result.OK {
				code = kerr.UnknownTopicOrPartition.Code
			}
		}
		codes = append(codes, code)
		total += len(t.Partitions)
	}
	pc.codes = codes
	var failed map[txn.TopicPartition]addFailure
	if req.Version >= produceImplicitAdd && req.TransactionID != nil {
		failed = c.addImplicitly(*req.TransactionID, req.Topics, codes)
	}
	// Every append's place is set before the first starts: an append's
	// state must not move once begun.
	if cap(pc.parts) < total {
		pc.parts = make([]partAppend, 0, total)
	}
	for ti, t := range req.Topics {
		if len(topics) < cap(topics) {
			topics = topics[:ti+1]
		} else {
			topics = append(topics, kmsg.ProduceResponseTopic{})
		}
		rt := &topics[ti]
		parts := rt.Partitions[:0]
		*rt = kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		if cap(parts) < len(t.Partitions) {
			parts = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		}
		parts = parts[:len(t.Partitions)]
		rt.Partitions = parts
		for i, p := range t.Partitions {
			rp := &parts[i]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			if codes[ti] != 0 {
				rp.ErrorCode = codes[ti]
				continue
			}
			if f, ok := failed[txn.TopicPartition{Topic: t.Topic, Partition: p.Partition}]; ok {
				rp.ErrorCode, rp.ErrorMessage = f.code, f.msg
				continue
			}
			c.startPartition(pc, rp, ti, i, t.Topic, p.Partition, p.Records)
		}
	}
	resp.Topics = topics
}

// finishProduce waits for the appends pc started to be durable and
// returns the response, nil for acks 0.
func (c *conn) finishProduce(pc *produceCall) *kmsg.ProduceResponse {
	for i := range pc.parts {
		pa := &pc.parts[i]
		rp := &pc.resp.Topics[pa.ti].Partitions[pa.pi]
		base, code, why := pa.a.Wait()
		if pa.done != nil {
			pa.done(code == result.OK)
		}
		rp.ErrorCode = code.Kafka()
		if code != result.OK {
			if why != "" {
				msg := why
				rp.ErrorMessage = &msg
			}
			continue
		}
		rp.BaseOffset = base
		if start, _, code := c.s.node.Offsets(pa.topic, pa.partition); code == result.OK {
			rp.LogStartOffset = start
		}
	}
	pc.parts = pc.parts[:0]
	if pc.req.Acks == 0 {
		return nil
	}
	return &pc.resp
}

// addImplicitly adds to their producer's transaction the partitions of
// the transactional batches of a Produce of version 12 (KIP-890 part 2),
// once per producer id and epoch (a client sends one), before any batch
// is appended: the coordinator's log names them when it returns (a write,
// or partitions kept from the last transaction), so a batch is never
// stored in a partition its transaction does not hold. It
// returns the partitions that could not be added, with the code and
// message to answer them with. The topics whose code is not 0 (not the
// client's to write, unknown) are skipped, and so are partitions that do
// not exist: their batches are refused anyway.
func (c *conn) addImplicitly(id string, topics []kmsg.ProduceRequestTopic, codes []int16) map[txn.TopicPartition]addFailure {
	type producer struct {
		pid   int64
		epoch int16
	}
	var adds map[producer][]txn.TopicPartition
	for i, t := range topics {
		count, code := c.s.node.PartitionCount(t.Topic)
		if codes[i] != 0 || code != result.OK {
			continue
		}
		for _, p := range t.Partitions {
			h, err := batch.ParseHeader(p.Records)
			if err != nil || h.Attributes&(batch.AttrTransactional|batch.AttrControl) != batch.AttrTransactional || p.Partition < 0 || int(p.Partition) >= count {
				continue
			}
			if adds == nil {
				adds = map[producer][]txn.TopicPartition{}
			}
			k := producer{h.ProducerID, h.ProducerEpoch}
			adds[k] = append(adds[k], txn.TopicPartition{Topic: t.Topic, Partition: p.Partition})
		}
	}
	if len(adds) == 0 {
		return nil
	}
	code := c.authorize(security.Write, security.TransactionalIDResource(id))
	remote := false
	if code == 0 {
		code = c.txnCoordinatorCode(id)
		// In a cluster the partitions' leader is often not the
		// coordinator: it adds them there (Cluster.AddPartitionsToTxn),
		// and BeginProduce waits until this node's replica of the
		// coordinator's log has the add.
		if code == kerr.NotCoordinator.Code && c.s.opts.Cluster != nil {
			code, remote = 0, true
		}
	}
	var failed map[txn.TopicPartition]addFailure
	for k, parts := range adds {
		f := addFailure{code: code}
		if code == 0 {
			var err error
			if remote {
				err = c.s.opts.Cluster.AddPartitionsToTxn(c.ctx, id, k.pid, k.epoch, parts)
			} else {
				err = c.s.txns.AddPartitions(c.ctx, c.txnSession, id, k.pid, k.epoch, parts)
			}
			if err != nil {
				msg := err.Error()
				f = addFailure{code: c.txnErrorCode(err, kerr.InvalidProducerEpoch.Code), msg: &msg}
			}
		}
		if f.code == 0 {
			continue
		}
		if failed == nil {
			failed = map[txn.TopicPartition]addFailure{}
		}
		for _, tp := range parts {
			failed[tp] = f
		}
	}
	return failed
}

// addFailure is how a partition whose implicit add failed is answered.
type addFailure struct {
	code int16
	msg  *string
}

// startPartition writes one partition's batch, its answer being rp, which
// becomes resp.Topics[ti].Partitions[pi] (finishProduce fills it; a
// refusal here fills it at once). A transactional batch counts as under
// way for its transaction until it is durable, so that EndTxn writes its
// markers after it; the coordinator learns whether it was appended.
func (c *conn) startPartition(pc *produceCall, rp *kmsg.ProduceResponseTopicPartition, ti, pi int, topic string, partition int32, records []byte) {
	var done func(bool)
	if h, err := batch.ParseHeader(records); err == nil && h.Attributes&(batch.AttrTransactional|batch.AttrControl) == batch.AttrTransactional {
		d, err := c.s.txns.BeginProduce(c.ctx, h.ProducerID, h.ProducerEpoch, txn.TopicPartition{Topic: topic, Partition: partition})
		if err != nil {
			rp.ErrorCode = c.txnErrorCode(err, kerr.InvalidProducerEpoch.Code)
			msg := err.Error()
			rp.ErrorMessage = &msg
			return
		}
		done = d
	}
	pc.parts = append(pc.parts, partAppend{ti: ti, pi: pi, topic: topic, partition: partition, done: done})
	c.s.node.StartAppendRawInto(c.ctx, topic, partition, records, &pc.parts[len(pc.parts)-1].a)
}

// produceLegacy answers a Produce of version 0 to 2 (legacy message sets)
// with UNSUPPORTED_FOR_MESSAGE_FORMAT for every partition, and logs it.
func (c *conn) produceLegacy(req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse) {
	c.log.Warn("Kafka Produce with a legacy message format refused: Sense stores record batches (message format v2, Produce v3 and later); upgrade the client or let it negotiate a newer version",
		"api_version", req.Version, "remote", c.nc.RemoteAddr().String())
	for _, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = kerr.UnsupportedForMessageFormat.Code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
}

// decodeProduce decodes a Produce body: versions 0 to 2 by kmsg (they are
// refused anyway), the others here. Versions 3 to 8: TransactionID (a
// nullable string), Acks int16, TimeoutMillis int32, Topics (an array:
// Topic, a string, then Partitions, an array of Partition int32 and
// Records, nullable bytes); bytes after the body are ignored, as kmsg
// ignores them. Versions 9 to 12, flexible: the same fields in their
// compact encodings, the arrays not nullable, with tags after each
// partition, each topic and the body; nothing may follow. The records
// alias the body, as kmsg's reader leaves them.
func decodeProduce(version int16, b []byte) (kmsg.Request, error) {
	var topic string
	return decodeProduceInto(version, b, kmsg.NewPtrProduceRequest(), &topic)
}

// decodeProduceInto is decodeProduce into req, whose slices it reuses
// (versions 3 and later); a topic named as *topic takes that string, and
// *topic is the last topic read.
func decodeProduceInto(version int16, b []byte, req *kmsg.ProduceRequest, topic *string) (kmsg.Request, error) {
	topics := req.Topics[:0]
	*req = kmsg.NewProduceRequest()
	if version < produceMin {
		return kmsgBody(req, version, b)
	}
	req.SetVersion(version)
	flexible := version >= 9
	r := &kreader{b: b}
	var n int
	if flexible {
		req.TransactionID = r.nullableString()
		req.Acks = r.int16()
		req.TimeoutMillis = r.int32()
		// A topic takes 3 bytes at least (name, partitions, tags), a
		// partition 6 (4, records, tags).
		n = r.requiredArray(3)
	} else {
		req.TransactionID = r.legacyNullableString()
		req.Acks = r.int16()
		req.TimeoutMillis = r.int32()
		n = r.legacyArray(6) // name 2, partitions 4
	}
	for ti := range n {
		if ti < cap(topics) {
			topics = topics[:ti+1]
		} else {
			topics = append(topics, kmsg.ProduceRequestTopic{})
		}
		t := &topics[ti]
		parts := t.Partitions[:0]
		*t = kmsg.NewProduceRequestTopic()
		var m int
		if flexible {
			t.Topic = r.stringAs(topic)
			m = r.requiredArray(6)
		} else {
			t.Topic = r.legacyStringAs(topic)
			m = r.legacyArray(8) // partition 4, records 4
		}
		for pi := range m {
			if pi < cap(parts) {
				parts = parts[:pi+1]
			} else {
				parts = append(parts, kmsg.ProduceRequestTopicPartition{})
			}
			p := &parts[pi]
			*p = kmsg.NewProduceRequestTopicPartition()
			p.Partition = r.int32()
			if flexible {
				p.Records = r.span()
				r.tags()
			} else {
				p.Records = r.legacySpan()
			}
		}
		t.Partitions = parts
		if flexible {
			r.tags()
		}
	}
	req.Topics = topics
	if !flexible {
		if r.err != nil {
			return nil, r.err
		}
		return req, nil
	}
	r.tags()
	if err := r.end(); err != nil {
		return nil, err
	}
	return req, nil
}

// appendProduceResponse appends a Produce answer, as appendResponse would,
// encoding the fields Sense sets itself: kmsg's encoder of the flexible
// versions allocates for every partition (it compares the CurrentLeader
// tag with reflect). An answer with what Sense never sets (record errors,
// a current leader, brokers, unknown tags) goes to kmsg.
func appendProduceResponse(dst []byte, h header, resp *kmsg.ProduceResponse) []byte {
	if !plainProduceResponse(resp) {
		return appendResponse(dst, h, resp)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.corr))
	v := resp.Version
	flexible := v >= 9
	if h.flexible {
		dst = append(dst, 0) // the response header's tags
	}
	arrayLen := func(dst []byte, n int) []byte {
		if flexible {
			return binary.AppendUvarint(dst, uint64(n)+1)
		}
		return binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	str := func(dst []byte, s string) []byte {
		if flexible {
			dst = binary.AppendUvarint(dst, uint64(len(s))+1)
		} else {
			dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
		}
		return append(dst, s...)
	}
	dst = arrayLen(dst, len(resp.Topics))
	for i := range resp.Topics {
		t := &resp.Topics[i]
		dst = str(dst, t.Topic)
		dst = arrayLen(dst, len(t.Partitions))
		for j := range t.Partitions {
			p := &t.Partitions[j]
			dst = binary.BigEndian.AppendUint32(dst, uint32(p.Partition))
			dst = binary.BigEndian.AppendUint16(dst, uint16(p.ErrorCode))
			dst = binary.BigEndian.AppendUint64(dst, uint64(p.BaseOffset))
			if v >= 2 {
				dst = binary.BigEndian.AppendUint64(dst, uint64(p.LogAppendTime))
			}
			if v >= 5 {
				dst = binary.BigEndian.AppendUint64(dst, uint64(p.LogStartOffset))
			}
			if v >= 8 {
				dst = arrayLen(dst, 0) // record errors
				switch {
				case p.ErrorMessage != nil:
					dst = str(dst, *p.ErrorMessage)
				case flexible:
					dst = append(dst, 0)
				default:
					dst = binary.BigEndian.AppendUint16(dst, 0xffff)
				}
			}
			if flexible {
				dst = append(dst, 0) // the partition's tags
			}
		}
		if flexible {
			dst = append(dst, 0) // the topic's tags
		}
	}
	if v >= 1 {
		dst = binary.BigEndian.AppendUint32(dst, uint32(resp.ThrottleMillis))
	}
	if flexible {
		dst = append(dst, 0) // the response's tags
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// plainProduceResponse reports whether resp holds only what
// appendProduceResponse encodes.
func plainProduceResponse(resp *kmsg.ProduceResponse) bool {
	if resp.Version < produceMin || resp.Version > produceMax || len(resp.Brokers) > 0 || resp.UnknownTags.Len() > 0 {
		return false
	}
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.UnknownTags.Len() > 0 {
			return false
		}
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if len(p.ErrorRecords) > 0 || p.UnknownTags.Len() > 0 || p.CurrentLeader.LeaderID != -1 || p.CurrentLeader.LeaderEpoch != -1 || p.CurrentLeader.UnknownTags.Len() > 0 {
				return false
			}
		}
	}
	return true
}
