package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
	"github.com/sensehq/sense/txn"
)

// AddPartitionsToTxn (key 24), versions 0 to 3 (3 is flexible, decoded by
// decodeAddPartitionsToTxn; 4+ are KIP-890's broker-to-broker
// verification, not served): adds
// partitions to the producer's transaction, beginning one, durably before
// the answer. A partition that does not exist is UNKNOWN_TOPIC_OR_PARTITION
// and the others OPERATION_NOT_ATTEMPTED, as Kafka answers; an error of the
// coordinator applies to every partition.
const (
	addPartitionsToTxnMin = 0
	addPartitionsToTxnMax = 3
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

// decodeAddPartitionsToTxn decodes an AddPartitionsToTxn body: versions 0
// to 2 by kmsg (not flexible), 3 here: TransactionalID (a compact string),
// ProducerID int64, ProducerEpoch int16, Topics (a compact array of a
// compact string and a compact array of int32 partitions, each with tags),
// then tags.
func decodeAddPartitionsToTxn(version int16, b []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	if version < 3 {
		return kmsgBody(req, version, b)
	}
	req.SetVersion(version)
	r := &kreader{b: b}
	req.TransactionalID = r.string()
	req.ProducerID = r.int64()
	req.ProducerEpoch = r.int16()
	// A topic takes 3 bytes at least (name, partitions, tags).
	if n := r.requiredArray(3); n > 0 {
		req.Topics = make([]kmsg.AddPartitionsToTxnRequestTopic, 0, n)
		for range n {
			t := kmsg.NewAddPartitionsToTxnRequestTopic()
			t.Topic = r.string()
			if m := r.requiredArray(4); m > 0 {
				t.Partitions = make([]int32, 0, m)
				for range m {
					t.Partitions = append(t.Partitions, r.int32())
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
