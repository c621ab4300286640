package kafka_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/edge/kafka"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/seglog"
)

// Two hubs: a topic has 2 x 3 x partitions-per-lane partitions. Topics are
// not auto-created, so a deleted topic stays deleted.
const adminYAML = twoHubs + `
pipelines:
  - {name: declared, partitions: 1, retention: 24h}
durability: {fsync: "interval:10ms"}
`

func startAdmin(t *testing.T) (string, *node.Node, *kadm.Client, *kgo.Client) {
	t.Helper()
	addr, n := startWith(t, adminYAML, kafka.Options{})
	cl := client(t, addr)
	return addr, n, kadm.NewClient(cl), cl
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func spec(t *testing.T, n *node.Node, name string) node.PipelineSpec {
	t.Helper()
	for _, p := range n.Pipelines() {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no pipeline %q", name)
	return node.PipelineSpec{}
}

// wantErr checks a per-topic admin answer: its error, and words its
// message must hold (messages are sent from CreateTopics v1).
func wantErr(t *testing.T, what string, err error, msg string, want *kerr.Error, words ...string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("%s: %v (%s), want success", what, err, msg)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: %v (%s), want %s", what, err, msg, want.Message)
		return
	}
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: message %q does not say %q", what, msg, w)
		}
	}
}

func TestAdminApiVersions(t *testing.T) {
	_, _, adm, _ := startAdmin(t)
	vs, err := adm.ApiVersions(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int16][2]int16{19: {0, 4}, 20: {0, 3}, 32: {0, 3}, 33: {0, 1}, 37: {0, 1}, 44: {0, 0}, 60: {0, 1}}
	vs.Each(func(b kadm.BrokerApiVersions) {
		if b.Err != nil {
			t.Fatal(b.Err)
		}
		for key, w := range want {
			lo, hi, ok := b.KeyVersions(key)
			if !ok || lo != w[0] || hi != w[1] {
				t.Errorf("key %d advertised %d-%d (%v), want %d-%d", key, lo, hi, ok, w[0], w[1])
			}
		}
	})
}

