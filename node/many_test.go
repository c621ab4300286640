package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
)

// lowerFileLimit sets the process's open-file limit to the files open now
// plus extra, until the test ends.
func lowerFileLimit(t *testing.T, extra int) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(openFiles(t) + extra)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
}

// TestManyPipelines: a node of many pipelines (3 buffers each, the dev
// layout) on the real file system, under an open-file limit far below its
// buffer count: every creation succeeds, events produced to them are
// acknowledged, the node holds at most storage.max_open_files segment
// files, and after a restart (under the same limit) every pipeline and
// event is there. SENSE_MANY_PIPELINES sets the count (default 1,000;
// 10,000 takes about a minute under -race).
func TestManyPipelines(t *testing.T) {
	count := 1000
	if testing.Short() {
		count = 200
	}
	if v := os.Getenv("SENSE_MANY_PIPELINES"); v != "" {
		var err error
		if count, err = strconv.Atoi(v); err != nil {
			t.Fatalf("SENSE_MANY_PIPELINES=%q: %v", v, err)
		}
	}
	const maxOpen = 32
	dir := t.TempDir()
	reg, _ := jurisdiction.New([]string{"MA", "SN"}, nil)
	open := func() *Node {
		t.Helper()
		n, err := Open(Options{DataDir: dir, Registry: reg, Hubs: []HubSpec{{Name: "local", Jurisdiction: "*"}},
			Durability: seglog.Durability{Mode: seglog.SyncAlways}, MaxOpenFiles: maxOpen, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	lowerFileLimit(t, 3*maxOpen)
	before := openFiles(t)
	n := open()
	t0 := time.Now()
	for i := range count {
		if err := n.CreatePipeline(PipelineSpec{Name: fmt.Sprintf("p%d", i)}); err != nil {
			t.Fatalf("create pipeline %d: %v", i, err)
		}
	}
	created := time.Since(t0)
	// An event in every tenth pipeline (every buffer of it: one per lane).
	stride := 10
	t0 = time.Now()
	for i := 0; i < count; i += stride {
		for prio := event.Low; prio <= event.Critical; prio++ {
			if r := produceOne(t, n, fmt.Sprintf("p%d", i), Event{Value: []byte(prio.String()), HasPriority: true, Priority: prio}); r.Code != result.OK {
				t.Fatalf("produce to p%d: %+v", i, r)
			}
		}
	}
	produced := time.Since(t0)
	if st := n.files.Stats(); st.Open > maxOpen || st.MaxOpen > maxOpen+2 {
		t.Fatalf("segment files: %+v, limit %d", st, maxOpen)
	}
	if got := openFiles(t) - before; got > maxOpen+8 {
		t.Fatalf("the node holds %d files, limit %d", got, maxOpen)
	}
	metrics := map[string]float64{}
	mfs, err := n.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			metrics[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if open, ev := metrics["sense_storage_open_files"], metrics["sense_storage_file_evictions_total"]; open > maxOpen || ev == 0 {
		t.Fatalf("metrics: %v open segment files, %v evictions", open, ev)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	n = open()
	defer n.Close()
	reopened := time.Since(t0)
	if got := len(n.Pipelines()); got != count {
		t.Fatalf("after a restart: %d pipelines, want %d", got, count)
	}
	for i := 0; i < count; i += stride {
		parts, code := n.Partitions(fmt.Sprintf("p%d", i))
		if code != result.OK || len(parts) != 3 {
			t.Fatalf("p%d after a restart: %v, %d partitions", i, code, len(parts))
		}
		for _, p := range parts {
			if _, recs := storedRecords(t, n, fmt.Sprintf("p%d", i), p.Partition); len(recs) != 1 {
				t.Fatalf("p%d partition %d after a restart: %d events, want 1", i, p.Partition, len(recs))
			}
		}
	}
	if got := openFiles(t) - before; got > maxOpen+8 {
		t.Fatalf("after reading every buffer back, the node holds %d files, limit %d", got, maxOpen)
	}
	t.Logf("%d pipelines: created in %v (%v each), %d produces in %v, reopened in %v; segment files %+v",
		count, created, created/time.Duration(count), 3*count/stride, produced, reopened, n.files.Stats())
}

// TestPipelineRefusedAloneAtStart: a pipeline whose buffer cannot be
// opened when the node starts (here, damage inside what its checkpoint
// vouched for) is refused alone: Open succeeds, the error is logged naming
// the pipeline, the partition and the cause, its produce and fetch answer
// STORAGE_ERROR, and the other pipelines are served.
func TestPipelineRefusedAloneAtStart(t *testing.T) {
	mem := vfs.NewMem()
	reg, _ := jurisdiction.New([]string{"MA", "SN"}, nil)
	n, err := memNode(t, mem, reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"good", "bad"} {
		if err := n.CreatePipeline(PipelineSpec{Name: name, Slots: []Slot{{Hub: "tangier", Lane: event.Low}}}); err != nil {
			t.Fatal(err)
		}
		if r := produceOne(t, n, name, Event{Value: []byte("x")}); r.Code != result.OK {
			t.Fatal(r)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mem.Corrupt("/data/hubs/tangier/bad-0/00000000000000000000.log", 40, 0xff); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	n, err = Open(Options{DataDir: "/data", FS: mem, Registry: reg,
		Hubs:       []HubSpec{{Name: "tangier", Jurisdiction: "MA"}, {Name: "dakar", Jurisdiction: "SN"}},
		Durability: seglog.Durability{Mode: seglog.SyncAlways}, AutoCreate: true,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatalf("Open with one damaged pipeline: %v", err)
	}
	defer n.Close()
	line := logged.String()
	for _, want := range []string{"pipeline refused", "pipeline=bad", "partition 0", "00000000000000000000.log"} {
		if !strings.Contains(line, want) {
			t.Fatalf("the log does not say %q:\n%s", want, line)
		}
	}
	if r := produceOne(t, n, "bad", Event{Value: []byte("y")}); r.Code != result.StorageError {
		t.Fatalf("produce to the refused pipeline: %+v", r)
	}
	if _, _, _, code := n.Fetch(context.Background(), "bad", 0, 0, 1<<20, nil); code != result.StorageError {
		t.Fatalf("fetch from the refused pipeline: %v", code)
	}
	if _, code, _ := n.AppendRaw(context.Background(), "bad", 0, rawBatch()); code != result.StorageError {
		t.Fatalf("Kafka append to the refused pipeline: %v", code)
	}
	if r := produceOne(t, n, "good", Event{Value: []byte("z")}); r.Code != result.OK {
		t.Fatalf("produce to the other pipeline: %+v", r)
	}
	if r := produceOne(t, n, "new", Event{Value: []byte("z")}); r.Code != result.OK {
		t.Fatalf("creating another pipeline: %+v", r)
	}
}
