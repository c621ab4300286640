package server_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/server"
)

// compactedHub: one hub on every node, a compacted pipeline in segments
// of 32 KiB.
const compactedHub = `
jurisdictions: [MA]
hubs: [{name: tangier, jurisdiction: MA}]
pipelines: [{name: table, partitions: 1, cleanup_policy: compact, min_cleanable_dirty_ratio: 0.2}]
durability: {segment_bytes: 32KiB}
`

// TestClusterCompaction: a replicated, compacted pipeline. Every replica
// compacts (its leader's control record), the replicas hold the same
// records at the same offsets, every key's latest value is there, at its
// offset; a replica whose buffer directory is wiped while it is stopped
// catches up with the same records.
func TestClusterCompaction(t *testing.T) {
	c := sensetest.StartCluster(t, 3, compactedHub)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := client.Dial(ctx, client.Options{Addr: c.NativeAddr(0)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p, err := cl.NewProducer(ctx, client.ProducerOptions{Pipeline: "table", MaxRetries: 50})
	if err != nil {
		t.Fatal(err)
	}
	const keys, rounds = 100, 40
	value := map[string]string{}
	for r := range rounds {
		for k := range keys {
			key := fmt.Sprintf("k-%03d", k)
			v := fmt.Sprintf("%s=%d/%0200d", key, r, r)
			value[key] = v
			p.Send(client.Event{Key: []byte(key), Value: []byte(v)}, func(res client.Result) {
				if res.Err != nil {
					t.Errorf("%s: %v", key, res.Err)
				}
			})
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	if t.Failed() {
		t.FailNow()
	}
	produced := keys * rounds

	// Every node compacts, and they end up agreeing.
	var ref map[int64]string
	deadline := time.Now().Add(60 * time.Second)
	for {
		runs := true
		for _, s := range c.Nodes {
			runs = runs && compactionRuns(t, s) > 0
		}
		recs := make([]map[int64]string, len(c.Nodes))
		for i, s := range c.Nodes {
			recs[i] = records(t, s)
		}
		same := maps.Equal(recs[0], recs[1]) && maps.Equal(recs[0], recs[2])
		if runs && same && len(recs[0]) < produced/2 {
			ref = recs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after the workload: compaction ran on every node: %v; the nodes hold %d, %d and %d records (of %d produced), the same: %v",
				runs, len(recs[0]), len(recs[1]), len(recs[2]), produced, same)
		}
		time.Sleep(100 * time.Millisecond)
	}
	checkLatest(t, ref, value)

	// A replica wiped while stopped catches up: the same records.
	f := (c.Leader("table", 0, 10*time.Second) + 1) % 3
	c.Stop(f)
	if err := os.RemoveAll(filepath.Join(c.Config(f).Node.DataDir, "hubs", "tangier", "table-0")); err != nil {
		t.Fatal(err)
	}
	c.Start(f)
	deadline = time.Now().Add(60 * time.Second)
	for {
		got := records(t, c.Nodes[f])
		if maps.Equal(got, ref) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the wiped replica n%d holds %d records 60s after it restarted; the others %d", f+1, len(got), len(ref))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d events produced; every replica holds %d", produced, len(ref))
}

// records reads every record of table/0 on node s, by offset.
func records(t *testing.T, s *server.Server) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	eachRecordAt(t, s, "table", 0, func(off int64, r *batch.Record) {
		out[off] = string(r.Key) + "\x00" + string(r.Value)
	})
	return out
}

// checkLatest checks that the last record of each key in recs holds its
// latest value.
func checkLatest(t *testing.T, recs map[int64]string, value map[string]string) {
	t.Helper()
	offs := make([]int64, 0, len(recs))
	for off := range recs {
		offs = append(offs, off)
	}
	latest := map[string]string{}
	for _, off := range sortedInt64(offs) {
		key, v, _ := strings.Cut(recs[off], "\x00")
		latest[key] = v
	}
	for key, v := range value {
		if latest[key] != v {
			t.Fatalf("key %s: the latest record read holds %q, want %q", key, latest[key], v)
		}
	}
}

// eachRecordAt calls fn with every record of a partition on node s and
// its offset, from the partition's start to its high watermark.
func eachRecordAt(t *testing.T, s *server.Server, pipeline string, partition int32, fn func(off int64, r *batch.Record)) {
	t.Helper()
	off, _, code := s.Node.Offsets(pipeline, partition)
	if code != result.OK {
		t.Fatalf("offsets of %s/%d: %s", pipeline, partition, code)
	}
	for {
		_, hw, code := s.Node.Offsets(pipeline, partition)
		if code != result.OK {
			t.Fatalf("offsets of %s/%d: %s", pipeline, partition, code)
		}
		if off >= hw {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b, _, _, code := s.Node.Fetch(ctx, pipeline, partition, off, 1<<20, nil)
		cancel()
		if code != result.OK {
			t.Fatalf("fetch %s/%d at %d: %s", pipeline, partition, off, code)
		}
		for len(b) > 0 {
			h, err := batch.ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			if h.Attributes&batch.AttrControl == 0 {
				recs, err := batch.Decompress(nil, b[:h.Size()])
				if err != nil {
					t.Fatal(err)
				}
				it, err := batch.NewIterRecords(recs, h.RecordCount)
				if err != nil {
					t.Fatal(err)
				}
				for it.Next() {
					fn(h.BaseOffset+int64(it.Record().OffsetDelta), it.Record())
				}
				if err := it.Err(); err != nil {
					t.Fatal(err)
				}
			}
			off = h.NextOffset()
			b = b[h.Size():]
		}
	}
}

func sortedInt64(s []int64) []int64 {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// compactionRuns sums sense_compaction_runs_total on node s.
func compactionRuns(t *testing.T, s *server.Server) float64 {
	t.Helper()
	mfs, err := s.Node.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "sense_compaction_runs_total" {
			for _, m := range mf.GetMetric() {
				n += counterValue(m)
			}
		}
	}
	return n
}

func counterValue(m *dto.Metric) float64 { return m.GetCounter().GetValue() }
