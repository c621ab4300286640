package kafka

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/node"
)

// Topic configs: the Kafka names under which CreateTopics sets a pipeline's
// spec and DescribeConfigs reports it (docs/kafka.md, "Admin APIs").

// lanes is the number of priority lanes of a hub: every hub holds
// PipelineSpec.Partitions buffers per lane.
const lanes = 3

// Defaults of the spec fields topic configs map to (node.CreatePipeline
// fills them).
const (
	defaultJurisdiction = "*"
	defaultPriority     = "low"
)

// topicConfig is one topic config Sense keeps in the pipeline spec.
type topicConfig struct {
	name string
	typ  kmsg.ConfigType
	def  string // the value when the spec leaves it unset
	doc  string
	// set applies a CreateTopics value to spec; nil: it cannot be set by
	// a config (the error names what to do instead).
	set func(n *node.Node, spec *node.PipelineSpec, v string) error
	// get returns the spec's value, and whether it was set (differs from
	// def).
	get func(spec *node.PipelineSpec) (string, bool)
}

var topicConfigs = []topicConfig{
	{
		name: "retention.ms", typ: kmsg.ConfigTypeLong, def: "-1",
		doc: "Sealed segments whose newest event is older than this many milliseconds are deleted; -1 keeps events forever.",
		set: func(_ *node.Node, spec *node.PipelineSpec, v string) error {
			ms, err := limitValue(v)
			if err != nil {
				return err
			}
			// A value past what a time.Duration holds (292 years) is
			// forever, as -1.
			if ms > 0 && ms <= math.MaxInt64/int64(time.Millisecond) {
				spec.Retention = time.Duration(ms) * time.Millisecond
			}
			return nil
		},
		get: func(spec *node.PipelineSpec) (string, bool) {
			if spec.Retention <= 0 {
				return "-1", false
			}
			return strconv.FormatInt(spec.Retention.Milliseconds(), 10), true
		},
	},
	{
		name: "retention.bytes", typ: kmsg.ConfigTypeLong, def: "-1",
		doc: "The oldest sealed segments of a partition are deleted while it holds more than this many bytes; -1 is no limit.",
		set: func(_ *node.Node, spec *node.PipelineSpec, v string) error {
			b, err := limitValue(v)
			if err == nil && b > 0 {
				spec.RetentionBytes = b
			}
			return err
		},
		get: func(spec *node.PipelineSpec) (string, bool) {
			if spec.RetentionBytes <= 0 {
				return "-1", false
			}
			return strconv.FormatInt(spec.RetentionBytes, 10), true
		},
	},
	{
		name: "cleanup.policy", typ: kmsg.ConfigTypeList, def: "delete",
		doc: "Sense deletes old segments (retention.ms, retention.bytes); it does not compact.",
		set: func(_ *node.Node, _ *node.PipelineSpec, v string) error {
			if v != "delete" {
				return fmt.Errorf("cleanup.policy %q: Sense does not compact logs; only delete is supported", v)
			}
			return nil
		},
		get: func(*node.PipelineSpec) (string, bool) { return "delete", false },
	},
	{
		name: "sense.default.jurisdiction", typ: kmsg.ConfigTypeString, def: defaultJurisdiction,
		doc: "Where a record without a sense.jurisdiction header may rest: jurisdiction codes or groups, e.g. MA,SN, or * for anywhere.",
		set: func(n *node.Node, spec *node.PipelineSpec, v string) error {
			if _, err := n.Registry().Parse(v); err != nil {
				return fmt.Errorf("sense.default.jurisdiction %q: %v", v, err)
			}
			spec.DefaultJurisdiction = v
			return nil
		},
		get: func(spec *node.PipelineSpec) (string, bool) {
			v := orDefault(spec.DefaultJurisdiction, defaultJurisdiction)
			return v, v != defaultJurisdiction
		},
	},
	{
		name: "sense.default.priority", typ: kmsg.ConfigTypeString, def: defaultPriority,
		doc: "The priority (low, medium, critical) Sense's own edges give an event without one; Kafka records take their partition's lane.",
		set: func(_ *node.Node, spec *node.PipelineSpec, v string) error {
			if _, err := event.ParsePriority(v); err != nil {
				return fmt.Errorf("sense.default.priority %q: %v", v, err)
			}
			spec.DefaultPriority = v
			return nil
		},
		get: func(spec *node.PipelineSpec) (string, bool) {
			v := orDefault(spec.DefaultPriority, defaultPriority)
			return v, v != defaultPriority
		},
	},
	{
		name: "sense.partitions.per.lane", typ: kmsg.ConfigTypeInt, def: "1",
		doc: "Partitions per hub and lane of a topic in the standard layout (hubs x 3 lanes x this many partitions); 0 for a topic laid out partition by partition (see sense.layout).",
		get: func(spec *node.PipelineSpec) (string, bool) {
			return strconv.Itoa(spec.Partitions), spec.Partitions != 1
		},
	},
	{
		name: "sense.hubs", typ: kmsg.ConfigTypeList, def: "",
		doc: "The hubs of a standard-layout topic in partition order: partition (hub_index*3 + lane)*partitions_per_lane + index.",
		get: func(spec *node.PipelineSpec) (string, bool) { return strings.Join(spec.Hubs, ","), false },
	},
	{
		name: "sense.layout", typ: kmsg.ConfigTypeList, def: "",
		doc: "Where each partition lives, in partition order, as hub:lane (for example tangier:low,dakar:low).",
		get: func(spec *node.PipelineSpec) (string, bool) {
			var b strings.Builder
			for i, sl := range spec.Layout() {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(sl.Hub + ":" + sl.Lane.String())
			}
			return b.String(), spec.Slots != nil
		},
	},
}

