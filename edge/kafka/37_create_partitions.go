package kafka

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreatePartitions (key 37), versions 0 and 1 (2+ are flexible, see
// header.go). A Sense topic cannot grow: partition numbers encode hub,
// lane and index ((hub*3 + lane)*partitions per lane + index, and each
// buffer's directory is named by its number), so more partitions per lane
// would renumber the partitions after the first. Every request is
// therefore refused, with Kafka's answers where Kafka has one: an unknown
// topic is UNKNOWN_TOPIC_OR_PARTITION, a manual assignment INVALID_REQUEST,
// and a count equal to, below or above the current one INVALID_PARTITIONS,
// the last with a message saying to create a new topic with more
// partitions per lane. ValidateOnly gets the same answers. A topic named
// twice is INVALID_REQUEST, answered once.
const (
	createPartitionsMin = 0
	createPartitionsMax = 1
)

func (c *conn) createPartitions(req *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := kmsg.NewPtrCreatePartitionsResponse()
	resp.SetVersion(req.Version)
	eachTopicOnce(req.Topics, func(t *kmsg.CreatePartitionsRequestTopic) string { return t.Topic },
		func(t *kmsg.CreatePartitionsRequestTopic, dup string) {
			rt := kmsg.NewCreatePartitionsResponseTopic()
			rt.Topic = t.Topic
			msg := dup
			if dup == "" {
				rt.ErrorCode, msg = c.createPartitionsTopic(t)
			} else {
				rt.ErrorCode = kerr.InvalidRequest.Code
			}
			rt.ErrorMessage = &msg
			resp.Topics = append(resp.Topics, rt)
		})
	return resp
}

func (c *conn) createPartitionsTopic(t *kmsg.CreatePartitionsRequestTopic) (int16, string) {
	spec, ok := c.pipelineSpec(t.Topic)
	if !ok {
		return kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("unknown topic %q", t.Topic)
	}
	if len(t.Assignment) > 0 {
		return kerr.InvalidRequest.Code, "Sense places partitions itself (partition numbers encode hub and lane): send no assignment"
	}
	hubs := len(spec.Hubs)
	current := int32(hubs * lanes * spec.Partitions)
	switch {
	case t.Count == current:
		return kerr.InvalidPartitions.Code, fmt.Sprintf("Topic already has %d partitions.", current)
	case t.Count < current:
		return kerr.InvalidPartitions.Code, fmt.Sprintf("Topic currently has %d partitions, %d would not be an increase.", current, t.Count)
	}
	return kerr.InvalidPartitions.Code, fmt.Sprintf("topic %q has %d partitions (%s), fixed at creation: partition numbers encode hub, lane and index, so adding partitions would renumber them. Create a new topic with more partitions per lane (NumPartitions a multiple of %d, such as %d) and move producers and consumers to it",
		t.Topic, current, layout(hubs, spec.Partitions), hubs*lanes, int(current)+hubs*lanes)
}
