package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
)

func memNode(t *testing.T, fs vfs.FS, reg *jurisdiction.Registry) (*Node, error) {
	t.Helper()
	return Open(Options{
		DataDir:  "/data",
		FS:       fs,
		Registry: reg,
		Hubs: []HubSpec{
			{Name: "tangier", Jurisdiction: "MA"},
			{Name: "dakar", Jurisdiction: "SN"},
		},
		Durability: seglog.Durability{Mode: seglog.SyncAlways},
		AutoCreate: true,
		// A small cache: segment files are closed and reopened all the
		// time, around appends, rolls and deletions.
		MaxOpenFiles: 4,
		Logger:       quiet,
	})
}

// acked is what the node acknowledged before a crash.
type acked struct {
	// crashed is set just before the power is cut: an operation that
	// returns after it is not counted (a real process would be dead; here
	// it runs on against the file system that survived).
	crashed  atomic.Bool
	mu       sync.Mutex
	events   map[string]Result // value -> where it was stored
	created  map[string]bool   // pipelines whose creation returned nil
	deleting map[string]bool   // pipelines whose deletion was asked for
	deleted  map[string]bool   // pipelines whose deletion returned nil
}

// TestNodeCrashes: power loss at random moments while events are produced
// and pipelines created and deleted, on the crash-simulating file system.
// After every crash the node reopens, the catalog is consistent (every
// pipeline it lists opens, its buffers hold only whole batches), every
// acknowledged event is at its offset with its value, every acknowledged
// creation stands and every acknowledged deletion too. The catalog log is
// compacted every few changes and the node keeps 4 segment files open, so
// crashes also hit compactions, torn catalog records, and files the cache
// closed and reopened.
func TestNodeCrashes(t *testing.T) {
	defer func(s int) { compactSlack = s }(compactSlack)
	compactSlack = 3
	reg, _ := jurisdiction.New([]string{"MA", "SN"}, nil)
	seeds := 12
	if testing.Short() {
		seeds = 4
	}
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 99))
		mem := vfs.NewMem()
		a := &acked{events: map[string]Result{}, created: map[string]bool{}, deleting: map[string]bool{}, deleted: map[string]bool{}}
		// Several crashes on the same disk.
		for round := range 3 {
			n, err := memNode(t, mem, reg)
			if err != nil {
				t.Fatalf("seed %d round %d: reopen after a crash: %v", seed, round, err)
			}
			checkAcked(t, n, a, seed, round)
			a.crashed.Store(false)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 2 {
				wrng := rand.New(rand.NewPCG(seed, uint64(round*10+w)))
				wg.Go(func() { crashWorkload(n, a, wrng, fmt.Sprintf("s%d-r%d-w%d", seed, round, w), stop) })
			}
			// Let some work be acknowledged, then cut the power.
			target := 5 + rng.IntN(40)
			for {
				a.mu.Lock()
				done := len(a.events) >= target*(round+1)
				a.mu.Unlock()
				if done {
					break
				}
				runtimeYield()
			}
			a.crashed.Store(true)
			mem.Crash(rng)
			close(stop)
			wg.Wait()
			n.Close() // its files are dead; this stops its goroutines
		}
		n, err := memNode(t, mem, reg)
		if err != nil {
			t.Fatalf("seed %d: final reopen: %v", seed, err)
		}
		checkAcked(t, n, a, seed, 3)
		n.Close()
	}
}

func runtimeYield() { runtime.Gosched() }

// crashWorkload produces, creates and deletes until stop, recording what
// was acknowledged.
func crashWorkload(n *Node, a *acked, rng *rand.Rand, prefix string, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		switch x := rng.IntN(20); {
		case x == 0:
			name := fmt.Sprintf("%s-p%d", prefix, i)
			if n.CreatePipeline(PipelineSpec{Name: name, Partitions: 1 + rng.IntN(2)}) == nil && !a.crashed.Load() {
				a.mu.Lock()
				a.created[name] = true
				a.mu.Unlock()
			}
		case x == 1:
			a.mu.Lock()
			var victim string
			for name := range a.created {
				if !a.deleting[name] {
					victim = name
					a.deleting[name] = true
					break
				}
			}
			a.mu.Unlock()
			if victim != "" && n.DeletePipeline(victim) == nil && !a.crashed.Load() {
				a.mu.Lock()
				a.deleted[victim] = true
				a.mu.Unlock()
			}
		default:
			pipeline := "events"
			req := &ProduceRequest{Pipeline: pipeline, ProducerID: -1}
			for j := range 1 + rng.IntN(5) {
				req.Events = append(req.Events, Event{Value: fmt.Appendf(nil, "%s-%d-%d", prefix, i, j)})
			}
			res := make([]Result, len(req.Events))
			if n.Produce(context.Background(), req, res) != nil || a.crashed.Load() {
				continue
			}
			a.mu.Lock()
			for j, r := range res {
				if r.Code == result.OK {
					a.events[string(req.Events[j].Value)] = r
				}
			}
			a.mu.Unlock()
		}
	}
}

