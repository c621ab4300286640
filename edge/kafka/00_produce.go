package kafka

import (
	"sync"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
	"github.com/sensehq/sense/txn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Produce (key 0), versions 3 to 8 (RecordBatch v2 only; see flexible in
// header.go for why not 9+). Versions 0 to 2 are advertised too, and
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
const (
	produceAdvertisedMin = 0
	produceMin           = 3
	produceMax           = 8
)

func (c *conn) produce(req *kmsg.ProduceRequest) kmsg.Response {
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(req.Version)
	if req.Version < produceMin {
		return c.produceLegacy(req, resp)
	}
	var wg sync.WaitGroup
	for _, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		if code := c.authorize(security.Write, security.PipelineResource(t.Topic)); code != 0 {
			for i, p := range t.Partitions {
				rt.Partitions[i] = kmsg.NewProduceResponseTopicPartition()
				rt.Partitions[i].Partition, rt.Partitions[i].ErrorCode = p.Partition, code
			}
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		known := true
		if _, code := c.s.node.Partitions(t.Topic); code == result.UnknownPipeline {
			known = c.create(t.Topic) == result.OK
		}
		for i, p := range t.Partitions {
			rp := &rt.Partitions[i]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			if !known {
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			wg.Go(func() { c.appendPartition(t.Topic, p.Partition, p.Records, rp) })
		}
		resp.Topics = append(resp.Topics, rt)
	}
	wg.Wait()
	if req.Acks == 0 {
		return nil
	}
	return resp
}

func (c *conn) appendPartition(topic string, partition int32, records []byte, rp *kmsg.ProduceResponseTopicPartition) {
	if h, err := batch.ParseHeader(records); err == nil && h.Attributes&(batch.AttrTransactional|batch.AttrControl) == batch.AttrTransactional {
		done, err := c.s.txns.BeginProduce(c.ctx, h.ProducerID, h.ProducerEpoch, txn.TopicPartition{Topic: topic, Partition: partition})
		if err != nil {
			rp.ErrorCode = c.txnErrorCode(err, kerr.InvalidProducerEpoch.Code)
			msg := err.Error()
			rp.ErrorMessage = &msg
			return
		}
		defer done()
	}
	base, code, why := c.s.node.AppendRaw(c.ctx, topic, partition, records)
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
