package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A group's committed offset, acknowledged by the server, survives a
// SIGKILL of the server, and a consumer of the group started after the
// restart resumes right after it.
func TestKafkaCommittedOffsetSurvivesKill(t *testing.T) {
	n := startNode(t, t.TempDir(), "--log-level", "warn")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const topic, group = "audit", "auditors"

	p, err := kgo.NewClient(kgo.SeedBrokers(n.kafka), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, 100)
	for i := range recs {
		recs[i] = &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p.Close()

	// Commit offset 60 of partition 0, as a consumer that assigns
	// partitions itself would (generation -1, no member).
	admin, err := kgo.NewClient(kgo.SeedBrokers(n.kafka))
	if err != nil {
		t.Fatal(err)
	}
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.Generation = group, -1
	ot := kmsg.NewOffsetCommitRequestTopic()
	ot.Topic = topic
	op := kmsg.NewOffsetCommitRequestTopicPartition()
	op.Partition, op.Offset = 0, 60
	ot.Partitions = append(ot.Partitions, op)
	oc.Topics = append(oc.Topics, ot)
	resp, err := oc.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
		t.Fatalf("commit: %v", err)
	}
	admin.Close()

	n.kill()
	n.start()

	c, err := kgo.NewClient(kgo.SeedBrokers(n.kafka), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var first *kgo.Record
	for first == nil {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no record consumed after the restart")
		}
		fs.EachRecord(func(r *kgo.Record) {
			if first == nil && r.Partition == 0 {
				first = r
			}
		})
	}
	if first.Offset != 60 || string(first.Value) != "r60" {
		t.Fatalf("after the restart the group resumed at offset %d (%q), want 60 (\"r60\")", first.Offset, first.Value)
	}
}
