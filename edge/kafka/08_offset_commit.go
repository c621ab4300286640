package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// OffsetCommit (key 8), versions 0 to 7 (8+ are flexible, see header.go).
// A member commits with its member id and generation, checked by the
// group coordinator (group.Coordinator.CheckCommit); a consumer that
// assigns partitions itself commits with generation -1 and no member id,
// which is accepted while the group has no members. Each request's
// commits are stored durably (group.Store.Commit) before the answer, all
// of them or none. Version 0 commits are kept like later ones (in Kafka
// they went to ZooKeeper); the retention time of versions 2 to 4 is
// ignored: commits are kept until the group's offsets are deleted.
const (
	offsetCommitMin = 0
	offsetCommitMax = 7
)

func (c *conn) offsetCommit(req *kmsg.OffsetCommitRequest) kmsg.Response {
	resp := kmsg.NewPtrOffsetCommitResponse()
	resp.SetVersion(req.Version)
	ref := group.MemberRef{Group: req.Group, Generation: -1, InstanceID: req.InstanceID}
	if req.Version >= 1 {
		ref.Generation, ref.MemberID = req.Generation, req.MemberID
	}
	code := c.authorize(security.Read, security.GroupResource(req.Group))
	if code == 0 {
		code = c.coordinatorCode(req.Group)
	}
	if code == 0 {
		code = groupErrorCode(c.s.groups.CheckCommit(ref))
	}
	var commits []group.OffsetCommit
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		parts, pcode := c.s.node.Partitions(t.Topic)
		tcode := int16(0)
		if code == 0 {
			tcode = c.authorize(security.Read, security.PipelineResource(t.Topic))
		}
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			switch {
			case code != 0:
				rp.ErrorCode = code
			case tcode != 0:
				rp.ErrorCode = tcode
			case pcode != result.OK || p.Partition < 0 || int(p.Partition) >= len(parts):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case p.Metadata != nil && len(*p.Metadata) > 4096:
				rp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
			default:
				oc := group.OffsetCommit{TopicPartition: group.TopicPartition{Topic: t.Topic, Partition: p.Partition}}
				oc.Offset, oc.LeaderEpoch = p.Offset, -1
				if req.Version >= 6 {
					oc.LeaderEpoch = p.LeaderEpoch
				}
				if p.Metadata != nil {
					oc.Metadata = *p.Metadata
				}
				commits = append(commits, oc)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(commits) == 0 {
		return resp
	}
	if err := c.s.offsets.Commit(req.Group, commits); err != nil {
		fail := kerr.UnknownServerError.Code
		switch {
		case errors.Is(err, group.ErrOffsetMetadataTooLarge):
			fail = kerr.OffsetMetadataTooLarge.Code
		case errors.Is(err, group.ErrNotReady):
			// This node lost the lead of the committed offsets (a
			// cluster's failover): the client commits at the new
			// coordinator.
			fail = kerr.NotCoordinator.Code
			c.log.Warn("committed offsets not stored: this node no longer coordinates groups", "group", req.Group, "err", err)
		default:
			c.log.Error("storing committed offsets failed", "group", req.Group, "err", err)
		}
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if resp.Topics[i].Partitions[j].ErrorCode == 0 {
					resp.Topics[i].Partitions[j].ErrorCode = fail
				}
			}
		}
	}
	return resp
}
