package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestOffsetStoreSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := openOffsetStore(dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	tp := TopicPartition{Topic: "orders", Partition: 2}
	if err := s.commit("g1", []OffsetCommit{{tp, CommittedOffset{Offset: 10, LeaderEpoch: 3, Metadata: "m"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.commit("g1", []OffsetCommit{{tp, CommittedOffset{Offset: 42, LeaderEpoch: -1}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.commit("g2", []OffsetCommit{{tp, CommittedOffset{Offset: 7}}, {TopicPartition{"x", 0}, CommittedOffset{Offset: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.deleteGroup("g2"); err != nil {
		t.Fatal(err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	s, err = openOffsetStore(dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	got := s.fetch("g1")
	if len(got) != 1 || got[tp].Offset != 42 || got[tp].LeaderEpoch != -1 || got[tp].Metadata != "" || got[tp].CommitMs == 0 {
		t.Fatalf("g1 after reopen = %+v, want offset 42 epoch -1", got)
	}
	if g := s.fetch("g2"); len(g) != 0 {
		t.Fatalf("deleted group g2 came back: %+v", g)
	}
	if names := s.groupNames(); len(names) != 1 || names[0] != "g1" {
		t.Fatalf("groups = %v, want [g1]", names)
	}
}

func TestOffsetStoreCompacts(t *testing.T) {
	dir := t.TempDir()
	s, err := openOffsetStore(dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	s.slack = 50
	for i := range 400 {
		c := []OffsetCommit{{TopicPartition{"t", int32(i % 4)}, CommittedOffset{Offset: int64(i), Metadata: fmt.Sprint(i)}}}
		if err := s.commit(fmt.Sprintf("g%d", i%3), c); err != nil {
			t.Fatal(err)
		}
	}
	if s.records > 2*s.live+s.slack {
		t.Fatalf("log holds %d records for %d live keys: not compacted", s.records, s.live)
	}
	want := map[string]map[TopicPartition]CommittedOffset{}
	for _, g := range s.groupNames() {
		want[g] = s.fetch(g)
	}
	s.close()
	s, err = openOffsetStore(dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	// 400 commits went in; compaction keeps the log near the live keys.
	if s.live != 12 || s.records > 2*12+50 {
		t.Fatalf("after reopen: %d records, %d live keys; want 12 live (3 groups x 4 partitions) and at most %d records", s.records, s.live, 2*12+50)
	}
	for g, w := range want {
		got := s.fetch(g)
		for tp, c := range w {
			if got[tp].Offset != c.Offset || got[tp].Metadata != c.Metadata {
				t.Fatalf("group %s %v = %+v, want %+v", g, tp, got[tp], c)
			}
		}
	}
	// The last commit of g0 on partition 3 was i=399: 399%3 = 0, 399%4 = 3.
	if got := s.fetch("g0")[TopicPartition{"t", 3}].Offset; got != 399 {
		t.Fatalf("g0 t/3 = %d, want 399", got)
	}
}

// A crash between the two renames of a compaction leaves offsets.new and
// offsets.old; Open must take offsets.new.
func TestOffsetStoreFinishesInterruptedSwap(t *testing.T) {
	dir := t.TempDir()
	s, err := openOffsetStore(dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	tp := TopicPartition{Topic: "t", Partition: 0}
	s.commit("g", []OffsetCommit{{tp, CommittedOffset{Offset: 5}}})
	s.close()
	groups := filepath.Join(dir, "groups")
	// Pretend offsets was compacted into offsets.new (a copy) and the
	// first rename happened.
	if err := os.Rename(filepath.Join(groups, "offsets"), filepath.Join(groups, "offsets.new")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(groups, "offsets.old"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err = openOffsetStore(dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if got := s.fetch("g")[tp].Offset; got != 5 {
		t.Fatalf("offset after interrupted swap = %d, want 5", got)
	}
	if _, err := os.Stat(filepath.Join(groups, "offsets.old")); !os.IsNotExist(err) {
		t.Fatalf("offsets.old left behind: %v", err)
	}
}

func FuzzOffsetRecord(f *testing.F) {
	f.Add(appendOffsetKey(nil, "g", TopicPartition{"t", 1}), appendOffsetValue(nil, CommittedOffset{Offset: 3, Metadata: "x"}))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		g, tp, err := decodeOffsetKey(key)
		if err == nil {
			if k := appendOffsetKey(nil, g, tp); string(k) != string(key) {
				t.Fatalf("key round trip: %x != %x", k, key)
			}
		}
		c, err := decodeOffsetValue(value)
		if err == nil {
			if v := appendOffsetValue(nil, c); string(v) != string(value) {
				t.Fatalf("value round trip: %x != %x", v, value)
			}
		}
	})
}

// The lag metric is the high watermark minus the committed offset, per
// group and partition, and the node's commits survive its restart.
func TestConsumerGroupLagMetric(t *testing.T) {
	dir := t.TempDir()
	n, _ := threeHubs(t, dir)
	ctx := context.Background()
	for range 3 {
		if _, code, why := n.AppendRaw(ctx, "payments", 0, rawBatch()); code != OK {
			t.Fatalf("append: %v %s", code, why)
		}
	}
	if err := n.CommitOffsets("g", []OffsetCommit{{TopicPartition{"payments", 0}, CommittedOffset{Offset: 1}}}); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP sense_consumer_group_lag Records between a consumer group's committed offset and the partition's high watermark.
# TYPE sense_consumer_group_lag gauge
sense_consumer_group_lag{group="g",partition="0",pipeline="payments"} 2
`
	if err := testutil.GatherAndCompare(n.Metrics.Registry, strings.NewReader(want), "sense_consumer_group_lag"); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n, _ = threeHubs(t, dir)
	defer n.Close()
	if got := n.CommittedOffsets("g")[TopicPartition{"payments", 0}].Offset; got != 1 {
		t.Fatalf("committed offset after restart = %d, want 1", got)
	}
	if err := testutil.GatherAndCompare(n.Metrics.Registry, strings.NewReader(want), "sense_consumer_group_lag"); err != nil {
		t.Fatal(err)
	}
}
