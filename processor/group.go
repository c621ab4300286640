package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/group"
)

// Group is where a processor's consumer group lives: its membership and
// its committed offsets. LocalGroup is a coordinator and an offsets store
// in the same process; KafkaGroup asks a Sense's group coordinator over
// the Kafka protocol, so that processors of several processes share one
// group. Errors are group's sentinel errors (ErrRebalanceInProgress,
// ErrUnknownMemberID, ErrIllegalGeneration, ...), for errors.Is.
type Group interface {
	Join(ctx context.Context, req group.JoinRequest) (group.JoinResult, error)
	Sync(ctx context.Context, ref group.MemberRef, assignments []group.MemberAssignment) ([]byte, error)
	Heartbeat(ctx context.Context, ref group.MemberRef) error
	Leave(ctx context.Context, groupName, memberID string)
	// Commit stores offsets for ref's member, refused unless it is one of
	// the group's current generation. A zero ref (no member id, generation
	// -1) commits for an administrator, allowed while the group is empty.
	Commit(ctx context.Context, ref group.MemberRef, commits []group.OffsetCommit) error
	// Committed returns the group's offsets for topic, by partition.
	Committed(ctx context.Context, groupName, topic string) (map[int32]group.CommittedOffset, error)
	Close() error
}

// Offsets is the committed-offsets store of a LocalGroup: group.Store.
type Offsets interface {
	Committed(group string) map[group.TopicPartition]group.CommittedOffset
	Commit(group string, commits []group.OffsetCommit) error
}

// LocalGroup is a Group in this process.
type LocalGroup struct {
	Co    *group.Coordinator
	Store Offsets
}

func (l LocalGroup) Join(ctx context.Context, req group.JoinRequest) (group.JoinResult, error) {
	return l.Co.Join(ctx, req)
}

func (l LocalGroup) Sync(ctx context.Context, ref group.MemberRef, a []group.MemberAssignment) ([]byte, error) {
	return l.Co.Sync(ctx, ref, a)
}

func (l LocalGroup) Heartbeat(_ context.Context, ref group.MemberRef) error {
	return l.Co.Heartbeat(ref)
}

func (l LocalGroup) Leave(_ context.Context, g, id string) {
	l.Co.Leave(g, []group.LeavingMember{{MemberID: id}})
}

func (l LocalGroup) Commit(_ context.Context, ref group.MemberRef, commits []group.OffsetCommit) error {
	if err := l.Co.CheckCommit(ref); err != nil {
		return err
	}
	return l.Store.Commit(ref.Group, commits)
}

func (l LocalGroup) Committed(_ context.Context, g, topic string) (map[int32]group.CommittedOffset, error) {
	out := map[int32]group.CommittedOffset{}
	for tp, c := range l.Store.Committed(g) {
		if tp.Topic == topic {
			out[tp.Partition] = c
		}
	}
	return out, nil
}

func (l LocalGroup) Close() error { return nil }

// KafkaGroup is a Group run by the group coordinator of a Sense (or any
// Kafka-compatible broker) reached over the Kafka protocol: JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup, OffsetCommit and OffsetFetch, sent by
// franz-go to the group's coordinator.
type KafkaGroup struct {
	cl *kgo.Client
}

// NewKafkaGroup connects to the brokers at seeds.
func NewKafkaGroup(seeds []string, clientID string) (*KafkaGroup, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ClientID(clientID))
	if err != nil {
		return nil, err
	}
	return &KafkaGroup{cl: cl}, nil
}

// groupError maps a Kafka error code to group's sentinel errors.
func groupError(code int16) error {
	err := kerr.ErrorForCode(code)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.RebalanceInProgress):
		return group.ErrRebalanceInProgress
	case errors.Is(err, kerr.UnknownMemberID):
		return group.ErrUnknownMemberID
	case errors.Is(err, kerr.IllegalGeneration):
		return group.ErrIllegalGeneration
	case errors.Is(err, kerr.MemberIDRequired):
		return group.ErrMemberIDRequired
	case errors.Is(err, kerr.FencedInstanceID):
		return group.ErrFencedInstanceID
	}
	return err
}

func (k *KafkaGroup) Join(ctx context.Context, r group.JoinRequest) (group.JoinResult, error) {
	memberID := r.MemberID
	for range 2 { // a first join may be asked to come back with its member id
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = r.Group, memberID, r.ProtocolType
		req.SessionTimeoutMillis = int32(r.SessionTimeout / time.Millisecond)
		req.RebalanceTimeoutMillis = int32(max(r.RebalanceTimeout, r.SessionTimeout) / time.Millisecond)
		for _, p := range r.Protocols {
			jp := kmsg.NewJoinGroupRequestProtocol()
			jp.Name, jp.Metadata = p.Name, p.Metadata
			req.Protocols = append(req.Protocols, jp)
		}
		resp, err := req.RequestWith(ctx, k.cl)
		if err != nil {
			return group.JoinResult{Generation: -1}, err
		}
		if err := groupError(resp.ErrorCode); err != nil {
			if errors.Is(err, group.ErrMemberIDRequired) {
				memberID = resp.MemberID
				continue
			}
			return group.JoinResult{Generation: -1, MemberID: resp.MemberID}, err
		}
		out := group.JoinResult{Generation: resp.Generation, LeaderID: resp.LeaderID, MemberID: resp.MemberID}
		if resp.Protocol != nil {
			out.Protocol = *resp.Protocol
		}
		for _, m := range resp.Members {
			out.Members = append(out.Members, group.MemberMetadata{MemberID: m.MemberID, Metadata: m.ProtocolMetadata})
		}
		return out, nil
	}
	return group.JoinResult{Generation: -1}, fmt.Errorf("processor: the coordinator asked twice for a member id")
}

