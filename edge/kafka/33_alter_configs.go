package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AlterConfigs (key 33), versions 0 and 1 (2+ are flexible, see
// header.go). The older, whole-set form of IncrementalAlterConfigs (see
// 44_incremental_alter_configs.go for what can change and every refusal):
// as in Kafka, a request gives a topic's configs as they must be after it,
// so each config it names is SET, and each config that can change and is
// not named (or is named with a null value) returns to its default.
// Configs that cannot change are left as they are when not named.
// ValidateOnly checks everything and changes nothing.
const (
	alterConfigsMin = 0
	alterConfigsMax = 1
)

func (c *conn) alterConfigs(req *kmsg.AlterConfigsRequest) kmsg.Response {
	resp := kmsg.NewPtrAlterConfigsResponse()
	resp.SetVersion(req.Version)
	c.alterResources(len(req.Resources),
		func(i int) (kmsg.ConfigResourceType, string) {
			return req.Resources[i].ResourceType, req.Resources[i].ResourceName
		},
		func(i int) []configOp { return wholeSet(req.Resources[i].Configs) },
		req.ValidateOnly,
		func(typ kmsg.ConfigResourceType, name string, code int16, msg string) {
			rr := kmsg.NewAlterConfigsResponseResource()
			rr.ResourceType, rr.ResourceName, rr.ErrorCode = typ, name, code
			if msg != "" {
				rr.ErrorMessage = &msg
			}
			resp.Resources = append(resp.Resources, rr)
		})
	return resp
}

// wholeSet turns the configs of an AlterConfigs resource into ops: SET for
// each one named with a value, DELETE for each one named with a null
// value and for each config that can change and is not named.
func wholeSet(cfgs []kmsg.AlterConfigsRequestResourceConfig) []configOp {
	ops := make([]configOp, 0, len(cfgs)+len(topicConfigs))
	named := make(map[string]bool, len(cfgs))
	for _, cfg := range cfgs {
		op := kmsg.IncrementalAlterConfigOpSet
		if cfg.Value == nil {
			op = kmsg.IncrementalAlterConfigOpDelete
		}
		ops = append(ops, configOp{name: cfg.Name, op: op, value: cfg.Value})
		named[cfg.Name] = true
	}
	for _, tc := range topicConfigs {
		if tc.alter != nil && !named[tc.name] {
			ops = append(ops, configOp{name: tc.name, op: kmsg.IncrementalAlterConfigOpDelete})
		}
	}
	return ops
}
