package node

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/router"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
)

func produceOne(t *testing.T, n *Node, pipeline string, ev Event) Result {
	t.Helper()
	res := make([]Result, 1)
	if err := n.Produce(context.Background(), &ProduceRequest{Pipeline: pipeline, ProducerID: -1, Events: []Event{ev}}, res); err != nil {
		t.Fatal(err)
	}
	return res[0]
}

// A pipeline of any partition count: explicit layouts route by hub and
// lane, a priority without a lane of its own goes to the default lane,
// hubs without a partition refuse with NO_COMPLIANT_HUB, and the layout
// survives a restart.
func TestAnyPartitionCount(t *testing.T) {
	dir := t.TempDir()
	n, reg := threeHubs(t, dir)
	hubs := []string{"tangier", "dakhla", "dakar"}
	for _, count := range []int{1, 2, 7, 11, 31} {
		name := "p" + string(rune('a'+count%26))
		if err := n.CreatePipeline(PipelineSpec{Name: name, Slots: Spread(nil, hubs, []event.Priority{event.Low}, count)}); err != nil {
			t.Fatalf("%d partitions: %v", count, err)
		}
		parts, _ := n.Partitions(name)
		if len(parts) != count {
			t.Fatalf("%s: %d partitions, want %d", name, len(parts), count)
		}
		for i, p := range parts {
			if p.Hub != hubs[i%3] || p.Lane != event.Low || p.Index != i/3 {
				t.Fatalf("%s partition %d: %+v", name, i, p)
			}
		}
	}
	// One partition, in tangier (MA): an MA event of any priority lands
	// there; an SN event has no compliant buffer.
	ma, _ := reg.Parse("MA")
	sn, _ := reg.Parse("SN")
	for _, prio := range []event.Priority{event.Low, event.Critical} {
		if r := produceOne(t, n, "pb", Event{Value: []byte("x"), Mask: ma, HasPriority: true, Priority: prio}); r.Code != result.OK || r.Partition != 0 {
			t.Fatalf("MA %s event on a 1-partition pipeline: %+v", prio, r)
		}
	}
	if r := produceOne(t, n, "pb", Event{Value: []byte("x"), Mask: sn}); r.Code != result.NoCompliantHub {
		t.Fatalf("SN event on a pipeline with no partition in dakar: %+v", r)
	}
	// The stored records say the priority they came with.
	_, recs := storedRecords(t, n, "pb", 0)
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	if _, p, _ := routingOf(t, &recs[1]); p != event.Critical {
		t.Fatalf("critical event stored with priority %s", p)
	}

	// Grow a standard pipeline: existing partitions keep their place.
	if err := n.AddPartitions("payments", 20); !errors.Is(err, ErrPipelineDeclared) {
		t.Fatalf("growing a declared pipeline: %v", err)
	}
	if err := n.CreatePipeline(PipelineSpec{Name: "grow"}); err != nil {
		t.Fatal(err)
	}
	before, _ := n.Partitions("grow")
	if err := n.AddPartitions("grow", len(before)+4); err != nil {
		t.Fatal(err)
	}
	if err := n.AddPartitions("grow", len(before)); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("shrinking: %v", err)
	}
	after, _ := n.Partitions("grow")
	if len(after) != len(before)+4 {
		t.Fatalf("%d partitions after growing by 4 from %d", len(after), len(before))
	}
	for i := range before {
		if after[i].Buffer != before[i].Buffer {
			t.Fatalf("partition %d moved: %+v -> %+v", i, before[i].Buffer, after[i].Buffer)
		}
	}
	// The new ones reach every hub's low lane first.
	for i, want := range []string{"tangier", "dakhla", "dakar", "tangier"} {
		if b := after[len(before)+i]; b.Hub != want {
			t.Fatalf("new partition %d in %s lane %s, want %s", len(before)+i, b.Hub, b.Lane, want)
		}
	}
	if r := produceOne(t, n, "grow", Event{Value: []byte("x"), Mask: ma}); r.Code != result.OK {
		t.Fatalf("produce after growing: %+v", r)
	}
	after, _ = n.Partitions("grow")

	// Restart: the layouts are what they were.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n, _ = threeHubs(t, dir)
	defer n.Close()
	again, _ := n.Partitions("grow")
	if len(again) != len(after) {
		t.Fatalf("after restart: %d partitions, want %d", len(again), len(after))
	}
	for i := range after {
		if again[i].Buffer != after[i].Buffer || again[i].HighWatermark != after[i].HighWatermark {
			t.Fatalf("after restart partition %d: %+v, was %+v", i, again[i], after[i])
		}
	}
	if parts, _ := n.Partitions("pf"); len(parts) != 31 {
		t.Fatalf("31-partition pipeline after restart: %d", len(parts))
	}
}

