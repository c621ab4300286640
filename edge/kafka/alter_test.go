package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/node"
)

// topicConfigs describes a topic and returns its configs by name.
func topicConfigs(t *testing.T, ctx context.Context, adm *kadm.Client, topic string) map[string]kadm.Config {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe %s: %v, %v", topic, err, rc.Err)
	}
	out := map[string]kadm.Config{}
	for _, c := range rc.Configs {
		out[c.Key] = c
	}
	return out
}

// wantConfig checks one described config: its value and source.
func wantConfig(t *testing.T, what string, got map[string]kadm.Config, name, value string, source kmsg.ConfigSource) {
	t.Helper()
	c, ok := got[name]
	if !ok {
		t.Errorf("%s: %s not described", what, name)
		return
	}
	if c.MaybeValue() != value || c.Source != source {
		t.Errorf("%s: %s = %q (%v), want %q (%v)", what, name, c.MaybeValue(), c.Source, value, source)
	}
}

// alterOne runs one alter on one topic and returns its answer: the
// message, and the error.
func alterOne(t *testing.T, ctx context.Context, f func(context.Context, []kadm.AlterConfig, ...string) (kadm.AlterConfigsResponses, error),
	topic string, cfgs ...kadm.AlterConfig) (string, error) {
	t.Helper()
	rs, err := f(ctx, cfgs, topic)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rs.On(topic, nil)
	if err != nil {
		t.Fatalf("no answer for %s: %v", topic, err)
	}
	return r.ErrMessage, r.Err
}

func set(name, value string) kadm.AlterConfig {
	return kadm.AlterConfig{Op: kadm.SetConfig, Name: name, Value: kadm.StringPtr(value)}
}

func del(name string) kadm.AlterConfig { return kadm.AlterConfig{Op: kadm.DeleteConfig, Name: name} }

