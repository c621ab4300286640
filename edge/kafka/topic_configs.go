package kafka

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// Topic configs: the Kafka names under which CreateTopics sets a pipeline's
// spec, DescribeConfigs reports it and AlterConfigs and
// IncrementalAlterConfigs change it (docs/kafka.md, "Admin APIs").

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
	// set applies a value to spec (CreateTopics, or an alter); nil: it
	// cannot be set by a config, and fixed says why and what to do
	// instead.
	set   func(n *node.Node, spec *node.PipelineSpec, v string) error
	fixed string
	// get returns the spec's value, and whether it was set (differs from
	// def).
	get func(spec *node.PipelineSpec) (string, bool)
	// alter copies the config's field of spec into a change of the
	// pipeline's run-time settings (node.PipelineChange); nil: the config
	// cannot change once the topic exists.
	alter func(spec *node.PipelineSpec, ch *node.PipelineChange)
}

var topicConfigs = []topicConfig{
	{
		name: "retention.ms", typ: kmsg.ConfigTypeLong, def: "-1",
		doc: "Sealed segments whose newest event is older than this many milliseconds are deleted; -1 keeps events forever.",
		set: func(_ *node.Node, spec *node.PipelineSpec, v string) error {
			ms, err := limitValue(v)
			if err != nil {
				return fmt.Errorf("retention.ms %w", err)
			}
			// A value past what a time.Duration holds (292 years) is
			// forever, as -1.
			spec.Retention = 0
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
		alter: func(spec *node.PipelineSpec, ch *node.PipelineChange) { ch.Retention = &spec.Retention },
	},
	{
		name: "retention.bytes", typ: kmsg.ConfigTypeLong, def: "-1",
		doc: "The oldest sealed segments of a partition are deleted while it holds more than this many bytes; -1 is no limit.",
		set: func(_ *node.Node, spec *node.PipelineSpec, v string) error {
			b, err := limitValue(v)
			if err != nil {
				return fmt.Errorf("retention.bytes %w", err)
			}
			spec.RetentionBytes = b
			return nil
		},
		get: func(spec *node.PipelineSpec) (string, bool) {
			if spec.RetentionBytes <= 0 {
				return "-1", false
			}
			return strconv.FormatInt(spec.RetentionBytes, 10), true
		},
		alter: func(spec *node.PipelineSpec, ch *node.PipelineChange) { ch.RetentionBytes = &spec.RetentionBytes },
	},
	{
		name: "cleanup.policy", typ: kmsg.ConfigTypeList, def: "delete",
		doc: "Sense deletes old segments (retention.ms, retention.bytes); it does not compact.",
		set: func(_ *node.Node, _ *node.PipelineSpec, v string) error {
			if v != "delete" {
				return fmt.Errorf("cleanup.policy %q: Sense does not compact logs yet; only delete is supported (old segments go by retention.ms and retention.bytes)", v)
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
		alter: func(spec *node.PipelineSpec, ch *node.PipelineChange) {
			ch.DefaultJurisdiction = &spec.DefaultJurisdiction
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
		alter: func(spec *node.PipelineSpec, ch *node.PipelineChange) { ch.DefaultPriority = &spec.DefaultPriority },
	},
	{
		name: "sense.partitions.per.lane", typ: kmsg.ConfigTypeInt, def: "1",
		doc:   "Partitions per hub and lane of a topic in the standard layout (hubs x 3 lanes x this many partitions); 0 for a topic laid out partition by partition (see sense.layout).",
		fixed: "a topic's partitions are fixed by its layout; add partitions with CreatePartitions (kafka-topics --alter --partitions N), which appends them and keeps the existing numbers",
		get: func(spec *node.PipelineSpec) (string, bool) {
			return strconv.Itoa(spec.Partitions), spec.Partitions != 1
		},
	},
	{
		name: "sense.hubs", typ: kmsg.ConfigTypeList, def: "",
		doc:   "The hubs of a standard-layout topic in partition order: partition (hub_index*3 + lane)*partitions_per_lane + index.",
		fixed: "a topic's hubs are the server's (hubs: in its config file); add partitions with CreatePartitions, which spreads them over the hubs",
		get:   func(spec *node.PipelineSpec) (string, bool) { return strings.Join(spec.Hubs, ","), false },
	},
	{
		name: "sense.layout", typ: kmsg.ConfigTypeList, def: "",
		doc:   "Where each partition lives, in partition order, as hub:lane (for example tangier:low,dakar:low).",
		fixed: "partitions never move; add partitions with CreatePartitions (kafka-topics --alter --partitions N), which appends them",
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

// configOp is one change a request asks of a topic config: SET to value or
// DELETE (back to the default). AlterConfigs is read as SET for the
// configs it names and DELETE for the alterable ones it leaves out;
// IncrementalAlterConfigs gives its ops as they are.
type configOp struct {
	name  string
	op    kmsg.IncrementalAlterConfigOp
	value *string
}

// alterResources answers the resources of an alter request, in request
// order, each once: a resource (type and name) named twice is
// INVALID_REQUEST, answered once, as Kafka does. alterTopic answers a
// topic; every other resource type is refused with a message.
func (c *conn) alterResources(n int, resource func(i int) (kmsg.ConfigResourceType, string), ops func(i int) []configOp,
	validateOnly bool, answer func(typ kmsg.ConfigResourceType, name string, code int16, msg string)) {
	type key struct {
		typ  kmsg.ConfigResourceType
		name string
	}
	count := make(map[key]int, n)
	for i := range n {
		typ, name := resource(i)
		count[key{typ, name}]++
	}
	for i := range n {
		typ, name := resource(i)
		k := key{typ, name}
		times := count[k]
		if times == 0 { // a repeat, already answered
			continue
		}
		count[k] = 0
		if code := c.authorize(security.AlterConfigs, configResource(typ, name)); code != 0 {
			answer(typ, name, code, "not authorized to alter its configs")
			continue
		}
		switch {
		case times > 1:
			answer(typ, name, kerr.InvalidRequest.Code, fmt.Sprintf("resource %v %q is named %d times in the request; name it once", typ, name, times))
		case typ == kmsg.ConfigResourceTypeTopic:
			code, msg := c.alterTopic(name, ops(i), validateOnly)
			answer(typ, name, code, msg)
		case typ == kmsg.ConfigResourceTypeBroker:
			answer(typ, name, kerr.InvalidRequest.Code, "broker configs cannot change at run time: they come from the server's config file (kafka:, durability:, router:); edit it and restart the node. Topic configs (resource type 2) can change")
		default:
			answer(typ, name, kerr.InvalidRequest.Code, fmt.Sprintf("config resource type %d (%v): Sense alters topic configs (resource type 2) only", typ, typ))
		}
	}
}

// alterTopic checks the ops of one topic and, unless validateOnly, applies
// them (node.AlterPipeline: at once alone, through the metadata log in a
// cluster). It returns a Kafka error code and a message for the client;
// the topic changes whole or not at all.
func (c *conn) alterTopic(topic string, ops []configOp, validateOnly bool) (int16, string) {
	spec, ok := c.pipelineSpec(topic)
	if !ok {
		return kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("unknown topic %q", topic)
	}
	next := spec
	var touched []*topicConfig
	seen := make(map[string]bool, len(ops))
	for _, o := range ops {
		if seen[o.name] {
			return kerr.InvalidRequest.Code, fmt.Sprintf("config %s is named twice for topic %q; name it once", o.name, topic)
		}
		seen[o.name] = true
		tc := findTopicConfig(o.name)
		switch {
		case o.op != kmsg.IncrementalAlterConfigOpSet && o.op != kmsg.IncrementalAlterConfigOpDelete:
			if o.op == kmsg.IncrementalAlterConfigOpAppend || o.op == kmsg.IncrementalAlterConfigOpSubtract {
				return kerr.InvalidConfig.Code, fmt.Sprintf("config %s: %v is not supported: no config Sense lets change holds a list; use SET, or DELETE for the default", o.name, o.op)
			}
			return kerr.InvalidRequest.Code, fmt.Sprintf("config %s: unknown op %d; use SET (0) or DELETE (1)", o.name, o.op)
		case o.op == kmsg.IncrementalAlterConfigOpSet && o.value == nil:
			return kerr.InvalidConfig.Code, fmt.Sprintf("config %s: SET with a null value; give a value, or DELETE it for the default", o.name)
		case tc == nil:
			if msg := checkIgnored(o); msg != "" {
				return kerr.InvalidConfig.Code, msg
			}
			continue
		}
		v := tc.def
		if o.op == kmsg.IncrementalAlterConfigOpSet {
			v = *o.value
		}
		if tc.alter == nil {
			// Fixed once the topic exists: its value now is accepted
			// (tools send back what DescribeConfigs showed), any other
			// refused with what to do.
			if tc.set != nil {
				if err := tc.set(c.s.node, &next, v); err != nil {
					return kerr.InvalidConfig.Code, err.Error()
				}
				continue
			}
			cur, _ := tc.get(&spec)
			switch {
			case v == cur:
			case o.op == kmsg.IncrementalAlterConfigOpDelete:
				return kerr.InvalidConfig.Code, fmt.Sprintf("config %s cannot be reset once the topic exists (it is %q): %s", o.name, cur, tc.fixed)
			default:
				return kerr.InvalidConfig.Code, fmt.Sprintf("config %s %q: it cannot change once the topic exists (it is %q): %s", o.name, v, cur, tc.fixed)
			}
			continue
		}
		if err := tc.set(c.s.node, &next, v); err != nil {
			return kerr.InvalidConfig.Code, err.Error()
		}
		touched = append(touched, tc)
	}
	var ch node.PipelineChange
	for _, tc := range touched {
		tc.alter(&next, &ch)
	}
	var err error
	if validateOnly {
		_, err = c.s.node.ValidateAlter(topic, ch)
	} else {
		_, err = c.s.node.AlterPipeline(topic, ch)
	}
	switch {
	case err == nil:
	case errors.Is(err, node.ErrUnknownPipeline):
		return kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("unknown topic %q", topic)
	case errors.Is(err, node.ErrPipelineDeclared):
		return kerr.PolicyViolation.Code, fmt.Sprintf("topic %q is declared in the server's config file (pipelines:), which sets its configs at every start; change them there and restart the node", topic)
	case errors.Is(err, node.ErrInvalidSpec):
		return kerr.InvalidConfig.Code, err.Error()
	case result.CodeOf(err) != result.Unknown:
		return result.CodeOf(err).Kafka(), err.Error()
	default:
		c.log.Error("Kafka alter of topic configs failed", "topic", topic, "err", err)
		return kerr.KafkaStorageError.Code, err.Error()
	}
	if !validateOnly && !ch.Empty() {
		c.log.Info("altered topic configs", "topic", topic, "change", ch.String())
	}
	return 0, ""
}

// checkIgnored checks an op on a config CreateTopics accepts without
// keeping (ignoredTopicConfigs): a value Sense already behaves as, or
// DELETE, changes nothing; anything else is refused. It returns the
// refusal's message, or "".
func checkIgnored(o configOp) string {
	check, ok := ignoredTopicConfigs[o.name]
	if !ok {
		return fmt.Sprintf("unknown topic config %q; Sense alters %s (and accepts %s with the values docs/kafka.md lists)",
			o.name, strings.Join(alterableConfigNames(), ", "), strings.Join(ignoredConfigNames(), ", "))
	}
	if o.op == kmsg.IncrementalAlterConfigOpDelete {
		return ""
	}
	if err := check(*o.value); err != nil {
		return fmt.Sprintf("config %s %q: %v", o.name, *o.value, err)
	}
	return ""
}

func alterableConfigNames() []string {
	var out []string
	for _, tc := range topicConfigs {
		if tc.alter != nil {
			out = append(out, tc.name)
		}
	}
	return out
}