// A catalog written before layouts existed (version 1: pipelines.json
// with no version field) and one of version 2 (pipelines.json, explicit
// layouts) open with the same partitions and data, and are rewritten as
// the log of version 3, pipelines.json removed.
func TestCatalogVersion1Migrates(t *testing.T) {
	for _, version := range []int{1, 2} {
		dir := t.TempDir()
		n, _ := threeHubs(t, dir)
		if err := n.CreatePipeline(PipelineSpec{Name: "old", Partitions: 2}); err != nil {
			t.Fatal(err)
		}
		if version == 2 {
			if err := n.CreatePipeline(PipelineSpec{Name: "sized", Slots: []Slot{{"tangier", event.Critical}, {"dakar", event.Low}}}); err != nil {
				t.Fatal(err)
			}
		}
		appendN(t, n, "old", 7, 3)
		before, _ := n.Partitions("old")
		specs := n.Pipelines()
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		// Replace the log with the JSON document that version wrote.
		doc := map[string]any{"pipelines": specs}
		if version == 2 {
			doc["version"] = 2
		}
		raw, _ := json.Marshal(doc)
		if err := os.Remove(filepath.Join(dir, catalogName)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, legacyName), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		n, _ = threeHubs(t, dir)
		after, _ := n.Partitions("old")
		if !slices.EqualFunc(before, after, func(a, b Partition) bool { return a == b }) {
			t.Fatalf("version %d: after migration: %+v, was %+v", version, after, before)
		}
		if got := n.Pipelines(); len(got) != len(specs) {
			t.Fatalf("version %d: after migration: %d pipelines, was %d", version, len(got), len(specs))
		}
		n.Close()
		if _, err := os.Stat(filepath.Join(dir, legacyName)); !os.IsNotExist(err) {
			t.Fatalf("version %d: pipelines.json still there after the migration: %v", version, err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, catalogName))
		if err != nil {
			t.Fatal(err)
		}
		if got, _, _, err := decodeCatalog(raw); err != nil || len(got) != len(specs) {
			t.Fatalf("version %d: the migrated log: %d pipelines, %v", version, len(got), err)
		}
		// A catalog from a newer version is refused, naming the version:
		// the log's header, and a JSON document.
		binary.BigEndian.PutUint32(raw[8:], 99)
		binary.BigEndian.PutUint32(raw[12:], batch.Checksum(raw[:12]))
		if err := os.WriteFile(filepath.Join(dir, catalogName), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(Options{DataDir: dir, Registry: n.reg, Hubs: n.opts.Hubs, Logger: quiet}); err == nil || !strings.Contains(err.Error(), "version 99") {
			t.Fatalf("newer catalog log: %v", err)
		}
		os.Remove(filepath.Join(dir, catalogName))
		if err := os.WriteFile(filepath.Join(dir, legacyName), []byte(`{"version": 99, "pipelines": []}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(Options{DataDir: dir, Registry: n.reg, Hubs: n.opts.Hubs, Logger: quiet}); err == nil || !strings.Contains(err.Error(), "version 99") {
			t.Fatalf("newer catalog: %v", err)
		}
	}
}

// Spread fills every hub's first lane before a second partition in any.
func TestSpread(t *testing.T) {
	got := Spread(nil, []string{"a", "b"}, []event.Priority{event.Low, event.Critical}, 5)
	want := []Slot{{"a", event.Low}, {"b", event.Low}, {"a", event.Critical}, {"b", event.Critical}, {"a", event.Low}}
	if !slices.Equal(got, want) {
		t.Fatalf("Spread = %v, want %v", got, want)
	}
	if n := router.MaxBuffers; n < MaxPartitions {
		t.Fatal("MaxPartitions above the router's limit")
	}
}

// FuzzCatalog: whatever pipelines.json holds, Open returns a node or an
// error naming the problem; it never panics, and a node it returns serves
// every pipeline its catalog lists.
func FuzzCatalog(f *testing.F) {
	f.Add([]byte(`{"version": 2, "pipelines": [{"name": "p", "partitions": 1, "hubs": ["local"]}]}`))
	f.Add([]byte(`{"pipelines": [{"name": "old", "partitions": 2, "hubs": ["local"]}]}`))
	f.Add([]byte(`{"version": 2, "pipelines": [{"name": "x", "slots": [{"hub": "local", "lane": "critical"}, {"hub": "nowhere", "lane": "low"}], "hubs": ["local"]}]}`))
	f.Add([]byte(`{"version": 2, "pipelines": [{"name": "x", "partitions": -5, "hubs": ["local", "local"]}]}`))
	f.Add([]byte(`{"version": 3}`))
	f.Add([]byte(`[`))
	reg, _ := jurisdiction.New([]string{"MA"}, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		mem := vfs.NewMem()
		if err := mem.MkdirAll("/data"); err != nil {
			t.Fatal(err)
		}
		if err := vfs.WriteFileAtomic(mem, "/data/pipelines.json", raw); err != nil {
			t.Fatal(err)
		}
		n, err := Open(Options{DataDir: "/data", FS: mem, Registry: reg, Hubs: []HubSpec{{Name: "local", Jurisdiction: "*"}},
			Durability: seglog.Durability{Mode: seglog.SyncNever}, Logger: quiet})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		defer n.Close()
		for _, p := range n.Pipelines() {
			if parts, code := n.Partitions(p.Name); code != result.OK || len(parts) != p.NumPartitions() {
				t.Fatalf("pipeline %q of the catalog: %v, %d partitions, spec says %d", p.Name, code, len(parts), p.NumPartitions())
			}
		}
	})
}
