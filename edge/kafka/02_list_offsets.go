package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// ListOffsets (key 2), versions 1 to 5 (6+ are flexible, see header.go): timestamp -2 is the
// log start offset, -1 the high watermark, or with isolation level
// read_committed (1, version 2+) the last stable offset, any other timestamp the first batch whose
// max timestamp is at or after it (seglog.OffsetForTime, batch
// granularity), or offset -1 when no batch is that recent. A topic the
// principal may not describe is TOPIC_AUTHORIZATION_FAILED.
const (
	listOffsetsMin = 1
	listOffsetsMax = 5
)

func (c *conn) listOffsets(req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := kmsg.NewPtrListOffsetsResponse()
	resp.SetVersion(req.Version)
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		denied := c.authorize(security.Describe, security.PipelineResource(t.Topic))
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			if denied != 0 {
				rp.Timestamp, rp.Offset, rp.ErrorCode = -1, -1, denied
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			rp.Timestamp, rp.Offset, rp.ErrorCode = c.offsetFor(t.Topic, p.Partition, p.Timestamp, req.IsolationLevel == 1)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *conn) offsetFor(topic string, partition int32, ts int64, committed bool) (int64, int64, int16) {
	code := c.leaderCode(topic, partition)
	var start, hw int64
	if code == result.OK {
		start, hw, code = c.s.node.Offsets(topic, partition)
	}
	if code == result.OK && committed {
		hw, code = c.s.node.StableOffset(topic, partition)
	}
	if code != result.OK {
		return -1, -1, code.Kafka()
	}
	switch {
	case ts == -2:
		return -1, start, 0
	case ts == -1:
		return -1, hw, 0
	case ts < 0:
		return -1, -1, kerr.UnsupportedVersion.Code // -3 (max timestamp) and beyond: v7+, not served
	}
	off, code := c.s.node.OffsetForTime(topic, partition, ts)
	if code != result.OK { // UNKNOWN_TOPIC_OR_PARTITION when the topic was deleted meanwhile
		return -1, -1, code.Kafka()
	}
	if off >= hw {
		return -1, -1, 0
	}
	return ts, off, 0
}