func TestCreateTopics(t *testing.T) {
	_, n, adm, cl := startAdmin(t)
	ctx := ctxFor(t)
	create := func(parts int32, rf int16, configs map[string]*string, topic string) (string, error) {
		t.Helper()
		rs, err := adm.CreateTopics(ctx, parts, rf, configs, topic)
		if err != nil {
			t.Fatal(err)
		}
		r, ok := rs[topic]
		if !ok {
			t.Fatalf("no answer for %s", topic)
		}
		return r.ErrMessage, r.Err
	}
	partitions := func(topic string) int {
		t.Helper()
		td, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		return len(td[topic].Partitions)
	}

	// Valid counts: -1 is the node's default (one per hub and lane);
	// any other count is that many partitions in the default lane, spread
	// over the hubs.
	msg, err := create(-1, -1, nil, "defaults")
	wantErr(t, "-1 partitions", err, msg, nil)
	if got := partitions("defaults"); got != 6 || spec(t, n, "defaults").Partitions != 1 {
		t.Errorf("defaults has %d partitions, want 6 (one per hub and lane)", got)
	}
	for _, count := range []int32{1, 2, 7, 12} {
		topic := fmt.Sprintf("count-%d", count)
		msg, err = create(count, 1, nil, topic)
		wantErr(t, topic, err, msg, nil)
		if got := partitions(topic); got != int(count) {
			t.Errorf("%s has %d partitions", topic, got)
		}
		for i, sl := range spec(t, n, topic).Slots {
			if want := []string{"tangier", "dakar"}[i%2]; sl.Hub != want || sl.Lane != event.Low {
				t.Errorf("%s partition %d is in %s lane %s, want %s lane low", topic, i, sl.Hub, sl.Lane, want)
			}
		}
	}

	for _, c := range []struct {
		what   string
		parts  int32
		rf     int16
		cfg    map[string]*string
		topic  string
		want   *kerr.Error
		saying []string
	}{
		{"0 partitions", 0, 1, nil, "zero", kerr.InvalidPartitions, []string{"-1"}},
		{"-2 partitions", -2, 1, nil, "minus", kerr.InvalidPartitions, []string{"-1"}},
		{"too many partitions", 1025, 1, nil, "huge", kerr.InvalidPartitions, []string{"1 to 1024"}},
		{"replication factor 3", 6, 3, nil, "replicated", kerr.InvalidReplicationFactor, []string{"only replica"}},
		{"replication factor 0", 6, 0, nil, "unreplicated", kerr.InvalidReplicationFactor, nil},
		{"existing topic", 6, 1, nil, "count-12", kerr.TopicAlreadyExists, nil},
		{"declared pipeline", -1, -1, nil, "declared", kerr.TopicAlreadyExists, nil},
		{"invalid name", 6, 1, nil, "a/b", kerr.InvalidTopicException, nil},
		{"name differing in case", 6, 1, nil, "Count-12", kerr.InvalidTopicException, []string{"only in case"}},
		{"unknown cleanup policy", 6, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compacted")}, "compacted", kerr.InvalidConfig, []string{"compact,delete"}},
		{"dirty ratio 0", 6, 1, map[string]*string{"min.cleanable.dirty.ratio": kadm.StringPtr("0")}, "dirty", kerr.InvalidConfig, []string{"min.cleanable.dirty.ratio"}},
		{"unknown config", 6, 1, map[string]*string{"local.retention.ms": kadm.StringPtr("1")}, "tiered", kerr.InvalidConfig, []string{"local.retention.ms", "retention.ms"}},
		{"min.insync.replicas 2", 6, 1, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, "isr", kerr.InvalidConfig, []string{"min.insync.replicas"}},
		{"retention.ms 0", 6, 1, map[string]*string{"retention.ms": kadm.StringPtr("0")}, "nothing", kerr.InvalidConfig, []string{"-1"}},
		{"retention.bytes not a number", 6, 1, map[string]*string{"retention.bytes": kadm.StringPtr("1GB")}, "gigabyte", kerr.InvalidConfig, []string{"1GB"}},
		{"unknown jurisdiction", 6, 1, map[string]*string{"sense.default.jurisdiction": kadm.StringPtr("XX")}, "nowhere", kerr.InvalidConfig, []string{"XX"}},
		{"unknown priority", 6, 1, map[string]*string{"sense.default.priority": kadm.StringPtr("urgent")}, "urgent", kerr.InvalidConfig, []string{"urgent"}},
		{"read-only config", 6, 1, map[string]*string{"sense.partitions.per.lane": kadm.StringPtr("2")}, "perlane", kerr.InvalidConfig, []string{"NumPartitions"}},
		{"null config value", 6, 1, map[string]*string{"retention.ms": nil}, "null", kerr.InvalidConfig, []string{"null"}},
	} {
		msg, err := create(c.parts, c.rf, c.cfg, c.topic)
		wantErr(t, c.what, err, msg, c.want, c.saying...)
	}
	// None of the refused topics exists.
	td, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(td.Names(), ","); got != "count-1,count-12,count-2,count-7,declared,defaults" {
		t.Errorf("topics %s, want count-1,count-12,count-2,count-7,declared,defaults", got)
	}

	// A config Sense does not set per topic is refused with any value but
	// the one it has: never accepted and ignored.
	for cfg, v := range map[string]string{"segment.bytes": "1073741824", "segment.ms": "3600000", "min.insync.replicas": "2",
		"compression.type": "zstd", "message.timestamp.type": "LogAppendTime"} {
		msg, err := create(6, 1, map[string]*string{cfg: kadm.StringPtr(v)}, "fixed")
		wantErr(t, cfg+"="+v, err, msg, kerr.InvalidConfig, cfg)
	}
	// Configs Sense keeps go into the pipeline's spec; the fixed ones are
	// accepted with the values they have.
	msg, err = create(6, 1, map[string]*string{
		"retention.ms":               kadm.StringPtr("3600000"),
		"retention.bytes":            kadm.StringPtr("1048576"),
		"cleanup.policy":             kadm.StringPtr("delete"),
		"sense.default.jurisdiction": kadm.StringPtr("SN"),
		"sense.default.priority":     kadm.StringPtr("critical"),
		"segment.bytes":              kadm.StringPtr("134217728"),
		"min.insync.replicas":        kadm.StringPtr("1"),
		"compression.type":           kadm.StringPtr("producer"),
		"max.message.bytes":          kadm.StringPtr("65536"),
	}, "configured")
	wantErr(t, "configs", err, msg, nil)
	s := spec(t, n, "configured")
	if s.Retention != time.Hour || s.RetentionBytes != 1<<20 || s.DefaultJurisdiction != "SN" || s.DefaultPriority != "critical" || len(s.Slots) != 6 || s.MaxMessageBytes != 65536 {
		t.Errorf("configured: spec %+v", s)
	}
	for i, sl := range s.Slots {
		if sl.Lane != event.Critical {
			t.Errorf("configured: partition %d in lane %s, want the default priority's lane, critical", i, sl.Lane)
		}
	}
	msg, err = create(6, 1, map[string]*string{"retention.ms": kadm.StringPtr("-1"), "retention.bytes": kadm.StringPtr("-1")}, "forever")
	wantErr(t, "retention -1", err, msg, nil)
	if s := spec(t, n, "forever"); s.Retention != 0 || s.RetentionBytes != 0 {
		t.Errorf("forever: retention %v, %d bytes", s.Retention, s.RetentionBytes)
	}

	// Validate only: the same checks, nothing created.
	rs, err := adm.ValidateCreateTopics(ctx, 18, 1, nil, "dry")
	if err != nil || rs["dry"].Err != nil {
		t.Fatalf("validate 18 partitions: %v, %v", err, rs["dry"].Err)
	}
	rs, err = adm.ValidateCreateTopics(ctx, 0, 1, nil, "dry")
	if err != nil || !errors.Is(rs["dry"].Err, kerr.InvalidPartitions) {
		t.Fatalf("validate 0 partitions: %v, %v", err, rs["dry"].Err)
	}
	if td, _ := adm.ListTopics(ctx); td.Has("dry") {
		t.Error("validate-only created the topic")
	}

	// What kadm cannot send: a replica assignment, and a topic twice.
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "assigned", -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Replicas = []int32{0}
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	twice := kmsg.NewCreateTopicsRequestTopic()
	twice.Topic, twice.NumPartitions, twice.ReplicationFactor = "twice", 6, 1
	req.Topics = append(req.Topics, rt, twice, twice)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 2 {
		t.Fatalf("%d answers, want 2 (one per topic)", len(resp.Topics))
	}
	for _, r := range resp.Topics {
		if r.ErrorCode != kerr.InvalidRequest.Code || r.ErrorMessage == nil {
			t.Errorf("%s: error %d, want INVALID_REQUEST with a message", r.Topic, r.ErrorCode)
		}
	}
}

func TestDeleteTopics(t *testing.T) {
	addr, _, adm, _ := startAdmin(t)
	ctx := ctxFor(t)
	if _, err := adm.CreateTopic(ctx, -1, -1, nil, "doomed"); err != nil {
		t.Fatal(err)
	}
	p := client(t, addr, kgo.DefaultProduceTopic("doomed"), kgo.UnknownTopicRetries(1), kgo.RecordRetries(3))
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("before")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	r, err := adm.DeleteTopic(ctx, "doomed")
	if err != nil {
		t.Fatalf("delete: %v (%s)", err, r.ErrMessage)
	}
	td, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if td.Has("doomed") {
		t.Error("a deleted topic is listed")
	}
	m, err := adm.Metadata(ctx, "doomed")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Topics["doomed"].Err; !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("metadata of the deleted topic: %v", err)
	}
	// Produce (auto-creation is off) fails.
	p2 := client(t, addr, kgo.DefaultProduceTopic("doomed"), kgo.UnknownTopicRetries(1), kgo.RecordRetries(3))
	if err := p2.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("produce to a deleted topic: %v", err)
	}
	if _, err := adm.DeleteTopic(ctx, "doomed"); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("deleting it again: %v", err)
	}

	// Created again, it starts empty. (A new client: kgo keeps what it
	// learnt of the topic's partitions for a while.)
	if _, err := adm.CreateTopic(ctx, -1, -1, nil, "doomed"); err != nil {
		t.Fatal(err)
	}
	ends, err := kadm.NewClient(client(t, addr)).ListEndOffsets(ctx, "doomed")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset != 0 {
			t.Errorf("re-created topic, partition %d: end offset %d (%v), want 0", o.Partition, o.Offset, o.Err)
		}
	})

	// A pipeline of the config file is refused and stays.
	if _, err := adm.DeleteTopic(ctx, "declared"); !errors.Is(err, kerr.PolicyViolation) {
		t.Errorf("deleting a declared pipeline: %v, want POLICY_VIOLATION", err)
	}
	if td, _ := adm.ListTopics(ctx); !td.Has("declared") {
		t.Error("the declared pipeline is gone")
	}
}

