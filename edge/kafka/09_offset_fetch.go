package kafka

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/security"
)

// OffsetFetch (key 9), versions 0 to 5 (6+ are flexible, see header.go):
// the offsets a group committed, from the node's group.Store. A partition
// without a committed offset gets offset -1. From version 2 a
// null topic list asks for every partition the group committed.
const (
	offsetFetchMin = 0
	offsetFetchMax = 5
)

func (c *conn) offsetFetch(req *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := kmsg.NewPtrOffsetFetchResponse()
	resp.SetVersion(req.Version)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	code := c.authorize(security.Describe, security.GroupResource(req.Group))
	if code == 0 {
		code = c.coordinatorCode(req.Group)
	}
	if code != 0 {
		// Before v2 the code goes per partition only.
		resp.ErrorCode = code
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.ErrorCode = p, -1, -1, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	committed := c.s.offsets.Committed(req.Group)
	part := func(tp group.TopicPartition) kmsg.OffsetFetchResponseTopicPartition {
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition = tp.Partition
		rp.Offset, rp.LeaderEpoch = -1, -1
		if co, ok := committed[tp]; ok {
			rp.Offset, rp.LeaderEpoch = co.Offset, co.LeaderEpoch
			md := co.Metadata
			rp.Metadata = &md
		} else {
			empty := ""
			rp.Metadata = &empty
		}
		return rp
	}
	if req.Topics == nil && req.Version >= 2 {
		byTopic := map[string][]int32{}
		for tp := range committed {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
		}
		topics := make([]string, 0, len(byTopic))
		for t := range byTopic {
			topics = append(topics, t)
		}
		slices.Sort(topics)
		for _, t := range topics {
			if !c.may(security.Describe, security.PipelineResource(t)) {
				continue
			}
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t
			ps := byTopic[t]
			slices.Sort(ps)
			for _, p := range ps {
				rt.Partitions = append(rt.Partitions, part(group.TopicPartition{Topic: t, Partition: p}))
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		tcode := c.authorize(security.Describe, security.PipelineResource(t.Topic))
		for _, p := range t.Partitions {
			rp := part(group.TopicPartition{Topic: t.Topic, Partition: p})
			if tcode != 0 {
				rp.Offset, rp.Metadata, rp.ErrorCode = -1, nil, tcode
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
