package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
	"github.com/sensehq/sense/txn"
)

// AddPartitionsToTxn (key 24), versions 0 to 2 (3+ are flexible, see
// header.go; 4+ are KIP-890's broker-to-broker verification): adds
// partitions to the producer's transaction, beginning one, durably before
// the answer. A partition that does not exist is UNKNOWN_TOPIC_OR_PARTITION
// and the others OPERATION_NOT_ATTEMPTED, as Kafka answers; an error of the
// coordinator applies to every partition.
const (
	addPartitionsToTxnMin = 0
	addPartitionsToTxnMax = 2
)

func (c *conn) addPartitionsToTxn(req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	resp := kmsg.NewPtrAddPartitionsToTxnResponse()
	resp.SetVersion(req.Version)
	code := c.authorize(security.Write, security.TransactionalIDResource(req.TransactionalID))
	if code == 0 {
		code = c.txnCoordinatorCode(req.TransactionalID)
	}
	var parts []txn.TopicPartition
	unknown := false
	for _, t := range req.Topics {
		if code == 0 {
			code = c.authorize(security.Write, security.PipelineResource(t.Topic))
		}
		all, pcode := c.s.node.Partitions(t.Topic)
		for _, p := range t.Partitions {
			if pcode != result.OK || p < 0 || int(p) >= len(all) {
				unknown = true
				continue
			}
			parts = append(parts, txn.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	if code == 0 && !unknown {
		code = c.txnErrorCode(c.s.txns.AddPartitions(c.ctx, c.txnSession, req.TransactionalID, req.ProducerID, req.ProducerEpoch, parts), fencedCode(req.Version))
	}
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		all, pcode := c.s.node.Partitions(t.Topic)
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition = p
			switch {
			case code != 0:
				rp.ErrorCode = code
			case pcode != result.OK || p < 0 || int(p) >= len(all):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case unknown:
				rp.ErrorCode = kerr.OperationNotAttempted.Code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
