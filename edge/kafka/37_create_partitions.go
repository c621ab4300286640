package kafka

import (
	"errors"
	"fmt"

	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/security"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreatePartitions (key 37), versions 0 and 1 (2+ are flexible, see
// header.go). A topic grows to Count partitions (node.AddPartitions): the
// new ones are appended, so existing partition numbers never change,
// spread over the hubs and the lanes the topic already has. As Kafka
// answers: an unknown topic is UNKNOWN_TOPIC_OR_PARTITION, a manual
// assignment INVALID_REQUEST (Sense places partitions), a count equal to
// or below the current one INVALID_PARTITIONS; a topic the config file
// declares cannot grow (INVALID_REQUEST naming the config). ValidateOnly
// checks and changes nothing. A topic named twice is INVALID_REQUEST,
// answered once.
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
				rt.ErrorCode, msg = c.createPartitionsTopic(t, req.ValidateOnly)
			} else {
				rt.ErrorCode = kerr.InvalidRequest.Code
			}
			rt.ErrorMessage = &msg
			resp.Topics = append(resp.Topics, rt)
		})
	return resp
}

func (c *conn) createPartitionsTopic(t *kmsg.CreatePartitionsRequestTopic, validateOnly bool) (int16, string) {
	if code := c.authorize(security.Alter, security.PipelineResource(t.Topic)); code != 0 {
		return code, "not authorized to alter the topic"
	}
	spec, ok := c.pipelineSpec(t.Topic)
	if !ok {
		return kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("unknown topic %q", t.Topic)
	}
	if len(t.Assignment) > 0 {
		return kerr.InvalidRequest.Code, "Sense places partitions itself, over its hubs: send no assignment"
	}
	current := int32(spec.NumPartitions())
	switch {
	case t.Count == current:
		return kerr.InvalidPartitions.Code, fmt.Sprintf("Topic already has %d partitions.", current)
	case t.Count < current:
		return kerr.InvalidPartitions.Code, fmt.Sprintf("Topic currently has %d partitions, %d would not be an increase.", current, t.Count)
	case t.Count > node.MaxPartitions:
		return kerr.InvalidPartitions.Code, fmt.Sprintf("%d partitions: a topic has at most %d", t.Count, node.MaxPartitions)
	case spec.Declared:
		return kerr.InvalidRequest.Code, fmt.Sprintf("topic %q is declared in the server's config file, which fixes its layout; create another topic with more partitions", t.Topic)
	}
	if validateOnly {
		return 0, ""
	}
	err := c.s.node.AddPartitions(t.Topic, int(t.Count))
	switch {
	case errors.Is(err, node.ErrUnknownPipeline):
		return kerr.UnknownTopicOrPartition.Code, err.Error()
	case errors.Is(err, node.ErrPipelineDeclared), errors.Is(err, node.ErrInvalidSpec):
		return kerr.InvalidRequest.Code, err.Error()
	case err != nil:
		c.log.Error("Kafka CreatePartitions failed", "topic", t.Topic, "err", err)
		return kerr.KafkaStorageError.Code, err.Error()
	}
	c.log.Info("added partitions for Kafka CreatePartitions", "pipeline", t.Topic, "from", current, "to", t.Count)
	return 0, ""
}