// checkAcked checks what survived against what was acknowledged.
func checkAcked(t *testing.T, n *Node, a *acked, seed uint64, round int) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	names := map[string]bool{}
	for _, p := range n.Pipelines() {
		names[p.Name] = true
		if _, code := n.Partitions(p.Name); code != result.OK {
			t.Fatalf("seed %d round %d: the catalog lists %s, which does not open: %v", seed, round, p.Name, code)
		}
	}
	// An acknowledged creation stands unless a deletion was asked for; an
	// acknowledged deletion stands. (A deletion that failed half-way may
	// have happened or not.)
	for name := range a.created {
		switch {
		case a.deleted[name] && names[name]:
			t.Fatalf("seed %d round %d: pipeline %s is listed after its deletion was acknowledged", seed, round, name)
		case !a.deleting[name] && !names[name]:
			t.Fatalf("seed %d round %d: pipeline %s is gone, its creation was acknowledged", seed, round, name)
		}
	}
	if len(a.events) == 0 {
		return
	}
	got := map[string]Result{}
	parts, code := n.Partitions("events")
	if code != result.OK {
		t.Fatalf("seed %d round %d: pipeline events: %v", seed, round, code)
	}
	for _, p := range parts {
		_, recs := storedRecords(t, n, "events", p.Partition)
		off := int64(0)
		for _, r := range recs {
			got[string(r.Value)] = Result{Partition: p.Partition, Offset: off}
			off++
		}
	}
	for v, want := range a.events {
		if g, ok := got[v]; !ok || g.Partition != want.Partition || g.Offset != want.Offset {
			t.Fatalf("seed %d round %d: acknowledged event %s at %d/%d; after the crash: %+v (present %v)", seed, round, v, want.Partition, want.Offset, g, ok)
		}
	}
}

// An fsync error on the catalog: the creation fails with an error naming
// the catalog, the pipeline does not exist, now or after a restart, and
// the node goes on serving the pipelines it has.
func TestCatalogSyncError(t *testing.T) {
	reg, _ := jurisdiction.New([]string{"MA", "SN"}, nil)
	fault := vfs.NewFault(vfs.NewMem())
	n, err := memNode(t, fault, reg)
	if err != nil {
		t.Fatal(err)
	}
	if r := produceOne(t, n, "kept", Event{Value: []byte("a")}); r.Code != result.OK {
		t.Fatal(r)
	}
	fault.SetMatch(func(name string) bool { return strings.Contains(name, catalogName) })
	fault.FailSync(0, syscall.EIO)
	err = n.CreatePipeline(PipelineSpec{Name: "doomed"})
	if err == nil || !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "catalog") {
		t.Fatalf("create with a failing catalog fsync: %v", err)
	}
	if r := produceOne(t, n, "doomed", Event{Value: []byte("b")}); r.Code != result.StorageError {
		t.Fatalf("auto-create with a failing catalog fsync: %+v, want STORAGE_ERROR", r)
	}
	if slices := n.Pipelines(); len(slices) != 1 || slices[0].Name != "kept" {
		t.Fatalf("pipelines after the failures: %+v", slices)
	}
	if r := produceOne(t, n, "kept", Event{Value: []byte("c")}); r.Code != result.OK {
		t.Fatalf("produce to an existing pipeline meanwhile: %+v", r)
	}
	fault.Reset()
	n.Close()
	n, err = memNode(t, fault, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if ps := n.Pipelines(); len(ps) != 1 || ps[0].Name != "kept" {
		t.Fatalf("pipelines after restart: %+v", ps)
	}
}

// An fsync error on a buffer: the events are not acknowledged (a clear
// STORAGE_ERROR), later appends to the failed buffers fail too (the fsync
// is never retried), and after a restart the buffers serve again, holding
// what was acknowledged. (A refused event whose write reached the file
// before its fsync failed may be there too: its outcome is unknown, as
// after any storage error; an idempotent producer's retry of it is
// recognized.)
func TestBufferSyncError(t *testing.T) {
	reg, _ := jurisdiction.New([]string{"MA", "SN"}, nil)
	fault := vfs.NewFault(vfs.NewMem())
	n, err := memNode(t, fault, reg)
	if err != nil {
		t.Fatal(err)
	}
	if r := produceOne(t, n, "p", Event{Value: []byte("a")}); r.Code != result.OK {
		t.Fatal(r)
	}
	fault.SetMatch(func(name string) bool { return strings.HasSuffix(name, ".log") })
	fault.FailSync(0, syscall.EIO)
	for i := range 4 {
		if r := produceOne(t, n, "p", Event{Value: []byte("b")}); r.Code != result.StorageError {
			t.Fatalf("produce %d with failing fsyncs: %+v, want STORAGE_ERROR", i, r)
		}
	}
	fault.Reset()
	for i := range 4 {
		if r := produceOne(t, n, "p", Event{Value: []byte("b")}); r.Code != result.StorageError {
			t.Fatalf("produce %d after the fault cleared, to failed buffers: %+v, want STORAGE_ERROR", i, r)
		}
	}
	n.Close()
	n, err = memNode(t, fault, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if r := produceOne(t, n, "p", Event{Value: []byte("c")}); r.Code != result.OK {
		t.Fatalf("produce after a restart: %+v", r)
	}
	var values []string
	parts, _ := n.Partitions("p")
	for _, p := range parts {
		_, recs := storedRecords(t, n, "p", p.Partition)
		for _, r := range recs {
			values = append(values, string(r.Value))
		}
	}
	if !slices.Contains(values, "a") || !slices.Contains(values, "c") {
		t.Fatalf("stored after the restart: %q, want a and c among them", values)
	}
}