func TestDescribeConfigs(t *testing.T) {
	addr, n, adm, cl := startAdmin(t)
	ctx := ctxFor(t)
	if _, err := adm.CreateTopic(ctx, 12, 1, map[string]*string{"retention.ms": kadm.StringPtr("60000"), "sense.default.jurisdiction": kadm.StringPtr("MA")}, "described"); err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "described", "declared", "missing")
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		value  string
		source kmsg.ConfigSource
	}
	entries := func(name string) map[string]entry {
		rc, err := rcs.On(name, nil)
		if err != nil || rc.Err != nil {
			t.Fatalf("%s: %v, %v", name, err, rc.Err)
		}
		out := map[string]entry{}
		for _, c := range rc.Configs {
			out[c.Key] = entry{c.MaybeValue(), c.Source}
		}
		return out
	}
	dyn, def, static := kmsg.ConfigSourceDynamicTopicConfig, kmsg.ConfigSourceDefaultConfig, kmsg.ConfigSourceStaticBrokerConfig
	want := map[string]entry{
		"retention.ms":               {"60000", dyn},
		"retention.bytes":            {"-1", def},
		"cleanup.policy":             {"delete", def},
		"delete.retention.ms":        {"86400000", def},
		"min.compaction.lag.ms":      {"0", def},
		"min.cleanable.dirty.ratio":  {"0.5", def},
		"sense.default.jurisdiction": {"MA", dyn},
		"sense.default.priority":     {"low", def},
		"sense.partitions.per.lane":  {"0", dyn},
		"sense.hubs":                 {"tangier,dakar", def},
		"sense.layout":               {strings.Repeat("tangier:low,dakar:low,", 5) + "tangier:low,dakar:low", dyn},
		"max.message.bytes":          {"1048576", def},
		"segment.bytes":              {"134217728", def},
		"segment.ms":                 {"9223372036854775807", def},
		"min.insync.replicas":        {"1", def},
		"compression.type":           {"producer", def},
		"message.timestamp.type":     {"CreateTime", def},
	}
	got := entries("described")
	for k, w := range want {
		if got[k] != w {
			t.Errorf("described %s: %+v, want %+v", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("described: %d configs, want %d: %v", len(got), len(want), got)
	}
	// A pipeline of the config file: values set there are static.
	if got := entries("declared")["retention.ms"]; got != (entry{"86400000", static}) {
		t.Errorf("declared retention.ms: %+v", got)
	}
	if rc, _ := rcs.On("missing", nil); !errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v", rc.Err)
	}

	// The broker.
	bcs, err := adm.DescribeBrokerConfigs(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bcs.On("0", nil)
	if err != nil || bc.Err != nil {
		t.Fatalf("broker 0: %v, %v", err, bc.Err)
	}
	broker := map[string]string{}
	for _, c := range bc.Configs {
		broker[c.Key] = c.MaybeValue()
	}
	for k, w := range map[string]string{
		"sense.durability.fsync":    n.Durability().String(),
		"auto.create.topics.enable": "false",
		"num.partitions":            "6",
		"sense.hubs":                "tangier,dakar",
	} {
		if broker[k] != w {
			t.Errorf("broker %s = %q, want %q", k, broker[k], w)
		}
	}
	if n.Durability() != (seglog.Durability{Mode: seglog.SyncInterval, Interval: 10 * time.Millisecond}) {
		t.Errorf("the node's durability is %v, not the config's", n.Durability())
	}

	// Raw: a name filter, another broker, a resource type Sense has not.
	req := kmsg.NewPtrDescribeConfigsRequest()
	for _, r := range []struct {
		typ   kmsg.ConfigResourceType
		name  string
		names []string
	}{
		{kmsg.ConfigResourceTypeTopic, "described", []string{"retention.ms", "no.such.config"}},
		{kmsg.ConfigResourceTypeBroker, "7", nil},
		{kmsg.ConfigResourceTypeBrokerLogger, "0", nil},
	} {
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName, rr.ConfigNames = r.typ, r.name, r.names
		req.Resources = append(req.Resources, rr)
	}
	// Straight to broker 0: kgo would route broker 7's resource to broker 7.
	kresp, err := cl.Broker(0).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kresp.(*kmsg.DescribeConfigsResponse)
	if rs := resp.Resources; len(rs) != 3 {
		t.Fatalf("%d resources answered", len(rs))
	}
	if r := resp.Resources[0]; r.ErrorCode != 0 || len(r.Configs) != 1 || r.Configs[0].Name != "retention.ms" || r.Configs[0].ReadOnly {
		t.Errorf("filtered: %+v", r)
	}
	for _, r := range resp.Resources[1:] {
		if r.ErrorCode != kerr.InvalidRequest.Code || r.ErrorMessage == nil || len(r.Configs) != 0 {
			t.Errorf("resource %v %q: error %d, want INVALID_REQUEST with a message", r.ResourceType, r.ResourceName, r.ErrorCode)
		}
	}

	// Version 0 (no config source): IsDefault says which values are set.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req0 := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "described"
	req0.Resources = append(req0.Resources, rr)
	c.Write(rawRequest(req0, 0, 9))
	b := readResponse(t, c)
	resp0 := kmsg.NewPtrDescribeConfigsResponse()
	resp0.SetVersion(0)
	if err := resp0.ReadFrom(b[4:]); err != nil {
		t.Fatal(err)
	}
	for _, e := range resp0.Resources[0].Configs {
		if wantDefault := want[e.Name].source == def; e.IsDefault != wantDefault {
			t.Errorf("v0 %s: is default %v, want %v", e.Name, e.IsDefault, wantDefault)
		}
	}
}

func TestDescribeCluster(t *testing.T) {
	addr, _, _, cl := startAdmin(t)
	ctx := ctxFor(t)
	host, port, _ := net.SplitHostPort(addr)
	for _, ops := range []bool{false, true} {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.IncludeClusterAuthorizedOperations = ops
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Version != 1 || resp.ErrorCode != 0 || resp.ClusterID != "sense" || resp.ControllerID != 0 || resp.EndpointType != 1 {
			t.Fatalf("DescribeCluster: %+v", resp)
		}
		if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 0 || resp.Brokers[0].Host != host || port != strconv.Itoa(int(resp.Brokers[0].Port)) {
			t.Fatalf("brokers %+v, want node 0 at %s", resp.Brokers, addr)
		}
		if !ops && resp.ClusterAuthorizedOperations != -2147483648 {
			t.Errorf("operations not asked for: %d", resp.ClusterAuthorizedOperations)
		}
		if ops && (resp.ClusterAuthorizedOperations&(1<<kmsg.ACLOperationCreate) == 0 || resp.ClusterAuthorizedOperations&(1<<kmsg.ACLOperationAlter) != 0) {
			t.Errorf("authorized operations %b: want CREATE, not ALTER", resp.ClusterAuthorizedOperations)
		}
	}
	req := kmsg.NewPtrDescribeClusterRequest()
	req.EndpointType = 2
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.UnsupportedEndpointType.Code || resp.ErrorMessage == nil {
		t.Errorf("controllers: error %d, want UNSUPPORTED_ENDPOINT_TYPE with a message", resp.ErrorCode)
	}

	// The request whose tagged-field count exceeds its bytes, which kmsg
	// would loop on: the server closes the connection instead of answering
	// (expectClosed fails the test if it is still open by its deadline).
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frame := []byte{0, 0, 0, 0, 0, 60, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	c.Write(frame)
	expectClosed(t, c)
}

func TestCreatePartitions(t *testing.T) {
	addr, n, adm, cl := startAdmin(t)
	ctx := ctxFor(t)
	if _, err := adm.CreateTopic(ctx, -1, -1, nil, "fixed"); err != nil {
		t.Fatal(err)
	}
	check := func(what string, rs kadm.CreatePartitionsResponses, err error, want *kerr.Error, words ...string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		r := rs["fixed"]
		wantErr(t, what, r.Err, r.ErrMessage, want, words...)
	}
	rs, err := adm.UpdatePartitions(ctx, 6, "fixed")
	check("same count", rs, err, kerr.InvalidPartitions, "already has 6 partitions")
	rs, err = adm.UpdatePartitions(ctx, 3, "fixed")
	check("fewer", rs, err, kerr.InvalidPartitions, "would not be an increase")
	rs, err = adm.ValidateCreatePartitions(ctx, 6, "fixed")
	check("more, validate only", rs, err, nil)
	if td, err := adm.ListTopics(ctx, "fixed"); err != nil || len(td["fixed"].Partitions) != 6 {
		t.Fatalf("after validate only: %v, %d partitions", err, len(td["fixed"].Partitions))
	}
	// Six more: appended, one in each hub and lane, existing partitions
	// unchanged; every partition takes records.
	before := spec(t, n, "fixed").Layout()
	rs, err = adm.CreatePartitions(ctx, 6, "fixed")
	check("six more", rs, err, nil)
	rs, err = adm.UpdatePartitions(ctx, 13, "fixed")
	check("one more", rs, err, nil)
	after := spec(t, n, "fixed").Layout()
	bySlot := func(a, b node.Slot) int { return strings.Compare(a.Hub+a.Lane.String(), b.Hub+b.Lane.String()) }
	if len(after) != 13 || !slices.Equal(after[:6], before) ||
		!slices.Equal(slices.SortedFunc(slices.Values(after[6:12]), bySlot), slices.SortedFunc(slices.Values(before), bySlot)) {
		t.Fatalf("layout after growing: %v (was %v)", after, before)
	}
	rs, err = adm.UpdatePartitions(ctx, 1025, "fixed")
	check("too many", rs, err, kerr.InvalidPartitions, "at most 1024")
	rs, err = adm.UpdatePartitions(ctx, 12, "nope")
	if err != nil || !errors.Is(rs["nope"].Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("unknown topic: %v, %v", err, rs["nope"].Err)
	}
	rs, err = adm.UpdatePartitions(ctx, 12, "declared")
	if err != nil || !errors.Is(rs["declared"].Err, kerr.InvalidRequest) {
		t.Errorf("declared topic: %v, %v", err, rs["declared"].Err)
	}
	td, err := adm.ListTopics(ctx, "fixed")
	if err != nil || len(td["fixed"].Partitions) != 13 {
		t.Fatalf("after growing: %v, %d partitions", err, len(td["fixed"].Partitions))
	}
	producer := client(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(13) {
		lane := after[p].Lane
		rec := &kgo.Record{Topic: "fixed", Partition: p, Value: []byte("v"), Headers: []kgo.RecordHeader{{Key: "sense.priority", Value: []byte(lane.String())}}}
		if err := producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d (%s): %v", p, lane, err)
		}
	}

	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = "fixed", 12
	for range 6 {
		a := kmsg.NewCreatePartitionsRequestTopicAssignment()
		a.Replicas = []int32{0}
		rt.Assignment = append(rt.Assignment, a)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Topics[0]; r.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("with an assignment: error %d, want INVALID_REQUEST", r.ErrorCode)
	}
}

// TestDescribeClusterDecode: our DescribeCluster body decoder against
// valid, damaged and hostile bodies.
func TestDescribeClusterDecode(t *testing.T) {
	frame := func(version byte, body ...byte) []byte {
		// Key 60, version, correlation id 1, null client id, no header tags.
		return append([]byte{0, 60, 0, version, 0, 0, 0, 1, 0xff, 0xff, 0}, body...)
	}
	for _, c := range []struct {
		name     string
		frame    []byte
		ok       bool
		ops      bool
		endpoint int8
	}{
		{"v0", frame(0, 0, 0), true, false, 1},
		{"v0 with operations", frame(0, 1, 0), true, true, 1},
		{"v1 brokers", frame(1, 0, 1, 0), true, false, 1},
		{"v1 controllers", frame(1, 1, 2, 0), true, true, 2},
		{"v1 with an unknown tag", frame(1, 0, 1, 1, 7, 2, 0xaa, 0xbb), true, false, 1},
		{"empty body", frame(0), false, false, 0},
		{"v1 without endpoint type", frame(1, 0), false, false, 0},
		{"no tag section", frame(1, 0, 1), false, false, 0},
		{"tag longer than the body", frame(1, 0, 1, 1, 7, 9, 0xaa), false, false, 0},
		{"tag count past the body", frame(1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f), false, false, 0},
		{"bytes after the body", frame(0, 0, 0, 0), false, false, 0},
	} {
		p, err := kafka.ParseRequest(c.frame)
		if !c.ok {
			if err == nil || p.Req != nil {
				t.Errorf("%s: decoded (%v)", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		req, ok := p.Req.(*kmsg.DescribeClusterRequest)
		if !ok || req.IncludeClusterAuthorizedOperations != c.ops || req.EndpointType != c.endpoint || req.Version != p.Version {
			t.Errorf("%s: decoded %+v", c.name, p.Req)
		}
	}
}

// TestDeleteTopicEndsLongPoll: a fetch waiting for data on a topic that is
// deleted is answered at once with UNKNOWN_TOPIC_OR_PARTITION.
func TestDeleteTopicEndsLongPoll(t *testing.T) {
	addr, n, adm, _ := startAdmin(t)
	ctx := ctxFor(t)
	if _, err := adm.CreateTopic(ctx, -1, -1, nil, "polled"); err != nil {
		t.Fatal(err)
	}
	// The fetch is held by the server and unanswered when the topic is
	// deleted; its max_wait_ms outlasts ctx, so only the delete can end
	// it in time.
	answered := sendFetch(t, ctx, addr, n, fetchReq("polled", 0, 0, 45*time.Second, 1<<20))
	select {
	case a := <-answered:
		t.Fatalf("fetch of an empty partition answered before the delete: %s", a)
	default:
	}
	if _, err := adm.DeleteTopic(ctx, "polled"); err != nil {
		t.Fatal(err)
	}
	var a fetchAnswer
	select {
	case a = <-answered:
	case <-ctx.Done():
		t.Fatal("the fetch was still waiting after its topic was deleted")
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	if code := a.resp.Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("fetch of the deleted topic: error %d, want UNKNOWN_TOPIC_OR_PARTITION", code)
	}
}