// TestAlterConfigs: IncrementalAlterConfigs sets and deletes a topic's
// run-time settings, DescribeConfigs shows them (changed values from the
// topic, alterable entries not read-only), and they take effect at once:
// the routes' default priority and jurisdiction are the new ones, a record
// without a jurisdiction header is held to the new default. What cannot
// change is refused with a message; validate_only changes nothing;
// AlterConfigs returns every setting it does not name to its default.
func TestAlterConfigs(t *testing.T) {
	addr, n, adm, cl := startAdmin(t)
	ctx := ctxFor(t)
	if _, err := adm.CreateTopic(ctx, -1, -1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	dyn, def := kmsg.ConfigSourceDynamicTopicConfig, kmsg.ConfigSourceDefaultConfig

	// SET.
	msg, err := alterOne(t, ctx, adm.AlterTopicConfigs, "orders",
		set("retention.ms", "3600000"), set("sense.default.priority", "critical"), set("sense.default.jurisdiction", "SN"),
		set("cleanup.policy", "delete"), set("segment.bytes", "134217728"), set("max.message.bytes", "2048"))
	wantErr(t, "incremental SET", err, msg, nil)
	got := topicConfigs(t, ctx, adm, "orders")
	wantConfig(t, "after SET", got, "retention.ms", "3600000", dyn)
	wantConfig(t, "after SET", got, "sense.default.priority", "critical", dyn)
	wantConfig(t, "after SET", got, "sense.default.jurisdiction", "SN", dyn)
	wantConfig(t, "after SET", got, "retention.bytes", "-1", def)
	wantConfig(t, "after SET", got, "max.message.bytes", "2048", dyn)
	// kadm does not show ReadOnly: ask with kmsg.
	dreq := kmsg.NewPtrDescribeConfigsRequest()
	for _, topic := range []string{"orders", "declared"} {
		dr := kmsg.NewDescribeConfigsRequestResource()
		dr.ResourceType, dr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
		dreq.Resources = append(dreq.Resources, dr)
	}
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil || len(dresp.Resources) != 2 {
		t.Fatalf("DescribeConfigs: %v, %+v", err, dresp)
	}
	for _, r := range dresp.Resources {
		for _, c := range r.Configs {
			alterable := r.ResourceName == "orders" && (c.Name == "retention.ms" || c.Name == "retention.bytes" ||
				c.Name == "sense.default.priority" || c.Name == "sense.default.jurisdiction" || c.Name == "max.message.bytes" ||
				c.Name == "cleanup.policy" || c.Name == "delete.retention.ms" || c.Name == "min.compaction.lag.ms" || c.Name == "min.cleanable.dirty.ratio")
			if c.ReadOnly == alterable {
				t.Errorf("%s %s: read-only %v, want %v", r.ResourceName, c.Name, c.ReadOnly, !alterable)
			}
		}
	}
	if s := spec(t, n, "orders"); s.Retention != time.Hour || s.DefaultPriority != "critical" || s.DefaultJurisdiction != "SN" || s.MaxMessageBytes != 2048 {
		t.Fatalf("the node's spec after SET: %+v", s)
	}

	// In effect: the routes resolve the new defaults, so an event naming
	// neither goes to dakar's critical lane...
	if rs := n.Table().Pipeline("orders").Spec(); rs.DefaultPriority != event.Critical || rs.DefaultMask != 2 {
		t.Fatalf("routes after SET: default priority %v, mask %v", rs.DefaultPriority, rs.DefaultMask)
	}
	res := make([]node.Result, 1)
	if err := n.Produce(ctx, &node.ProduceRequest{Pipeline: "orders", ProducerID: -1, Events: []node.Event{{Value: []byte("bare")}}}, res); err != nil {
		t.Fatal(err)
	}
	if sl := spec(t, n, "orders").Layout()[res[0].Partition]; res[0].Code != 0 || sl != (node.Slot{Hub: "dakar", Lane: event.Critical}) {
		t.Fatalf("an event without jurisdiction or priority: %+v, in %+v; want dakar's critical lane", res[0], sl)
	}
	// ... and a Kafka record without a jurisdiction header may rest in
	// dakar (SN), no longer in tangier (MA).
	pcl := client(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordRetries(1))
	produce := func(partition int32) error {
		return pcl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Partition: partition, Value: []byte("k")}).FirstErr()
	}
	if err := produce(3); err != nil {
		t.Fatalf("a record without headers to dakar: %v", err)
	}
	if err := produce(0); !errors.Is(err, kerr.PolicyViolation) {
		t.Fatalf("a record without headers to tangier, default jurisdiction SN: %v, want POLICY_VIOLATION", err)
	}

	// DELETE: back to the defaults.
	msg, err = alterOne(t, ctx, adm.AlterTopicConfigs, "orders", del("sense.default.priority"), del("sense.default.jurisdiction"),
		set("retention.bytes", "1073741824"))
	wantErr(t, "incremental DELETE", err, msg, nil)
	got = topicConfigs(t, ctx, adm, "orders")
	wantConfig(t, "after DELETE", got, "sense.default.priority", "low", def)
	wantConfig(t, "after DELETE", got, "sense.default.jurisdiction", "*", def)
	wantConfig(t, "after DELETE", got, "retention.ms", "3600000", dyn) // not named: kept
	wantConfig(t, "after DELETE", got, "retention.bytes", "1073741824", dyn)
	if err := produce(0); err != nil {
		t.Fatalf("a record without headers to tangier, default jurisdiction * again: %v", err)
	}

	// Refusals: each names the config and what to do, and the topic's
	// other changes in the request are not applied.
	for _, tc := range []struct {
		what  string
		topic string
		cfgs  []kadm.AlterConfig
		want  *kerr.Error
		words []string
	}{
		{"layout", "orders", []kadm.AlterConfig{set("sense.default.priority", "medium"), set("sense.partitions.per.lane", "4")},
			kerr.InvalidConfig, []string{"sense.partitions.per.lane", `"4"`, "CreatePartitions"}},
		{"layout reset", "orders", []kadm.AlterConfig{del("sense.layout")}, kerr.InvalidConfig, []string{"sense.layout", "reset", "CreatePartitions"}},
		{"unknown cleanup policy", "orders", []kadm.AlterConfig{set("cleanup.policy", "tidy")}, kerr.InvalidConfig, []string{"tidy", "compact,delete"}},
		{"append", "orders", []kadm.AlterConfig{{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")}},
			kerr.InvalidConfig, []string{"APPEND", "SET"}},
		{"subtract", "orders", []kadm.AlterConfig{{Op: kadm.SubtractConfig, Name: "sense.hubs", Value: kadm.StringPtr("dakar")}},
			kerr.InvalidConfig, []string{"SUBTRACT"}},
		{"unknown config", "orders", []kadm.AlterConfig{set("flush.ms", "10")}, kerr.InvalidConfig, []string{`"flush.ms"`, "retention.ms"}},
		{"bad value", "orders", []kadm.AlterConfig{set("retention.ms", "soon")}, kerr.InvalidConfig, []string{"retention.ms", `"soon"`}},
		{"bad priority", "orders", []kadm.AlterConfig{set("sense.default.priority", "urgent")}, kerr.InvalidConfig, []string{`"urgent"`}},
		{"bad jurisdiction", "orders", []kadm.AlterConfig{set("sense.default.jurisdiction", "ZZ")}, kerr.InvalidConfig, []string{`"ZZ"`}},
		{"null SET", "orders", []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms"}}, kerr.InvalidConfig, []string{"null", "DELETE"}},
		{"ignored config, other value", "orders", []kadm.AlterConfig{set("min.insync.replicas", "2")}, kerr.InvalidConfig, []string{"min.insync.replicas", "1"}},
		{"declared topic", "declared", []kadm.AlterConfig{set("retention.ms", "60000")}, kerr.PolicyViolation, []string{"config file", "restart"}},
		{"unknown topic", "missing", []kadm.AlterConfig{set("retention.ms", "60000")}, kerr.UnknownTopicOrPartition, []string{`"missing"`}},
	} {
		msg, err := alterOne(t, ctx, adm.AlterTopicConfigs, tc.topic, tc.cfgs...)
		wantErr(t, tc.what, err, msg, tc.want, tc.words...)
	}
	if s := spec(t, n, "orders"); s.DefaultPriority != "low" {
		t.Errorf("a refused request changed the default priority to %q", s.DefaultPriority)
	}
	// The layout's values as they are: accepted, nothing changes.
	cur := topicConfigs(t, ctx, adm, "orders")
	perLane, hubs := cur["sense.partitions.per.lane"], cur["sense.hubs"]
	msg, err = alterOne(t, ctx, adm.AlterTopicConfigs, "orders", set("sense.partitions.per.lane", perLane.MaybeValue()),
		set("sense.hubs", hubs.MaybeValue()))
	wantErr(t, "layout values as they are", err, msg, nil)

	// validate_only, both forms: answered as the change would be, nothing
	// changes.
	msg, err = alterOne(t, ctx, adm.ValidateAlterTopicConfigs, "orders", set("sense.default.priority", "medium"))
	wantErr(t, "validate incremental", err, msg, nil)
	msg, err = alterOne(t, ctx, adm.ValidateAlterTopicConfigs, "orders", set("sense.partitions.per.lane", "4"))
	wantErr(t, "validate a refused one", err, msg, kerr.InvalidConfig, "sense.partitions.per.lane")
	msg, err = alterOne(t, ctx, adm.ValidateAlterTopicConfigsState, "orders", set("retention.ms", "60000"))
	wantErr(t, "validate whole set", err, msg, nil)
	got = topicConfigs(t, ctx, adm, "orders")
	wantConfig(t, "after validate_only", got, "sense.default.priority", "low", def)
	wantConfig(t, "after validate_only", got, "retention.ms", "3600000", dyn)
	wantConfig(t, "after validate_only", got, "retention.bytes", "1073741824", dyn)

	// AlterConfigs: what it names is set, every other setting that can
	// change goes back to its default.
	msg, err = alterOne(t, ctx, adm.AlterTopicConfigsState, "orders", set("sense.default.priority", "medium"))
	wantErr(t, "AlterConfigs", err, msg, nil)
	got = topicConfigs(t, ctx, adm, "orders")
	wantConfig(t, "after AlterConfigs", got, "sense.default.priority", "medium", dyn)
	wantConfig(t, "after AlterConfigs", got, "retention.ms", "-1", def)
	wantConfig(t, "after AlterConfigs", got, "retention.bytes", "-1", def)
	wantConfig(t, "after AlterConfigs", got, "sense.default.jurisdiction", "*", def)
	if s := spec(t, n, "orders"); s.Retention != 0 || s.RetentionBytes != 0 || s.DefaultPriority != "medium" || s.NumPartitions() != 6 {
		t.Fatalf("the node's spec after AlterConfigs: %+v", s)
	}
	msg, err = alterOne(t, ctx, adm.AlterTopicConfigsState, "orders", set("sense.layout", "dakar:low"))
	wantErr(t, "AlterConfigs of the layout", err, msg, kerr.InvalidConfig, "sense.layout", "CreatePartitions")
	msg, err = alterOne(t, ctx, adm.AlterTopicConfigsState, "declared")
	wantErr(t, "AlterConfigs of a declared topic", err, msg, kerr.PolicyViolation, "config file")
}

// TestAlterConfigsRaw: version 0 of both requests, straight on the wire:
// a broker, another resource type, a resource named twice and an unknown
// op are each refused with a message, per resource, beside a topic that
// is altered; the connection stays usable.
func TestAlterConfigsRaw(t *testing.T) {
	addr, n, adm, _ := startAdmin(t)
	ctx := ctxFor(t)
	if _, err := adm.CreateTopic(ctx, -1, -1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	inc := kmsg.NewPtrIncrementalAlterConfigsRequest()
	resource := func(typ kmsg.ConfigResourceType, name string, op kmsg.IncrementalAlterConfigOp, cfg, value string) {
		r := kmsg.NewIncrementalAlterConfigsRequestResource()
		r.ResourceType, r.ResourceName = typ, name
		rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		rc.Name, rc.Op, rc.Value = cfg, op, kmsg.StringPtr(value)
		r.Configs = append(r.Configs, rc)
		inc.Resources = append(inc.Resources, r)
	}
	set := kmsg.IncrementalAlterConfigOpSet
	resource(kmsg.ConfigResourceTypeTopic, "orders", set, "retention.ms", "60000")
	resource(kmsg.ConfigResourceTypeBroker, "0", set, "num.partitions", "12")
	resource(kmsg.ConfigResourceTypeBrokerLogger, "0", set, "kafka", "DEBUG")
	resource(kmsg.ConfigResourceTypeTopic, "twice", set, "retention.ms", "1")
	resource(kmsg.ConfigResourceTypeTopic, "twice", set, "retention.ms", "2")
	resource(kmsg.ConfigResourceTypeTopic, "orders-op", 9, "retention.ms", "1")
	c.Write(rawRequest(inc, 0, 5))
	b := readResponse(t, c)
	resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
	if err := resp.ReadFrom(b[4:]); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		code int16
	}{{"orders", 0}, {"0", kerr.InvalidRequest.Code}, {"0", kerr.InvalidRequest.Code}, {"twice", kerr.InvalidRequest.Code},
		{"orders-op", kerr.UnknownTopicOrPartition.Code}}
	if len(resp.Resources) != len(want) {
		t.Fatalf("%d resources answered, want %d: %+v", len(resp.Resources), len(want), resp.Resources)
	}
	for i, w := range want {
		r := resp.Resources[i]
		if r.ResourceName != w.name || r.ErrorCode != w.code || (w.code != 0) != (r.ErrorMessage != nil) {
			t.Errorf("resource %d: %q error %d (message %v), want %q error %d with a message", i, r.ResourceName, r.ErrorCode, r.ErrorMessage, w.name, w.code)
		}
	}
	if s := spec(t, n, "orders"); s.Retention != time.Minute {
		t.Errorf("orders' retention %v, want 1m", s.Retention)
	}

	// An unknown op on a topic that exists.
	inc = kmsg.NewPtrIncrementalAlterConfigsRequest()
	resource(kmsg.ConfigResourceTypeTopic, "orders", 9, "retention.ms", "1")
	c.Write(rawRequest(inc, 0, 6))
	b = readResponse(t, c)
	resp = kmsg.NewPtrIncrementalAlterConfigsResponse()
	if err := resp.ReadFrom(b[4:]); err != nil || resp.Resources[0].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("unknown op: %v %+v", err, resp.Resources)
	}

	// AlterConfigs v0, with a null value: back to the default.
	ac := kmsg.NewPtrAlterConfigsRequest()
	r := kmsg.NewAlterConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, "orders"
	rc := kmsg.NewAlterConfigsRequestResourceConfig()
	rc.Name = "retention.ms"
	r.Configs = append(r.Configs, rc)
	ac.Resources = append(ac.Resources, r)
	c.Write(rawRequest(ac, 0, 7))
	b = readResponse(t, c)
	aresp := kmsg.NewPtrAlterConfigsResponse()
	aresp.SetVersion(0)
	if err := aresp.ReadFrom(b[4:]); err != nil || len(aresp.Resources) != 1 || aresp.Resources[0].ErrorCode != 0 {
		t.Fatalf("AlterConfigs v0: %v %+v", err, aresp.Resources)
	}
	if s := spec(t, n, "orders"); s.Retention != 0 {
		t.Errorf("orders' retention %v after AlterConfigs with a null value, want none", s.Retention)
	}
}

// TestMaxMessageBytes: max.message.bytes is kept and enforced, on the
// batch as sent and on each record's key, value and headers. A topic
// without it takes the node's event limit (1 MiB): a 10 MiB record is
// refused with MESSAGE_TOO_LARGE, not stored; with max.message.bytes 4096 a
// batch of about 8 KiB is refused and one of 1 KiB stored; deleting the
// setting brings the default back.
func TestMaxMessageBytes(t *testing.T) {
	addr, n, adm, _ := startAdmin(t)
	ctx := ctxFor(t)
	// A client that sends what it is given: its own limits above ours.
	cl := client(t, addr, kgo.ProducerBatchMaxBytes(32<<20), kgo.BrokerMaxWriteBytes(64<<20), kgo.RecordRetries(1))
	produce := func(topic string, size int) error {
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: bytes.Repeat([]byte("v"), size)}).FirstErr()
	}
	for _, topic := range []string{"plain", "small"} {
		if _, err := adm.CreateTopic(ctx, -1, -1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	if err := produce("plain", 10<<20); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("a 10 MiB record under the default limit: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := produce("plain", 512<<10); err != nil {
		t.Fatalf("a 512 KiB record under the default limit: %v", err)
	}
	msg, err := alterOne(t, ctx, adm.AlterTopicConfigs, "small", set("max.message.bytes", "4096"))
	wantErr(t, "SET max.message.bytes", err, msg, nil)
	if err := produce("small", 8<<10); !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("an 8 KiB record under max.message.bytes 4096: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := produce("small", 1<<10); err != nil {
		t.Fatalf("a 1 KiB record under max.message.bytes 4096: %v", err)
	}
	msg, err = alterOne(t, ctx, adm.AlterTopicConfigs, "small", del("max.message.bytes"))
	wantErr(t, "DELETE max.message.bytes", err, msg, nil)
	if s := spec(t, n, "small"); s.MaxMessageBytes != 0 {
		t.Fatalf("after DELETE: max message bytes %d, want 0 (the node's limit)", s.MaxMessageBytes)
	}
	if err := produce("small", 8<<10); err != nil {
		t.Fatalf("an 8 KiB record after DELETE: %v", err)
	}
	// Only what was accepted is stored.
	for topic, want := range map[string]int64{"plain": 1, "small": 2} {
		var hw int64
		parts, _ := n.Partitions(topic)
		for _, p := range parts {
			_, h, _ := n.Offsets(topic, p.Partition)
			hw += h
		}
		if hw != want {
			t.Fatalf("%s holds %d records, want %d", topic, hw, want)
		}
	}
	msg, err = alterOne(t, ctx, adm.AlterTopicConfigs, "small", set("max.message.bytes", "-5"))
	wantErr(t, "SET max.message.bytes -5", err, msg, kerr.InvalidConfig, "max.message.bytes")
}
