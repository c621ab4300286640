package kafka

import (
	"errors"
	"fmt"
	"math"
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

// configEnv is what topic configs read besides the spec: the node, and
// how many replicas hold a batch once it is acknowledged.
type configEnv struct {
	n         *node.Node
	minInsync int
}

// configEnv returns the connection's configEnv.
func (c *conn) configEnv() *configEnv {
	return &configEnv{n: c.s.node, minInsync: c.s.opts.MinInsyncReplicas}
}

// defaultValue is the default DescribeConfigs shows.
func (tc *topicConfig) defaultValue(e *configEnv) string {
	if tc.dflt != nil {
		return tc.dflt(e)
	}
	return tc.def
}

// topicConfig is one topic config Sense keeps in the pipeline spec.
type topicConfig struct {
	name string
	typ  kmsg.ConfigType
	def  string // the value when the spec leaves it unset
	doc  string
	// set applies a value to spec (CreateTopics, or an alter); nil: it
	// cannot be set by a config, and fixed says why and what to do
	// instead.
	set   func(e *configEnv, spec *node.PipelineSpec, v string) error
	fixed string
	// get returns the spec's value, and whether it was set (differs from
	// def).
	get func(e *configEnv, spec *node.PipelineSpec) (string, bool)
	// dflt, when set, is the default DescribeConfigs shows (def is then
	// the value DELETE sets: the spec's "unset").
	dflt func(e *configEnv) string
	// alter copies the config's field of spec into a change of the
	// pipeline's run-time settings (node.PipelineChange); nil: the config
	// cannot change once the topic exists.
	alter func(spec *node.PipelineSpec, ch *node.PipelineChange)
}

var topicConfigs = []topicConfig{
	{
		name: "retention.ms", typ: kmsg.ConfigTypeLong, def: "-1",
		doc: "Sealed segments whose newest event is older than this many milliseconds are deleted; -1 keeps events forever.",
		set: func(_ *configEnv, spec *node.PipelineSpec, v string) error {
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
		get: func(_ *configEnv, spec *node.PipelineSpec) (string, bool) {
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
		set: func(_ *configEnv, spec *node.PipelineSpec, v string) error {
			b, err := limitValue(v)
			if err != nil {
				return fmt.Errorf("retention.bytes %w", err)
			}
			spec.RetentionBytes = b
			return nil
		},
		get: func(_ *configEnv, spec *node.PipelineSpec) (string, bool) {
			if spec.RetentionBytes <= 0 {
				return "-1", false
			}
			return strconv.FormatInt(spec.RetentionBytes, 10), true
		},
		alter: func(spec *node.PipelineSpec, ch *node.PipelineChange) { ch.RetentionBytes = &spec.RetentionBytes },
	},
	{
		name: "cleanup.policy", typ: kmsg.ConfigTypeList, def: "delete",
		doc: "delete: sealed segments go by retention.ms and retention.bytes. compact: each partition keeps the latest record of each key (records need a key), and retention deletes nothing. compact,delete: both.",
		set: func(_ *configEnv, spec *node.PipelineSpec, v string) error {
			p, err := node.ParseCleanupPolicy(v)
			if err != nil {
				return fmt.Errorf("cleanup.policy %q: give delete, compact or compact,delete", v)
			}
			spec.CleanupPolicy = p
			return nil
		},
		get: func(_ *configEnv, spec *node.PipelineSpec) (string, bool) {
			if spec.CleanupPolicy == "" {
				return "delete", false
			}
			return spec.CleanupPolicy, true
		},
		alter: func(spec *node.PipelineSpec, ch *node.PipelineChange) { ch.CleanupPolicy = &spec.CleanupPolicy },
	},
	{
		name: "delete.retention.ms", typ: kmsg.ConfigTypeLong, def: "86400000",
		doc: "How long a tombstone (a record with a null value) that is the latest of its key stays in a compacted topic, from its timestamp.",
		set: func(_ *configEnv, spec *node.PipelineSpec, v string) error {
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
				return fmt.Errorf("delete.retention.ms %q: give a whole number of milliseconds, 0 or more", v)
			}
			spec.DeleteRetention = time.Duration(ms) * time.Millisecond
			if ms == 0 {
				spec.DeleteRetention = time.Nanosecond // 0 ms: at once (0 in the spec is the default)
			}
			return nil
		},
		get: func(_ *configEnv, spec *node.PipelineSpec) (string, bool) {
			if spec.DeleteRetention == 0 {
				return "86400000", false
			}
			return strconv.FormatInt(spec.DeleteRetention.Milliseconds(), 10), true
		},
		alter: func(spec *node.PipelineSpec, ch *node.PipelineChange) { ch.DeleteRetention = &spec.DeleteRetention },
	},
	{
		name: "min.compaction.lag.ms", typ: kmsg.ConfigTypeLong, def: "0",
		doc: "A record of a compacted topic is not compacted before its segment's newest record is this old.",
		set: func(_ *configEnv, spec *node.PipelineSpec, v string) error {
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
				return fmt.Errorf("min.compaction.lag.ms %q: give a whole number of milliseconds, 0 or more", v)
			}
			spec.MinCompactionLag = time.Duration(ms) * time.Millisecond
			return nil
		},
		get: func(_ *configEnv, spec *node.PipelineSpec) (string, bool) {
			return strconv.FormatInt(spec.MinCompactionLag.Milliseconds(), 10), spec.MinCompactionLag != 0
		},
		alter: func(spec *node.PipelineSpec, ch *node.PipelineChange) { ch.MinCompactionLag = &spec.MinCompactionLag },
	},
	{
		name: "min.cleanable.dirty.ratio", typ: kmsg.ConfigTypeDouble, def: "0.5",
		doc: "A partition of a compacted topic is compacted once this share of its sealed bytes was not compacted yet.",
		set: func(_ *configEnv, spec *node.PipelineSpec, v string) error {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || !(x > 0 && x <= 1) {
				return fmt.Errorf("min.cleanable.dirty.ratio %q: give a number above 0, at most 1", v)
			}
			spec.MinCleanableDirtyRatio = x
			return nil
		},
		get: func(_ *configEnv, spec *node.PipelineSpec) (string, bool) {
			if spec.MinCleanableDirtyRatio == 0 {
				return "0.5", false
			}
			return strconv.FormatFloat(spec.MinCleanableDirtyRatio, 'g', -1, 64), true
		},
		alter: func(spec *node.PipelineSpec, ch *node.PipelineChange) {
			ch.MinCleanableDirtyRatio = &spec.MinCleanableDirtyRatio
		},
	},
	{
		name: "sense.default.jurisdiction", typ: kmsg.ConfigTypeString, def: defaultJurisdiction,
		doc: "Where a record without a sense.jurisdiction header may rest: jurisdiction codes or groups, e.g. MA,SN, or * for anywhere.",
		set: func(e *configEnv, spec *node.PipelineSpec, v string) error {
			if _, err := e.n.Registry().Parse(v); err != nil {
				return fmt.Errorf("sense.default.jurisdiction %q: %v", v, err)
			}
			spec.DefaultJurisdiction = v
			return nil
		},
		get: func(_ *configEnv, spec *node.PipelineSpec) (string, bool) {
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
		set: func(_ *configEnv, spec *node.PipelineSpec, v string) error {
			if _, err := event.ParsePriority(v); err != nil {
				return fmt.Errorf("sense.default.priority %q: %v", v, err)
			}
			spec.DefaultPriority = v
			return nil
		},
		get: func(_ *configEnv, spec *node.PipelineSpec) (string, bool) {
			v := orDefault(spec.DefaultPriority, defaultPriority)
			return v, v != defaultPriority
		},
		alter: func(spec *node.PipelineSpec, ch *node.PipelineChange) { ch.DefaultPriority = &spec.DefaultPriority },
	},
	{
		name: "sense.partitions.per.lane", typ: kmsg.ConfigTypeInt, def: "1",
		doc:   "Partitions per hub and lane of a topic in the standard layout (hubs x 3 lanes x this many partitions); 0 for a topic laid out partition by partition (see sense.layout).",
		fixed: "a topic's partitions are fixed by its layout; add partitions with CreatePartitions (kafka-topics --alter --partitions N), which appends them and keeps the existing numbers",
		get: func(_ *configEnv, spec *node.PipelineSpec) (string, bool) {
			return strconv.Itoa(spec.Partitions), spec.Partitions != 1
		},
	},
	{
		name: "sense.hubs", typ: kmsg.ConfigTypeList, def: "",
		doc:   "The hubs of a standard-layout topic in partition order: partition (hub_index*3 + lane)*partitions_per_lane + index.",
		fixed: "a topic's hubs are the server's (hubs: in its config file); add partitions with CreatePartitions, which spreads them over the hubs",
		get:   func(_ *configEnv, spec *node.PipelineSpec) (string, bool) { return strings.Join(spec.Hubs, ","), false },
	},
	{
		name: "sense.layout", typ: kmsg.ConfigTypeList, def: "",
		doc:   "Where each partition lives, in partition order, as hub:lane (for example tangier:low,dakar:low).",
		fixed: "partitions never move; add partitions with CreatePartitions (kafka-topics --alter --partitions N), which appends them",
		get: func(_ *configEnv, spec *node.PipelineSpec) (string, bool) {
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
	{
		name: "max.message.bytes", typ: kmsg.ConfigTypeInt, def: "0",
		doc:  "The largest record batch a producer may send to the topic, compressed as sent; larger ones are refused with MESSAGE_TOO_LARGE. The default is the node's event limit (router.max_event_bytes).",
		dflt: func(e *configEnv) string { return strconv.FormatInt(e.n.MaxMessageBytes(node.PipelineSpec{}), 10) },
		set: func(_ *configEnv, spec *node.PipelineSpec, v string) error {
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("max.message.bytes %q is not a whole number of bytes", v)
			}
			if err := node.CheckMaxMessageBytes(x); err != nil {
				return fmt.Errorf("max.message.bytes: %w", err)
			}
			spec.MaxMessageBytes = x
			return nil
		},
		get: func(e *configEnv, spec *node.PipelineSpec) (string, bool) {
			return strconv.FormatInt(e.n.MaxMessageBytes(*spec), 10), spec.MaxMessageBytes > 0
		},
		alter: func(spec *node.PipelineSpec, ch *node.PipelineChange) { ch.MaxMessageBytes = &spec.MaxMessageBytes },
	},
	{
		name: "segment.bytes", typ: kmsg.ConfigTypeInt, def: "",
		doc:   "The size at which a partition's segment file is sealed and a new one begun: the node's durability.segment_bytes, for every topic.",
		fixed: "the segment size is the node's (durability.segment_bytes in the server's config file), the same for every topic",
		get: func(e *configEnv, _ *node.PipelineSpec) (string, bool) {
			return strconv.FormatInt(e.n.SegmentBytes(), 10), false
		},
	},
	{
		name: "segment.ms", typ: kmsg.ConfigTypeLong, def: strconv.FormatInt(math.MaxInt64, 10),
		doc:   "Segments are sealed by size only (segment.bytes), never by age.",
		fixed: "Sense seals segments by size only (durability.segment_bytes); retention.ms still deletes sealed segments by age",
		get: func(*configEnv, *node.PipelineSpec) (string, bool) {
			return strconv.FormatInt(math.MaxInt64, 10), false
		},
	},
	{
		name: "min.insync.replicas", typ: kmsg.ConfigTypeInt, def: "1",
		doc:   "How many replicas hold a batch when it is acknowledged to acks=all: 1 on a node alone, a majority of the partition's replicas in a cluster.",
		fixed: "Sense acknowledges a batch once a majority of its partition's replicas hold it (one replica on a node alone); a lower value is implied and accepted, a higher one cannot be honoured",
		get: func(e *configEnv, _ *node.PipelineSpec) (string, bool) {
			return strconv.Itoa(max(e.minInsync, 1)), false
		},
		set: func(e *configEnv, _ *node.PipelineSpec, v string) error {
			x, err := strconv.Atoi(v)
			if err != nil || x < 1 {
				return fmt.Errorf("min.insync.replicas %q: give a positive whole number", v)
			}
			if x > max(e.minInsync, 1) {
				return fmt.Errorf("min.insync.replicas %d: Sense acknowledges a batch once %d replicas hold it (a majority of the partition's replicas; one on a node alone), so it cannot promise %d; use at most %d", x, max(e.minInsync, 1), x, max(e.minInsync, 1))
			}
			return nil
		},
	},
	{
		name: "compression.type", typ: kmsg.ConfigTypeString, def: "producer",
		doc:   "Batches are stored with the codec their producer chose.",
		fixed: "Sense stores each batch with its producer's codec (compression.type producer); it does not recompress",
		get:   func(*configEnv, *node.PipelineSpec) (string, bool) { return "producer", false },
	},
	{
		name: "message.timestamp.type", typ: kmsg.ConfigTypeString, def: "CreateTime",
		doc:   "Records keep the timestamps their producers gave them.",
		fixed: "Sense keeps the producer's timestamps (CreateTime); it does not stamp LogAppendTime",
		get:   func(*configEnv, *node.PipelineSpec) (string, bool) { return "CreateTime", false },
	},
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
// they cannot be applied, for INVALID_CONFIG. A config Sense does not set
// per topic is accepted only with the value it has (as DescribeConfigs
// shows it), so that a client never believes a topic has a property it
// does not have.
func applyTopicConfigs(e *configEnv, spec *node.PipelineSpec, configs []kmsg.CreateTopicsRequestTopicConfig) error {
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
		tc := findTopicConfig(c.Name)
		switch {
		case tc == nil:
			return fmt.Errorf("unknown topic config %q; Sense accepts %s (docs/kafka.md lists their values)",
				c.Name, strings.Join(topicConfigNames(), ", "))
		case tc.set != nil:
			if err := tc.set(e, spec, v); err != nil {
				return err
			}
		case strings.HasPrefix(c.Name, "sense."):
			return fmt.Errorf("config %s is read-only: Sense lays partitions out itself; set NumPartitions instead", c.Name)
		default:
			if cur, _ := tc.get(e, spec); v != cur {
				return fmt.Errorf("config %s %q cannot be set (it is %q): %s", c.Name, v, cur, tc.fixed)
			}
		}
	}
	return nil
}

func topicConfigNames() []string {
	out := make([]string, 0, len(topicConfigs))
	for _, tc := range topicConfigs {
		out = append(out, tc.name)
	}
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
	env := c.configEnv()
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
			return kerr.InvalidConfig.Code, fmt.Sprintf("unknown topic config %q; Sense alters %s (and accepts %s with the values DescribeConfigs shows)",
				o.name, strings.Join(alterableConfigNames(), ", "), strings.Join(fixedConfigNames(), ", "))
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
				if err := tc.set(env, &next, v); err != nil {
					return kerr.InvalidConfig.Code, err.Error()
				}
				continue
			}
			cur, _ := tc.get(env, &spec)
			switch {
			case v == cur:
			case o.op == kmsg.IncrementalAlterConfigOpDelete:
				return kerr.InvalidConfig.Code, fmt.Sprintf("config %s cannot be reset once the topic exists (it is %q): %s", o.name, cur, tc.fixed)
			default:
				return kerr.InvalidConfig.Code, fmt.Sprintf("config %s %q: it cannot change once the topic exists (it is %q): %s", o.name, v, cur, tc.fixed)
			}
			continue
		}
		if err := tc.set(env, &next, v); err != nil {
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

func alterableConfigNames() []string {
	var out []string
	for _, tc := range topicConfigs {
		if tc.alter != nil {
			out = append(out, tc.name)
		}
	}
	return out
}

func fixedConfigNames() []string {
	var out []string
	for _, tc := range topicConfigs {
		if tc.alter == nil {
			out = append(out, tc.name)
		}
	}
	return out
}