// ignoredTopicConfigs are Kafka topic configs CreateTopics accepts without
// keeping them, each checked: Sense already behaves as the accepted values
// ask, or the setting is node-wide and a different value changes nothing a
// client relies on. Anything else is refused with INVALID_CONFIG, so that a
// client never believes a topic has a property it does not have.
var ignoredTopicConfigs = map[string]func(v string) error{
	"segment.bytes":          positive, // node-wide: durability.segment_bytes
	"segment.ms":             positive, // node-wide
	"max.message.bytes":      positive, // node-wide: kafka.max_request_bytes
	"min.insync.replicas":    only("1"),
	"compression.type":       only("producer"), // batches keep their producer's codec
	"message.timestamp.type": only("CreateTime"),
}

// findTopicConfig returns the topic config named name.
func findTopicConfig(name string) *topicConfig {
	for i := range topicConfigs {
		if topicConfigs[i].name == name {
			return &topicConfigs[i]
		}
	}
	return nil
}

// applyTopicConfigs applies CreateTopics configs to spec. It returns why
// they cannot be applied, for INVALID_CONFIG.
func applyTopicConfigs(n *node.Node, spec *node.PipelineSpec, configs []kmsg.CreateTopicsRequestTopicConfig) error {
	seen := make(map[string]bool, len(configs))
	for _, c := range configs {
		if seen[c.Name] {
			return fmt.Errorf("config %s is given twice", c.Name)
		}
		seen[c.Name] = true
		if c.Value == nil {
			return fmt.Errorf("config %s has a null value", c.Name)
		}
		v := *c.Value
		if tc := findTopicConfig(c.Name); tc != nil {
			if tc.set == nil {
				return fmt.Errorf("config %s is read-only: Sense lays partitions out itself; set NumPartitions instead", c.Name)
			}
			if err := tc.set(n, spec, v); err != nil {
				return err
			}
			continue
		}
		if check, ok := ignoredTopicConfigs[c.Name]; ok {
			if err := check(v); err != nil {
				return fmt.Errorf("config %s %q: %v", c.Name, v, err)
			}
			continue
		}
		return fmt.Errorf("unknown topic config %q; Sense accepts %s, and %s with the values docs/kafka.md lists",
			c.Name, strings.Join(settableConfigNames(), ", "), strings.Join(ignoredConfigNames(), ", "))
	}
	return nil
}

func settableConfigNames() []string {
	var out []string
	for _, tc := range topicConfigs {
		if tc.set != nil {
			out = append(out, tc.name)
		}
	}
	return out
}

func ignoredConfigNames() []string {
	out := make([]string, 0, len(ignoredTopicConfigs))
	for name := range ignoredTopicConfigs {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// limitValue parses a retention limit: -1 (none, returned as 0) or a
// positive number.
func limitValue(v string) (int64, error) {
	x, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a whole number", v)
	case x == -1:
		return 0, nil
	case x <= 0:
		return 0, fmt.Errorf("%d: use -1 (no limit) or a positive number", x)
	}
	return x, nil
}

func positive(v string) error {
	x, err := strconv.ParseInt(v, 10, 64)
	if err != nil || x <= 0 {
		return errors.New("not a positive whole number")
	}
	return nil
}

func only(want string) func(string) error {
	return func(v string) error {
		if v != want {
			return fmt.Errorf("only %s is supported", want)
		}
		return nil
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// pipelineSpec returns the catalog's spec of a topic.
func (c *conn) pipelineSpec(name string) (node.PipelineSpec, bool) {
	return c.s.node.Pipeline(name)
}
