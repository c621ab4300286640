package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// TxnOffsetCommit (key 28), versions 0 to 5 (3+ are flexible: their body
// is decoded by decodeTxnOffsetCommit, see ownDecoders in header.go): stores
// a group's offsets in the producer's ongoing transaction (the group added
// by AddOffsetsToTxn first, else INVALID_TXN_STATE), durably; they become
// the group's committed offsets in the same write that completes a commit,
// and are dropped by an abort. Versions 0 to 2 carry no member id or
// generation, so no membership is checked, as in Kafka. Version 3
// (KIP-447) carries the member id, generation and instance id of the
// consumer whose offsets they are, checked as Kafka checks them
// (group.Coordinator.CheckTxnCommit): FENCED_INSTANCE_ID,
// UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION; an empty member id and generation
// -1 skip the checks. Answering version 3 is what tells a client the
// broker implements KIP-447: franz-go's GroupTransactSession then no longer
// sleeps after each commit, and relies on OffsetFetch's RequireStable
// (09_offset_fetch.go). Version 4 is version 3 (it adds an error code
// Sense does not send); version 5 is KIP-890 part 2's, served where
// transaction version 2 is in effect: the group is added to the
// producer's transaction implicitly (beginning one if none is ongoing),
// in the same durable write as the offsets
// (txn.Coordinator.AddAndCommitOffsets), so no AddOffsetsToTxn comes
// first.
const (
	txnOffsetCommitMin    = 0
	txnOffsetCommitMax    = 5
	txnOffsetCommitMaxTV1 = 3
	// txnOffsetCommitImplicitAdd is the first version that adds the
	// group to the transaction.
	txnOffsetCommitImplicitAdd = 5
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
	if code == 0 && req.Version >= 3 {
		code = groupErrorCode(c.s.groups.CheckTxnCommit(group.MemberRef{Group: req.Group,
			MemberID: req.MemberID, Generation: req.Generation, InstanceID: req.InstanceID}))
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
		var err error
		if req.Version >= txnOffsetCommitImplicitAdd {
			err = c.s.txns.AddAndCommitOffsets(c.ctx, c.txnSession, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group, commits)
		} else {
			err = c.s.txns.CommitOffsets(c.ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group, commits)
		}
		code = c.txnErrorCode(err, fencedCode(req.Version))
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

// decodeTxnOffsetCommit decodes a TxnOffsetCommit body: versions 0 to 2
// by kmsg (not flexible), versions 3 to 5 (alike) here: TransactionalID, Group (compact
// strings), ProducerID int64, ProducerEpoch int16, Generation int32,
// MemberID (compact string), InstanceID (compact nullable string), Topics
// (a compact array, not nullable: Topic, a compact string, then
// Partitions, a compact array, not nullable, of Partition int32, Offset
// int64, LeaderEpoch int32, Metadata a compact nullable string, and tags;
// then tags), then tags.
func decodeTxnOffsetCommit(version int16, b []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	if version < 3 {
		return kmsgBody(req, version, b)
	}
	req.SetVersion(version)
	r := &kreader{b: b}
	req.TransactionalID = r.string()
	req.Group = r.string()
	req.ProducerID = r.int64()
	req.ProducerEpoch = r.int16()
	req.Generation = r.int32()
	req.MemberID = r.string()
	req.InstanceID = r.nullableString()
	// A topic takes 3 bytes at least (name, partitions, tags), a
	// partition 18 (4 + 8 + 4, metadata, tags).
	if n := r.requiredArray(3); n > 0 {
		req.Topics = make([]kmsg.TxnOffsetCommitRequestTopic, 0, n)
		for range n {
			t := kmsg.NewTxnOffsetCommitRequestTopic()
			t.Topic = r.string()
			if m := r.requiredArray(18); m > 0 {
				t.Partitions = make([]kmsg.TxnOffsetCommitRequestTopicPartition, 0, m)
				for range m {
					p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
					p.Partition = r.int32()
					p.Offset = r.int64()
					p.LeaderEpoch = r.int32()
					p.Metadata = r.nullableString()
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
