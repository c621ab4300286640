package kafka_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/edge/kafka"
	"github.com/sensehq/sense/node"
)

func TestMetadata(t *testing.T) {
	addr := start(t, twoHubs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := client(t, addr)
	meta := func(topic string, create bool) *kmsg.MetadataResponse {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = &topic
		req.Topics = append(req.Topics, rt)
		req.AllowAutoTopicCreation = create
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := meta("telemetry", false)
	if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 0 {
		t.Fatalf("brokers %+v", resp.Brokers)
	}
	if b := resp.Brokers[0]; b.Host != "127.0.0.1" || addr[len("127.0.0.1:"):] != strconv.Itoa(int(b.Port)) {
		t.Errorf("broker at %s:%d, want %s", b.Host, b.Port, addr)
	}
	if code := resp.Topics[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown topic without auto-creation: error %d", code)
	}
	resp = meta("telemetry", true)
	mt := resp.Topics[0]
	if mt.ErrorCode != 0 || len(mt.Partitions) != 6 { // 2 hubs x 3 lanes
		t.Fatalf("auto-created topic: error %d, %d partitions", mt.ErrorCode, len(mt.Partitions))
	}
	for i, p := range mt.Partitions {
		if p.Partition != int32(i) || p.Leader != 0 || len(p.Replicas) != 1 || len(p.ISR) != 1 {
			t.Errorf("partition %+v", p)
		}
	}
	if code := meta("bad name!", true).Topics[0].ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Errorf("invalid name: error %d", code)
	}

	// All topics.
	all := kmsg.NewPtrMetadataRequest()
	r, err := all.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Topics) != 1 || *r.Topics[0].Topic != "telemetry" {
		t.Errorf("all topics: %d", len(r.Topics))
	}
}

// TestMetadataDeniedPartitions: once a hub's policy denies a pipeline,
// Metadata gives its partitions there the error POLICY_VIOLATION (leader
// and replicas kept), and a franz-go producer with the default partitioner
// sends nothing to them: every record is stored in an allowed hub. The
// records stored in the denied hub before the change move to the other MA
// hub (the migrator of a node alone), and a consumer reads every record,
// those included.
func TestMetadataDeniedPartitions(t *testing.T) {
	addr, n := startWith(t, `
jurisdictions: [MA, SN]
hubs:
  - {name: tangier, jurisdiction: MA}
  - {name: dakhla, jurisdiction: MA}
  - {name: dakar, jurisdiction: SN}
pipelines: [{name: payments, partitions: 1}]
`, kafka.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	parts, _ := n.Partitions("payments")
	// 30 events in tangier's low lane, before the denial.
	tangier := parts[slices.IndexFunc(parts, func(p node.Partition) bool { return p.Hub == "tangier" })].Partition
	manual := client(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 30 {
		r := &kgo.Record{Topic: "payments", Partition: tangier, Value: []byte("before-" + strconv.Itoa(i))}
		if err := manual.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.SetHubPolicy("tangier", []string{"payments"}, nil); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("payments")
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, client(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	mps := resp.Topics[0].Partitions
	if len(mps) != len(parts) {
		t.Fatalf("%d partitions in Metadata, %d in the pipeline", len(mps), len(parts))
	}
	for i, mp := range mps {
		want := int16(0)
		if parts[i].Hub == "tangier" {
			want = kerr.PolicyViolation.Code
		}
		if mp.ErrorCode != want || mp.Leader != 0 || len(mp.Replicas) != 1 {
			t.Errorf("partition %d (hub %s): error %d, leader %d, replicas %v; want error %d, leader 0", mp.Partition, parts[i].Hub, mp.ErrorCode, mp.Leader, mp.Replicas, want)
		}
	}
	// A new producer learns of the denial from Metadata: RecordRetries(0)
	// would fail any record sent to tangier.
	cl := client(t, addr, kgo.DefaultProduceTopic("payments"), kgo.RecordRetries(0))
	for i := range 200 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after-" + strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("after-%d: %v", i, err)
		}
	}
	if _, hw, _ := n.Offsets("payments", tangier); hw != 30 {
		t.Fatalf("tangier's partition ends at offset %d; the 30 records produced before the denial were all it took", hw)
	}
	for start, hw, _ := n.Offsets("payments", tangier); start < hw; start, hw, _ = n.Offsets("payments", tangier) {
		if ctx.Err() != nil {
			t.Fatalf("tangier's partition still holds offsets %d to %d: the migrator did not move them", start, hw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cons := client(t, addr, kgo.ConsumeTopics("payments"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]bool{}
	for len(got) < 230 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 230 records", len(got))
		}
		// franz-go reports the partitions' POLICY_VIOLATION from
		// Metadata as fetch errors, and goes on reading them.
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, kerr.PolicyViolation) || parts[p].Hub != "tangier" {
				t.Fatalf("fetch error %s/%d: %v", topic, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
	}
}
