package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// DeleteRecords (key 21), versions 0 and 1 (2 is flexible, see header.go;
// `kafka-delete-records.sh`, kadm DeleteRecords, kafkajs
// deleteTopicRecords, librdkafka DeleteRecords): each partition's start
// moves up to the offset given (-1: its high watermark), durably, and the
// answer's low watermark is the new start (node.DeleteRecords). The start
// moves by whole batches, so an offset inside a batch moves it to the
// batch's first offset and the low watermark answered is that one (Kafka
// hides the batch's records below the offset; docs/kafka.md). An offset
// past the high watermark is OFFSET_OUT_OF_RANGE, a compacted topic
// POLICY_VIOLATION, a partition another node leads NOT_LEADER_OR_FOLLOWER.
// DELETE on the topic is required.
const (
	deleteRecordsMin = 0
	deleteRecordsMax = 1
)

func (c *conn) deleteRecords(req *kmsg.DeleteRecordsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteRecordsResponse()
	resp.SetVersion(req.Version)
	for _, t := range req.Topics {
		rt := kmsg.NewDeleteRecordsResponseTopic()
		rt.Topic = t.Topic
		denied := c.authorize(security.Delete, security.PipelineResource(t.Topic))
		for _, p := range t.Partitions {
			rp := kmsg.NewDeleteRecordsResponseTopicPartition()
			rp.Partition, rp.LowWatermark = p.Partition, -1
			if denied != 0 {
				rp.ErrorCode = denied
				rt.Partitions = append(rt.Partitions, rp)
				continue
			}
			start, err := c.s.node.DeleteRecords(t.Topic, p.Partition, p.Offset)
			switch code := result.CodeOf(err); {
			case err == nil:
				rp.LowWatermark = start
			case code != result.Unknown:
				rp.ErrorCode = code.Kafka()
			default:
				c.log.Error("delete records failed", "topic", t.Topic, "partition", p.Partition, "offset", p.Offset, "err", err)
				rp.ErrorCode = kerr.KafkaStorageError.Code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
