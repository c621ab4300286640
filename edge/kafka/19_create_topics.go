package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// CreateTopics (key 19), versions 0 to 4 (5+ are flexible, see header.go).
// A topic is a pipeline (node.CreatePipeline). NumPartitions may be any
// count from 1 to node.MaxPartitions: the partitions are all in the topic's
// default lane (sense.default.priority, low unless set), spread over the
// hubs in config order (partition i in hub i mod hubs; node.Spread); -1
// takes the node's default (router.default_partitions: one partition per
// hub and lane unless set). 0 or below -1 is INVALID_PARTITIONS. The node
// is the only replica: ReplicationFactor is 1
// or -1, else INVALID_REPLICATION_FACTOR; a replica assignment is
// INVALID_REQUEST. Configs: see topic_configs.go; an unknown or refused
// one is INVALID_CONFIG naming it. A name that differs from an existing
// topic's only in case is INVALID_TOPIC_EXCEPTION (the config file has the
// same rule). ValidateOnly checks everything and creates nothing. A topic
// named twice in one request is INVALID_REQUEST (answered once), as Kafka
// does. Errors carry a message from v1.
const (
	createTopicsMin = 0
	createTopicsMax = 4
)

func (c *conn) createTopics(req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := kmsg.NewPtrCreateTopicsResponse()
	resp.SetVersion(req.Version)
	eachTopicOnce(req.Topics, func(t *kmsg.CreateTopicsRequestTopic) string { return t.Topic },
		func(t *kmsg.CreateTopicsRequestTopic, dup string) {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic = t.Topic
			code, msg := kerr.InvalidRequest.Code, dup
			if dup == "" {
				code, msg = c.createTopic(t, req.ValidateOnly)
			}
			rt.ErrorCode = code
			if msg != "" {
				rt.ErrorMessage = &msg // sent from v1
			}
			resp.Topics = append(resp.Topics, rt)
		})
	return resp
}

// eachTopicOnce calls answer once for each topic name of a request, in
// request order. A name the request gives more than once is answered
// once, with dup saying so (Kafka answers INVALID_REQUEST); dup is empty
// otherwise.
func eachTopicOnce[T any](topics []T, name func(*T) string, answer func(t *T, dup string)) {
	count := make(map[string]int, len(topics))
	for i := range topics {
		count[name(&topics[i])]++
	}
	for i := range topics {
		t := &topics[i]
		n := count[name(t)]
		if n == 0 { // a repeat, already answered
			continue
		}
		count[name(t)] = 0
		dup := ""
		if n > 1 {
			dup = fmt.Sprintf("topic %q is named %d times in the request", name(t), n)
		}
		answer(t, dup)
	}
}

// createTopic creates one topic, or checks that it could be created. It
// returns a Kafka error code and a message for the client.
func (c *conn) createTopic(t *kmsg.CreateTopicsRequestTopic, validateOnly bool) (int16, string) {
	if err := event.ValidatePipelineName(t.Topic); err != nil {
		return kerr.InvalidTopicException.Code, err.Error()
	}
	if code := c.authorize(security.Create, security.PipelineResource(t.Topic)); code != 0 {
		return code, fmt.Sprintf("not authorized to create topic %q", t.Topic)
	}
	if _, code := c.s.node.Partitions(t.Topic); code != result.UnknownPipeline {
		return kerr.TopicAlreadyExists.Code, fmt.Sprintf("topic %q already exists", t.Topic)
	}
	if other, ok := c.s.node.PipelineEqualFold(t.Topic); ok {
		return kerr.InvalidTopicException.Code, fmt.Sprintf("topic %q differs from topic %q only in case: buffer directories are named after topics, and some file systems ignore case", t.Topic, other)
	}
	if len(t.ReplicaAssignment) > 0 {
		return kerr.InvalidRequest.Code, "Sense places partitions itself, over its hubs: send no replica assignment, and NumPartitions and ReplicationFactor instead"
	}
	if t.ReplicationFactor != -1 && t.ReplicationFactor != 1 {
		return kerr.InvalidReplicationFactor.Code, fmt.Sprintf("replication factor %d: this Sense node is the only replica of its topics; use 1 or -1", t.ReplicationFactor)
	}
	hubs := c.s.node.Hubs()
	if t.NumPartitions == 0 || t.NumPartitions < -1 || t.NumPartitions > node.MaxPartitions {
		return kerr.InvalidPartitions.Code, fmt.Sprintf("%d partitions: give 1 to %d, or -1 for the node's default", t.NumPartitions, node.MaxPartitions)
	}
	spec := node.PipelineSpec{Name: t.Topic}
	if err := applyTopicConfigs(c.configEnv(), &spec, t.Configs); err != nil {
		return kerr.InvalidConfig.Code, err.Error()
	}
	if t.NumPartitions > 0 {
		prio, _ := event.ParsePriority(orDefault(spec.DefaultPriority, defaultPriority))
		names := make([]string, len(hubs))
		for i, h := range hubs {
			names[i] = h.Name
		}
		spec.Slots = node.Spread(nil, names, []event.Priority{prio}, int(t.NumPartitions))
	}
	if validateOnly {
		return 0, ""
	}
	err := c.s.node.CreatePipeline(spec)
	switch {
	case errors.Is(err, node.ErrPipelineExists):
		return kerr.TopicAlreadyExists.Code, fmt.Sprintf("topic %q already exists", t.Topic)
	case err != nil:
		c.log.Error("Kafka CreateTopics failed", "topic", t.Topic, "err", err)
		return kerr.KafkaStorageError.Code, err.Error()
	}
	c.log.Info("created pipeline for Kafka CreateTopics", "pipeline", t.Topic, "partitions", t.NumPartitions)
	return 0, ""
}
