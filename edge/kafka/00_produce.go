package kafka

import (
	"github.com/sensehq/sense/batch"
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

// startProduce stores req's batches up to their writes and returns the
// function that waits for them to be durable and gives the response (nil
// for acks 0). The connection's next request is handled meanwhile (see
// handle): a Kafka producer's requests in flight join one fdatasync.
func (c *conn) startProduce(req *kmsg.ProduceRequest) func() kmsg.Response {
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(req.Version)
	if req.Version < produceMin {
		r := c.produceLegacy(req, resp)
		return func() kmsg.Response { return r }
	}
	// A topic's code: not the client's to write, or unknown (and not
	// created now).
	var small [8]int16
	codes := small[:0]
	if len(req.Topics) > len(small) {
		codes = make([]int16, 0, len(req.Topics))
	}
	codes = codes[:len(req.Topics)]
	for i, t := range req.Topics {
		if codes[i] = c.authorize(security.Write, security.PipelineResource(t.Topic)); codes[i] != 0 {
			continue
		}
		if _, code := c.s.node.PartitionCount(t.Topic); code == result.UnknownPipeline && c.create(t.Topic) != result.OK {
			codes[i] = kerr.UnknownTopicOrPartition.Code
		}
	}
	var failed map[txn.TopicPartition]addFailure
	if req.Version >= produceImplicitAdd && req.TransactionID != nil {
		failed = c.addImplicitly(*req.TransactionID, req.Topics, codes)
	}
	var finish []func()
	for ti, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		for i, p := range t.Partitions {
			rp := &rt.Partitions[i]
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
			finish = append(finish, c.startPartition(t.Topic, p.Partition, p.Records, rp))
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return func() kmsg.Response {
		for _, f := range finish {
			f()
		}
		if req.Acks == 0 {
			return nil
		}
		return resp
	}
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
	if code == 0 {
		code = c.txnCoordinatorCode(id)
	}
	var failed map[txn.TopicPartition]addFailure
	for k, parts := range adds {
		f := addFailure{code: code}
		if code == 0 {
			if err := c.s.txns.AddPartitions(c.ctx, c.txnSession, id, k.pid, k.epoch, parts); err != nil {
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

// startPartition writes one partition's batch and returns the function
// that waits for it and fills rp. A transactional batch counts as under
// way for its transaction until it is durable, so that EndTxn writes its
// markers after it; the coordinator learns whether it was appended.
func (c *conn) startPartition(topic string, partition int32, records []byte, rp *kmsg.ProduceResponseTopicPartition) func() {
	done := func(bool) {}
	if h, err := batch.ParseHeader(records); err == nil && h.Attributes&(batch.AttrTransactional|batch.AttrControl) == batch.AttrTransactional {
		d, err := c.s.txns.BeginProduce(c.ctx, h.ProducerID, h.ProducerEpoch, txn.TopicPartition{Topic: topic, Partition: partition})
		if err != nil {
			rp.ErrorCode = c.txnErrorCode(err, kerr.InvalidProducerEpoch.Code)
			msg := err.Error()
			rp.ErrorMessage = &msg
			return func() {}
		}
		done = d
	}
	a := c.s.node.StartAppendRaw(c.ctx, topic, partition, records)
	return func() {
		base, code, why := a.Wait()
		done(code == result.OK)
		rp.ErrorCode = code.Kafka()
		if code != result.OK {
			if why != "" {
				rp.ErrorMessage = &why
			}
			return
		}
		rp.BaseOffset = base
		if start, _, code := c.s.node.Offsets(topic, partition); code == result.OK {
			rp.LogStartOffset = start
		}
	}
}

// produceLegacy answers a Produce of version 0 to 2 (legacy message sets)
// with UNSUPPORTED_FOR_MESSAGE_FORMAT for every partition, and logs it.
func (c *conn) produceLegacy(req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse) kmsg.Response {
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
	if req.Acks == 0 {
		return nil
	}
	return resp
}

// decodeProduce decodes a Produce body: versions 0 to 8 by kmsg (not
// flexible), 9 to 12 here: TransactionID (a compact nullable string),
// Acks int16, TimeoutMillis int32, Topics (a compact array, not nullable:
// Topic, a compact string, then Partitions, a compact array, not
// nullable, of Partition int32 and Records, compact nullable bytes, and
// tags; then tags), then tags. The records alias the body, as kmsg's
// reader leaves them.
func decodeProduce(version int16, b []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrProduceRequest()
	if version < 9 {
		return kmsgBody(req, version, b)
	}
	req.SetVersion(version)
	r := &kreader{b: b}
	req.TransactionID = r.nullableString()
	req.Acks = r.int16()
	req.TimeoutMillis = r.int32()
	// A topic takes 3 bytes at least (name, partitions, tags), a
	// partition 6 (4, records, tags).
	if n := r.requiredArray(3); n > 0 {
		req.Topics = make([]kmsg.ProduceRequestTopic, 0, n)
		for range n {
			t := kmsg.NewProduceRequestTopic()
			t.Topic = r.string()
			if m := r.requiredArray(6); m > 0 {
				t.Partitions = make([]kmsg.ProduceRequestTopicPartition, 0, m)
				for range m {
					p := kmsg.NewProduceRequestTopicPartition()
					p.Partition = r.int32()
					p.Records = r.span()
					r.tags()
					t.Partitions = append(t.Partitions, p)
				}
			}
			r.tags()
			req.Topics = append(req.Topics, t)
		}
	}
	r.tags()
	if err := r.end(); err != nil {
		return nil, err
	}
	return req, nil
}
