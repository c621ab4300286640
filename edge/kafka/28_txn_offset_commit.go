package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// TxnOffsetCommit (key 28), versions 0 to 2 (3+ are flexible, see
// header.go): stores a group's offsets in the producer's ongoing
// transaction (the group added by AddOffsetsToTxn first, else
// INVALID_TXN_STATE), durably; they become the group's committed offsets
// in the same write that completes a commit, and are dropped by an abort.
// Versions 0 to 2 carry no member id or generation, so no membership is
// checked, as in Kafka.
const (
	txnOffsetCommitMin = 0
	txnOffsetCommitMax = 2
)

func (c *conn) txnOffsetCommit(req *kmsg.TxnOffsetCommitRequest) kmsg.Response {
	resp := kmsg.NewPtrTxnOffsetCommitResponse()
	resp.SetVersion(req.Version)
	code := c.authorize(security.Write, security.TransactionalIDResource(req.TransactionalID))
	if code == 0 {
		code = c.authorize(security.Read, security.GroupResource(req.Group))
	}
	if code == 0 {
		code = c.txnCoordinatorCode(req.Group)
	}
	var commits []group.OffsetCommit
	bad := map[[2]any]int16{}
	for _, t := range req.Topics {
		all, pcode := c.s.node.Partitions(t.Topic)
		for _, p := range t.Partitions {
			switch {
			case pcode != result.OK || p.Partition < 0 || int(p.Partition) >= len(all):
				bad[[2]any{t.Topic, p.Partition}] = kerr.UnknownTopicOrPartition.Code
			case p.Metadata != nil && len(*p.Metadata) > 4096:
				bad[[2]any{t.Topic, p.Partition}] = kerr.OffsetMetadataTooLarge.Code
			default:
				oc := group.OffsetCommit{TopicPartition: group.TopicPartition{Topic: t.Topic, Partition: p.Partition}}
				oc.Offset, oc.LeaderEpoch = p.Offset, -1
				if req.Version >= 2 {
					oc.LeaderEpoch = p.LeaderEpoch
				}
				if p.Metadata != nil {
					oc.Metadata = *p.Metadata
				}
				commits = append(commits, oc)
			}
		}
	}
	if code == 0 && len(commits) > 0 {
		code = c.txnErrorCode(c.s.txns.CommitOffsets(c.ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group, commits), fencedCode(req.Version))
	}
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			if b, ok := bad[[2]any{t.Topic, p.Partition}]; ok {
				rp.ErrorCode = b
			} else {
				rp.ErrorCode = code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
