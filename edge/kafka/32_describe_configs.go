package kafka

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sensehq/sense/security"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeConfigs (key 32), versions 0 to 3 (4+ are flexible, see
// header.go). A topic (resource type 2) reports the configs of
// topic_configs.go: those its spec sets have source DYNAMIC_TOPIC_CONFIG
// (STATIC_BROKER_CONFIG for a pipeline of the config file), the others
// DEFAULT_CONFIG. The broker (type 4, name "0" or "", both answered alike)
// reports a few node settings. A topic's run-time settings (retention.ms,
// retention.bytes, sense.default.jurisdiction, sense.default.priority) are
// not read-only, unless the topic is the config file's: AlterConfigs and
// IncrementalAlterConfigs change them, and a changed value has source
// DYNAMIC_TOPIC_CONFIG. Every other entry, and every broker entry, is
// read-only. ConfigNames
// filters (unknown names are left out, as Kafka does); synonyms, when
// asked for, are the entry itself then its default; documentation is sent
// when asked for. An unknown topic is UNKNOWN_TOPIC_OR_PARTITION, another
// broker id or resource type INVALID_REQUEST, each with a message.
const (
	describeConfigsMin = 0
	describeConfigsMax = 3
)

// configEntry is one config value of a resource.
type configEntry struct {
	name, value, def, doc string
	typ                   kmsg.ConfigType
	source                kmsg.ConfigSource
	alterable             bool // AlterConfigs may change it
}

func (c *conn) describeConfigs(req *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeConfigsResponse()
	resp.SetVersion(req.Version)
	for _, r := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		if code := c.authorize(security.DescribeConfigs, configResource(r.ResourceType, r.ResourceName)); code != 0 {
			msg := "not authorized to describe its configs"
			rr.ErrorCode, rr.ErrorMessage = code, &msg
			resp.Resources = append(resp.Resources, rr)
			continue
		}
		entries, code, msg := c.configEntries(r.ResourceType, r.ResourceName)
		if code != 0 {
			rr.ErrorCode, rr.ErrorMessage = code, &msg
		}
		for _, e := range entries {
			if r.ConfigNames != nil && !slices.Contains(r.ConfigNames, e.name) {
				continue
			}
			rr.Configs = append(rr.Configs, e.kafka(req))
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}

// configResource is the resource of a config resource for the
// authorizer: a topic's pipeline, or (a broker) the cluster.
func configResource(typ kmsg.ConfigResourceType, name string) security.Resource {
	if typ == kmsg.ConfigResourceTypeTopic {
		return security.PipelineResource(name)
	}
	return security.ClusterResource
}

func (c *conn) configEntries(typ kmsg.ConfigResourceType, name string) ([]configEntry, int16, string) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		spec, ok := c.pipelineSpec(name)
		if !ok {
			return nil, kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("unknown topic %q", name)
		}
		set := kmsg.ConfigSourceDynamicTopicConfig
		if spec.Declared {
			set = kmsg.ConfigSourceStaticBrokerConfig
		}
		entries := make([]configEntry, 0, len(topicConfigs))
		env := c.configEnv()
		for _, tc := range topicConfigs {
			v, isSet := tc.get(env, &spec)
			e := configEntry{name: tc.name, value: v, def: tc.defaultValue(env), doc: tc.doc, typ: tc.typ, source: kmsg.ConfigSourceDefaultConfig,
				alterable: tc.alter != nil && !spec.Declared}
			if isSet {
				e.source = set
			}
			entries = append(entries, e)
		}
		return entries, 0, ""
	case kmsg.ConfigResourceTypeBroker:
		if name != "" && name != "0" {
			return nil, kerr.InvalidRequest.Code, fmt.Sprintf("broker %q: this Sense node is the only broker, id 0", name)
		}
		return c.brokerEntries(), 0, ""
	}
	return nil, kerr.InvalidRequest.Code, fmt.Sprintf("config resource type %d (%v): Sense describes topics (2) and its broker (4)", typ, typ)
}

// brokerEntries are the node settings DescribeConfigs reports for broker 0.
// The static ones come from the node's configuration.
func (c *conn) brokerEntries() []configEntry {
	hubs := c.s.node.Hubs()
	names := make([]string, len(hubs))
	for i, h := range hubs {
		names[i] = h.Name
	}
	static := kmsg.ConfigSourceStaticBrokerConfig
	return []configEntry{
		{name: "auto.create.topics.enable", value: strconv.FormatBool(c.s.opts.AutoCreateTopics), typ: kmsg.ConfigTypeBoolean, source: static,
			doc: "Whether Metadata (when the client allows it) and Produce create an unknown topic (kafka.auto_create_topics)."},
		{name: "num.partitions", value: strconv.Itoa(len(hubs) * lanes), typ: kmsg.ConfigTypeInt, source: static,
			doc: "Partitions of a topic created with the default count: one per hub and lane."},
		{name: "default.replication.factor", value: "1", def: "1", typ: kmsg.ConfigTypeShort, source: kmsg.ConfigSourceDefaultConfig,
			doc: "The node is the only replica of its topics."},
		{name: "socket.request.max.bytes", value: strconv.Itoa(int(c.s.opts.MaxRequestBytes)), typ: kmsg.ConfigTypeInt, source: static,
			doc: "The largest request accepted (kafka.max_request_bytes)."},
		{name: "sense.durability.fsync", value: c.s.node.Durability().String(), typ: kmsg.ConfigTypeString, source: static,
			doc: "When appended events are fsynced before they are acknowledged: always, interval:<duration> or never (durability.fsync)."},
		{name: "sense.hubs", value: strings.Join(names, ","), typ: kmsg.ConfigTypeList, source: static,
			doc: "The node's hubs, in the order partition numbers follow."},
	}
}

// kafka returns the entry as a DescribeConfigs response config.
func (e *configEntry) kafka(req *kmsg.DescribeConfigsRequest) kmsg.DescribeConfigsResponseResourceConfig {
	rc := kmsg.NewDescribeConfigsResponseResourceConfig()
	rc.Name = e.name
	rc.Value = kmsg.StringPtr(e.value)
	rc.ReadOnly = !e.alterable
	rc.IsDefault = e.source == kmsg.ConfigSourceDefaultConfig // v0
	rc.Source = e.source                                      // v1+
	rc.ConfigType = e.typ                                     // v3+
	if req.IncludeSynonyms {
		self := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		self.Name, self.Value, self.Source = e.name, rc.Value, e.source
		rc.ConfigSynonyms = append(rc.ConfigSynonyms, self)
		if e.source != kmsg.ConfigSourceDefaultConfig && e.def != "" {
			def := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
			def.Name, def.Value, def.Source = e.name, kmsg.StringPtr(e.def), kmsg.ConfigSourceDefaultConfig
			rc.ConfigSynonyms = append(rc.ConfigSynonyms, def)
		}
	}
	if req.IncludeDocumentation && e.doc != "" {
		rc.Documentation = kmsg.StringPtr(e.doc)
	}
	return rc
}
