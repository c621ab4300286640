package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/security"
)

// DeleteTopics (key 20), versions 0 to 3 (4+ are flexible, see header.go).
// Each topic's pipeline is deleted with its events (node.DeletePipeline)
// before the answer; a produce or fetch racing the deletion gets
// UNKNOWN_TOPIC_OR_PARTITION. An unknown topic is
// UNKNOWN_TOPIC_OR_PARTITION. A pipeline the config file declares is
// refused with POLICY_VIOLATION: the node's configuration, not a client,
// owns it (the next start would create it again). These versions carry no
// error message, so the reason is logged. A topic named twice is deleted
// once and answered once.
const (
	deleteTopicsMin = 0
	deleteTopicsMax = 3
)

func (c *conn) deleteTopics(req *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteTopicsResponse()
	resp.SetVersion(req.Version)
	seen := make(map[string]bool, len(req.TopicNames))
	for _, name := range req.TopicNames {
		if seen[name] {
			continue
		}
		seen[name] = true
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic = kmsg.StringPtr(name)
		rt.ErrorCode = c.deleteTopic(name)
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *conn) deleteTopic(name string) int16 {
	if code := c.authorize(security.Delete, security.PipelineResource(name)); code != 0 {
		return code
	}
	err := c.s.node.DeletePipeline(name)
	switch {
	case err == nil:
		c.log.Info("deleted pipeline for Kafka DeleteTopics", "pipeline", name)
		return 0
	case errors.Is(err, node.ErrUnknownPipeline):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, node.ErrPipelineDeclared):
		c.log.Warn("Kafka DeleteTopics refused", "topic", name, "reason", err)
		return kerr.PolicyViolation.Code
	}
	c.log.Error("Kafka DeleteTopics failed", "topic", name, "err", err)
	return kerr.KafkaStorageError.Code
}
