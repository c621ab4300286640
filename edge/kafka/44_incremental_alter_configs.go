package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// IncrementalAlterConfigs (key 44), version 0 only (1+ is flexible, see
// header.go; clients negotiate down to 0). Each config of a topic is SET
// to a value or DELETEd, which returns it to its default; configs the
// request does not name stay as they are. The configs that change are a
// pipeline's run-time settings (topicConfigs whose alter is set):
// retention.ms, retention.bytes, sense.default.jurisdiction and
// sense.default.priority (node.AlterPipeline: at once on a node alone,
// through the cluster metadata to every node in a cluster). Everything
// else of topic_configs.go keeps its value: SET to the value it has (or
// cleanup.policy to delete) is accepted and changes nothing, any other
// value is INVALID_CONFIG with a message saying what to do instead
// (CreatePartitions for partitions). APPEND and SUBTRACT are INVALID_CONFIG
// (no config that changes is a list), an unknown op INVALID_REQUEST. The
// configs CreateTopics accepts without keeping (ignoredTopicConfigs) take
// the same values here and change nothing. An unknown config is
// INVALID_CONFIG naming the ones Sense alters; an unknown topic
// UNKNOWN_TOPIC_OR_PARTITION; a topic of the server's config file
// POLICY_VIOLATION (its configs are the file's, set at every start); a
// broker or any other resource type INVALID_REQUEST. A resource or a
// config named twice is INVALID_REQUEST. Each answer carries a message; a topic's
// changes stand together or not at all. ValidateOnly checks everything and
// changes nothing.
const (
	incrementalAlterConfigsMin = 0
	incrementalAlterConfigsMax = 0
)

func (c *conn) incrementalAlterConfigs(req *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
	resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
	resp.SetVersion(req.Version)
	c.alterResources(len(req.Resources),
		func(i int) (kmsg.ConfigResourceType, string) {
			return req.Resources[i].ResourceType, req.Resources[i].ResourceName
		},
		func(i int) []configOp {
			cfgs := req.Resources[i].Configs
			ops := make([]configOp, len(cfgs))
			for j, cfg := range cfgs {
				ops[j] = configOp{name: cfg.Name, op: cfg.Op, value: cfg.Value}
			}
			return ops
		},
		req.ValidateOnly,
		func(typ kmsg.ConfigResourceType, name string, code int16, msg string) {
			rr := kmsg.NewIncrementalAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode = typ, name, code
			if msg != "" {
				rr.ErrorMessage = &msg
			}
			resp.Resources = append(resp.Resources, rr)
		})
	return resp
}
