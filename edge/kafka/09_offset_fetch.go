package kafka

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/security"
)

// OffsetFetch (key 9), versions 0 to 7 (6 and 7 are flexible: their
// bodies are decoded by decodeOffsetFetch, see ownDecoders in header.go;
// 8+ ask for several groups at once and are not served): the offsets a
// group committed, from the node's group.Store. A partition without a
// committed offset gets offset -1. From version 2 a null topic list asks
// for every partition the group committed. Version 7 adds RequireStable
// (KIP-447): a partition for which an ongoing transaction holds offsets of
// the group (TxnOffsetCommit, not yet ended: txn.Coordinator.PendingOffsets)
// is answered UNSTABLE_OFFSET_COMMIT, with offset -1, instead of the
// offset committed before, so a member that takes a partition over from a
// transactional one retries until the transaction ends rather than start
// from a stale offset. Without RequireStable, the committed offset, as
// before.
const (
	offsetFetchMin = 0
	offsetFetchMax = 7
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
	var pending map[group.TopicPartition]bool
	if req.RequireStable {
		pending = c.s.txns.PendingOffsets(req.Group)
	}
	part := func(tp group.TopicPartition) kmsg.OffsetFetchResponseTopicPartition {
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition = tp.Partition
		rp.Offset, rp.LeaderEpoch = -1, -1
		if pending[tp] {
			rp.ErrorCode = kerr.UnstableOffsetCommit.Code
			empty := ""
			rp.Metadata = &empty
			return rp
		}
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

// decodeOffsetFetch decodes an OffsetFetch body: versions 0 to 5 by kmsg
// (not flexible), 6 and 7 here: Group (compact string), Topics (a compact
// nullable array: Topic, a compact string, Partitions, a compact array of
// int32, not nullable, tags), from version 7 RequireStable (bool), then
// tags.
func decodeOffsetFetch(version int16, b []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	if version < 6 {
		return kmsgBody(req, version, b)
	}
	req.SetVersion(version)
	r := &kreader{b: b}
	req.Group = r.string()
	// A topic takes 3 bytes at least (name, partitions, tags).
	if n := r.array(3); n >= 0 {
		req.Topics = make([]kmsg.OffsetFetchRequestTopic, 0, n)
		for range n {
			t := kmsg.NewOffsetFetchRequestTopic()
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
	if version >= 7 {
		req.RequireStable = r.bool()
	}
	r.tags()
	if err := r.end(); err != nil {
		return nil, err
	}
	return req, nil
}
