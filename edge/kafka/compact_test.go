package kafka_test

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/edge/kafka"
)

// TestCompactedTopic: a topic created with cleanup.policy compact through
// kadm, altered with IncrementalAlterConfigs, described; a record without
// a key is refused (CORRUPT_MESSAGE); after a key-overwrite workload the
// partition's buffer is compacted in the background, and a franz-go
// consumer from the beginning sees the latest value of every key, at the
// offset it was produced at, and fewer records than were produced.
func TestCompactedTopic(t *testing.T) {
	addr, n := startWith(t, twoHubs+"durability: {fsync: never, segment_bytes: 8KiB}\n", kafka.Options{})
	cl := client(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	adm := kadm.NewClient(cl)
	ctx := ctxFor(t)
	if _, err := adm.CreateTopic(ctx, -1, -1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, "table"); err != nil {
		t.Fatal(err)
	}
	dyn := kmsg.ConfigSourceDynamicTopicConfig
	wantConfig(t, "created", topicConfigs(t, ctx, adm, "table"), "cleanup.policy", "compact", dyn)
	msg, err := alterOne(t, ctx, adm.AlterTopicConfigs, "table",
		set("cleanup.policy", "compact,delete"), set("min.cleanable.dirty.ratio", "0.2"), set("delete.retention.ms", "3600000"))
	wantErr(t, "incremental SET", err, msg, nil)
	got := topicConfigs(t, ctx, adm, "table")
	wantConfig(t, "altered", got, "cleanup.policy", "compact,delete", dyn)
	wantConfig(t, "altered", got, "min.cleanable.dirty.ratio", "0.2", dyn)
	wantConfig(t, "altered", got, "delete.retention.ms", "3600000", dyn)
	if p := spec(t, n, "table"); p.CleanupPolicy != "compact,delete" || p.MinCleanableDirtyRatio != 0.2 || p.DeleteRetention != time.Hour {
		t.Fatalf("the catalog holds %+v", p)
	}

	// A record without a key.
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: "table", Partition: 0, Value: []byte("orphan")}).FirstErr()
	if !errors.Is(err, kerr.CorruptMessage) {
		t.Fatalf("a record without a key: %v, want CORRUPT_MESSAGE", err)
	}

	const keys, rounds = 200, 30
	latest := map[string]int64{}
	value := map[string]string{}
	produced := 0
	for r := range rounds {
		var recs []*kgo.Record
		for k := range keys {
			key := fmt.Sprintf("key-%03d", k)
			recs = append(recs, &kgo.Record{Topic: "table", Partition: 0, Key: []byte(key), Value: []byte(key + "=" + strconv.Itoa(r))})
		}
		res := cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		for _, pr := range res {
			latest[string(pr.Record.Key)] = pr.Record.Offset
			value[string(pr.Record.Key)] = string(pr.Record.Value)
			produced++
		}
	}
	// Background passes run as segments seal.
	deadline := time.Now().Add(20 * time.Second)
	for compactionRuns(t, n.Metrics.Registry, "table") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no compaction pass within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	consumed := consumeAll(t, addr, "table", 0)
	if len(consumed) >= produced {
		t.Fatalf("consumed %d records of the %d produced: nothing was compacted", len(consumed), produced)
	}
	lastSeen := map[string]kgo.Record{}
	for _, r := range consumed {
		lastSeen[string(r.Key)] = r
	}
	for key, off := range latest {
		r, ok := lastSeen[key]
		if !ok || r.Offset != off || string(r.Value) != value[key] {
			t.Fatalf("key %s: consumer's latest %+v; produced %q at %d", key, r, value[key], off)
		}
	}
	t.Logf("produced %d records, a consumer from the beginning reads %d", produced, len(consumed))
}

// consumeAll reads a partition from its start to its end.
func consumeAll(t *testing.T, addr, topic string, partition int32) []kgo.Record {
	t.Helper()
	ctx := ctxFor(t)
	adm := kadm.NewClient(client(t, addr))
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, partition)
	c := client(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}))
	var out []kgo.Record
	for {
		if len(out) > 0 && out[len(out)-1].Offset >= end.Offset-1 {
			return out
		}
		fs := c.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d records up to offset %d, the end is %d: %v", len(out), lastOffset(out), end.Offset, err)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, *r) })
	}
}

func lastOffset(rs []kgo.Record) int64 {
	if len(rs) == 0 {
		return -1
	}
	return rs[len(rs)-1].Offset
}

// compactionRuns sums sense_compaction_runs_total{pipeline}.
func compactionRuns(t *testing.T, reg interface {
	Gather() ([]*dto.MetricFamily, error)
}, pipeline string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "sense_compaction_runs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "pipeline" && l.GetValue() == pipeline {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
