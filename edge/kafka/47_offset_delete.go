package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// OffsetDelete (key 47), version 0 (KIP-496; `kafka-consumer-groups.sh
// --delete-offsets`, kadm's DeleteOffsets): forgets a group's committed
// offsets of some partitions, durably (group.Store.DeleteOffsets), as
// Kafka does:
//   - an unknown group (no members, no commits) gets GROUP_ID_NOT_FOUND;
//   - an empty group loses the offsets asked for;
//   - a consumer group with members keeps those of the topics its members
//     subscribe to (GROUP_SUBSCRIBED_TO_TOPIC for each such partition;
//     every topic counts as subscribed while a member's subscription is
//     not known, during a rebalance) and loses the others;
//   - a group with members of another protocol type gets NON_EMPTY_GROUP.
//
// DELETE on the group is required, READ on each topic
// (TOPIC_AUTHORIZATION_FAILED for its partitions otherwise); a partition
// that does not exist gets UNKNOWN_TOPIC_OR_PARTITION.
const (
	offsetDeleteMin = 0
	offsetDeleteMax = 0
)

func (c *conn) offsetDelete(req *kmsg.OffsetDeleteRequest) kmsg.Response {
	resp := kmsg.NewPtrOffsetDeleteResponse()
	resp.SetVersion(req.Version)
	resp.ErrorCode = c.offsetDeleteGroupCode(req.Group)
	var subscribed map[string]bool // nil: every topic
	if resp.ErrorCode == 0 {
		gi, ok := c.s.groups.Describe(req.Group)
		switch {
		case !ok && len(c.s.offsets.Committed(req.Group)) == 0:
			resp.ErrorCode = kerr.GroupIDNotFound.Code
		case !ok || gi.State == group.StateEmpty:
			subscribed = map[string]bool{}
		case gi.ProtocolType != "consumer":
			resp.ErrorCode = kerr.NonEmptyGroup.Code
		default:
			subscribed = subscriptions(gi.Members)
		}
	}
	if resp.ErrorCode != 0 {
		return resp // the group's error alone answers, as in Kafka
	}
	var gone []group.TopicPartition
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		parts, pcode := c.s.node.Partitions(t.Topic)
		tcode := c.authorize(security.Read, security.PipelineResource(t.Topic))
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			switch {
			case tcode != 0:
				rp.ErrorCode = tcode
			case pcode != result.OK || p.Partition < 0 || int(p.Partition) >= len(parts):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case subscribed == nil || subscribed[t.Topic]:
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			default:
				gone = append(gone, group.TopicPartition{Topic: t.Topic, Partition: p.Partition})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(gone) > 0 {
		if err := c.s.offsets.DeleteOffsets(req.Group, gone); errors.Is(err, group.ErrNotReady) {
			resp.ErrorCode, resp.Topics = kerr.NotCoordinator.Code, nil // the lead moved: the client asks the new coordinator
		} else if err != nil {
			c.log.Error("deleting a group's committed offsets failed", "group", req.Group, "err", err)
			resp.ErrorCode, resp.Topics = kerr.UnknownServerError.Code, nil
		}
	}
	return resp
}

// offsetDeleteGroupCode is the error of the request as a whole: the group
// id, the client's right to delete from it, and the coordinator.
func (c *conn) offsetDeleteGroupCode(name string) int16 {
	if name == "" {
		return kerr.InvalidGroupID.Code
	}
	if code := c.authorize(security.Delete, security.GroupResource(name)); code != 0 {
		return code
	}
	return c.coordinatorCode(name)
}

// subscriptions returns the topics the members of a consumer group
// subscribe to, from their protocol metadata (Kafka's consumer protocol),
// or nil (every topic) when a member's is not known or not readable.
func subscriptions(members []group.MemberInfo) map[string]bool {
	topics := map[string]bool{}
	for _, m := range members {
		var md kmsg.ConsumerMemberMetadata
		if len(m.Metadata) == 0 || md.ReadFrom(m.Metadata) != nil {
			return nil
		}
		for _, t := range md.Topics {
			topics[t] = true
		}
	}
	return topics
}