func (k *KafkaGroup) Sync(ctx context.Context, ref group.MemberRef, a []group.MemberAssignment) ([]byte, error) {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.Generation, req.MemberID = ref.Group, ref.Generation, ref.MemberID
	pt, pn := "sense-processor", "spread"
	req.ProtocolType, req.Protocol = &pt, &pn
	for _, x := range a {
		sa := kmsg.NewSyncGroupRequestGroupAssignment()
		sa.MemberID, sa.MemberAssignment = x.MemberID, x.Assignment
		req.GroupAssignment = append(req.GroupAssignment, sa)
	}
	resp, err := req.RequestWith(ctx, k.cl)
	if err != nil {
		return nil, err
	}
	return resp.MemberAssignment, groupError(resp.ErrorCode)
}

func (k *KafkaGroup) Heartbeat(ctx context.Context, ref group.MemberRef) error {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.Generation, req.MemberID = ref.Group, ref.Generation, ref.MemberID
	resp, err := req.RequestWith(ctx, k.cl)
	if err != nil {
		return err
	}
	return groupError(resp.ErrorCode)
}

func (k *KafkaGroup) Leave(ctx context.Context, g, id string) {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group, req.MemberID = g, id
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = id
	req.Members = append(req.Members, m)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req.RequestWith(ctx, k.cl)
}

func (k *KafkaGroup) Commit(ctx context.Context, ref group.MemberRef, commits []group.OffsetCommit) error {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation, req.MemberID = ref.Group, ref.Generation, ref.MemberID
	byTopic := map[string]int{}
	for _, c := range commits {
		i, ok := byTopic[c.Topic]
		if !ok {
			t := kmsg.NewOffsetCommitRequestTopic()
			t.Topic = c.Topic
			req.Topics = append(req.Topics, t)
			i = len(req.Topics) - 1
			byTopic[c.Topic] = i
		}
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		md := c.Metadata
		p.Partition, p.Offset, p.Metadata, p.LeaderEpoch = c.Partition, c.Offset, &md, -1
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
	}
	resp, err := req.RequestWith(ctx, k.cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := groupError(p.ErrorCode); err != nil {
				return fmt.Errorf("commit %s partition %d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}

func (k *KafkaGroup) Committed(ctx context.Context, g, topic string) (map[int32]group.CommittedOffset, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = g
	// A null topic list (v2+) asks for every committed offset of the
	// group; those of other topics are left out below.
	req.Topics = nil
	resp, err := req.RequestWith(ctx, k.cl)
	if err != nil {
		return nil, err
	}
	if err := groupError(resp.ErrorCode); err != nil {
		return nil, err
	}
	out := map[int32]group.CommittedOffset{}
	for _, rt := range resp.Topics {
		if rt.Topic != topic {
			continue
		}
		for _, p := range rt.Partitions {
			if err := groupError(p.ErrorCode); err != nil {
				return nil, err
			}
			if p.Offset < 0 {
				continue
			}
			c := group.CommittedOffset{Offset: p.Offset, LeaderEpoch: p.LeaderEpoch}
			if p.Metadata != nil {
				c.Metadata = *p.Metadata
			}
			out[p.Partition] = c
		}
	}
	return out, nil
}

func (k *KafkaGroup) Close() error {
	k.cl.Close()
	return nil
}

// Delete forgets a group and its committed offsets at its coordinator
// (DeleteGroups), once it has no members: while some remain (processors of
// other nodes that have not stopped yet, or a crashed one whose session has
// not expired) it asks again every 200ms until ctx ends. A group the
// coordinator does not know is already gone.
func (k *KafkaGroup) Delete(ctx context.Context, groupName string) error {
	for {
		req := kmsg.NewPtrDeleteGroupsRequest()
		req.Groups = []string{groupName}
		resp, err := req.RequestWith(ctx, k.cl)
		code := int16(0)
		if err == nil {
			for _, g := range resp.Groups {
				if g.Group == groupName {
					code = g.ErrorCode
				}
			}
			err = kerr.ErrorForCode(code)
		}
		switch {
		case err == nil, errors.Is(err, kerr.GroupIDNotFound):
			return nil
		case errors.Is(err, kerr.NonEmptyGroup), kerr.IsRetriable(err):
		default:
			return fmt.Errorf("delete the group %s: %w", groupName, err)
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return fmt.Errorf("delete the group %s: %w (last answer: %v)", groupName, ctx.Err(), err)
		}
	}
}
