package group

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sensehq/sense/vfs"
)

func TestOffsetStoreSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(nil, filepath.Join(dir, "groups"), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	tp := TopicPartition{Topic: "orders", Partition: 2}
	if err := s.Commit("g1", []OffsetCommit{{tp, CommittedOffset{Offset: 10, LeaderEpoch: 3, Metadata: "m"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("g1", []OffsetCommit{{tp, CommittedOffset{Offset: 42, LeaderEpoch: -1}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("g2", []OffsetCommit{{tp, CommittedOffset{Offset: 7}}, {TopicPartition{"x", 0}, CommittedOffset{Offset: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroup("g2"); err != nil {
		t.Fatal(err)
	}
	// g3 loses one of its two partitions' offsets (OffsetDelete), and a
	// partition it never committed is ignored.
	kept := TopicPartition{Topic: "orders", Partition: 1}
	if err := s.Commit("g3", []OffsetCommit{{tp, CommittedOffset{Offset: 5}}, {kept, CommittedOffset{Offset: 6}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOffsets("g3", []TopicPartition{tp, {Topic: "never", Partition: 0}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(nil, filepath.Join(dir, "groups"), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := s.Committed("g1")
	if len(got) != 1 || got[tp].Offset != 42 || got[tp].LeaderEpoch != -1 || got[tp].Metadata != "" || got[tp].CommitMs == 0 {
		t.Fatalf("g1 after reopen = %+v, want offset 42 epoch -1", got)
	}
	if g := s.Committed("g2"); len(g) != 0 {
		t.Fatalf("deleted group g2 came back: %+v", g)
	}
	if g := s.Committed("g3"); len(g) != 1 || g[kept].Offset != 6 {
		t.Fatalf("g3 after reopen = %+v, want only %v at 6", g, kept)
	}
	if names := s.Groups(); len(names) != 2 || names[0] != "g1" || names[1] != "g3" {
		t.Fatalf("groups = %v, want [g1 g3]", names)
	}
}

func TestOffsetStoreCompacts(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(nil, filepath.Join(dir, "groups"), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	s.slack = 50
	for i := range 400 {
		c := []OffsetCommit{{TopicPartition{"t", int32(i % 4)}, CommittedOffset{Offset: int64(i), Metadata: fmt.Sprint(i)}}}
		if err := s.Commit(fmt.Sprintf("g%d", i%3), c); err != nil {
			t.Fatal(err)
		}
	}
	if s.records > 2*s.live+s.slack {
		t.Fatalf("log holds %d records for %d live keys: not compacted", s.records, s.live)
	}
	want := map[string]map[TopicPartition]CommittedOffset{}
	for _, g := range s.Groups() {
		want[g] = s.Committed(g)
	}
	s.Close()
	s, err = Open(nil, filepath.Join(dir, "groups"), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// 400 commits went in; compaction keeps the log near the live keys.
	if s.live != 12 || s.records > 2*12+50 {
		t.Fatalf("after reopen: %d records, %d live keys; want 12 live (3 groups x 4 partitions) and at most %d records", s.records, s.live, 2*12+50)
	}
	for g, w := range want {
		got := s.Committed(g)
		for tp, c := range w {
			if got[tp].Offset != c.Offset || got[tp].Metadata != c.Metadata {
				t.Fatalf("group %s %v = %+v, want %+v", g, tp, got[tp], c)
			}
		}
	}
	// The last commit of g0 on partition 3 was i=399: 399%3 = 0, 399%4 = 3.
	if got := s.Committed("g0")[TopicPartition{"t", 3}].Offset; got != 399 {
		t.Fatalf("g0 t/3 = %d, want 399", got)
	}
}

// A crash in the middle of a compaction of the previous version left
// offsets.new without offsets (its first rename happened, not the second)
// and offsets.old; Open takes offsets.new and removes the leftover.
func TestOffsetStoreFinishesInterruptedLegacySwap(t *testing.T) {
	dir := t.TempDir()
	groups := filepath.Join(dir, "groups")
	s, err := Open(nil, groups, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	tp := TopicPartition{Topic: "t", Partition: 0}
	s.Commit("g", []OffsetCommit{{tp, CommittedOffset{Offset: 5}}})
	s.Close()
	// Back to the layout of the previous version, mid-swap.
	if err := os.Remove(filepath.Join(groups, currentFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(groups, "offsets"), filepath.Join(groups, "offsets.new")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(groups, "offsets.old"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err = Open(nil, groups, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Committed("g")[tp].Offset; got != 5 {
		t.Fatalf("offset after interrupted swap = %d, want 5", got)
	}
	if _, err := os.Stat(filepath.Join(groups, "offsets.old")); !os.IsNotExist(err) {
		t.Fatalf("offsets.old left behind: %v", err)
	}
}

// Power loss at random points of a run of commits and compactions, on the
// crash-simulating file system: after every crash, every acknowledged
// commit is there (with its latest value), and nothing half-written is.
func TestOffsetStoreCrashes(t *testing.T) {
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 7))
		fs := vfs.NewMem()
		dir := "/data/groups"
		model := map[string]map[TopicPartition]int64{}
		s, err := Open(fs, dir, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		s.slack = 20
		steps := 50 + rng.IntN(150)
		for i := range steps {
			g := fmt.Sprintf("g%d", rng.IntN(3))
			tp := TopicPartition{Topic: fmt.Sprintf("t%d", rng.IntN(3)), Partition: int32(rng.IntN(4))}
			if rng.IntN(10) == 0 {
				if err := s.DeleteGroup(g); err != nil {
					t.Fatalf("seed %d step %d: %v", seed, i, err)
				}
				delete(model, g)
				continue
			}
			if err := s.Commit(g, []OffsetCommit{{tp, CommittedOffset{Offset: int64(i)}}}); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, i, err)
			}
			if model[g] == nil {
				model[g] = map[TopicPartition]int64{}
			}
			model[g][tp] = int64(i)
		}
		fs.Crash(rng)
		s, err = Open(fs, dir, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("seed %d: reopen after crash: %v", seed, err)
		}
		for g, m := range model {
			got := s.Committed(g)
			for tp, off := range m {
				if got[tp].Offset != off {
					t.Fatalf("seed %d: %s %v = %d after the crash, acknowledged %d", seed, g, tp, got[tp].Offset, off)
				}
			}
			if len(got) != len(m) {
				t.Fatalf("seed %d: %s has %d partitions after the crash, want %d", seed, g, len(got), len(m))
			}
		}
		if gs := s.Groups(); len(gs) != len(model) {
			t.Fatalf("seed %d: groups %v after the crash, want %d", seed, gs, len(model))
		}
		s.Close()
	}
}

// An fsync error makes the commit fail with a clear error, and the store
// acknowledges nothing after it (seglog never retries a failed fsync).
func TestOffsetStoreSyncError(t *testing.T) {
	fs := vfs.NewFault(vfs.NewMem())
	s, err := Open(fs, "/data/groups", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp := TopicPartition{Topic: "t", Partition: 0}
	if err := s.Commit("g", []OffsetCommit{{tp, CommittedOffset{Offset: 1}}}); err != nil {
		t.Fatal(err)
	}
	fs.FailSync(0, syscall.EIO)
	err = s.Commit("g", []OffsetCommit{{tp, CommittedOffset{Offset: 2}}})
	if err == nil || !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "committed offsets") {
		t.Fatalf("commit with a failing fsync: %v", err)
	}
	fs.Reset()
	if err := s.Commit("g", []OffsetCommit{{tp, CommittedOffset{Offset: 3}}}); err == nil {
		t.Fatal("a commit after a failed fsync was acknowledged")
	}
	if got := s.Committed("g")[tp].Offset; got != 1 {
		t.Fatalf("committed offset %d in memory, only 1 was durable", got)
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
// group and partition, and skips partitions that are gone.
func TestConsumerGroupLagMetric(t *testing.T) {
	s, err := Open(nil, filepath.Join(t.TempDir(), "groups"), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Commit("g", []OffsetCommit{{TopicPartition{"payments", 0}, CommittedOffset{Offset: 1}}, {TopicPartition{"gone", 0}, CommittedOffset{Offset: 1}}}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewLagCollector(s, func(topic string, partition int32) (int64, bool) {
		return 3, topic == "payments" && partition == 0
	}))
	want := `
# HELP sense_consumer_group_lag Records between a consumer group's committed offset and the partition's high watermark.
# TYPE sense_consumer_group_lag gauge
sense_consumer_group_lag{group="g",partition="0",pipeline="payments"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sense_consumer_group_lag"); err != nil {
		t.Fatal(err)
	}
}

// gatedFS holds every File.Sync while armed, so a test can line writers up
// behind one fdatasync.
type gatedFS struct {
	vfs.FS
	mu      sync.Mutex
	armed   bool
	entered chan struct{} // gets a value when a held Sync starts
	release chan struct{} // closed to let the held Syncs go
	syncs   atomic.Int64
}

type gatedFile struct {
	vfs.File
	fs *gatedFS
}

func (g *gatedFS) Create(name string) (vfs.File, error) { return g.wrap(g.FS.Create(name)) }
func (g *gatedFS) OpenRW(name string) (vfs.File, error) { return g.wrap(g.FS.OpenRW(name)) }

func (g *gatedFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &gatedFile{File: f, fs: g}, nil
}

func (f *gatedFile) Sync() error {
	g := f.fs
	g.syncs.Add(1)
	g.mu.Lock()
	armed, release := g.armed, g.release
	g.mu.Unlock()
	if armed {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-release
	}
	return f.File.Sync()
}

// TestConcurrentCommitsShareSyncs: commits that arrive while one
// fdatasync of the offsets log runs are written at once and made durable
// together by the next one, not one fdatasync each; memory follows the
// log's order (a reopened store shows exactly what the live one showed).
func TestConcurrentCommitsShareSyncs(t *testing.T) {
	fs := &gatedFS{FS: vfs.NewMem(), entered: make(chan struct{}, 1), release: make(chan struct{})}
	dir := "groups"
	s, err := Open(fs, dir, slog.Default(), Preallocate(0)) // it counts the commits' fdatasyncs
	if err != nil {
		t.Fatal(err)
	}
	hot := TopicPartition{Topic: "orders", Partition: 0}
	if err := s.Commit("g", []OffsetCommit{{hot, CommittedOffset{Offset: 1}}}); err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	fs.armed = true
	fs.mu.Unlock()
	before := fs.syncs.Load()
	first := make(chan error, 1)
	go func() { first <- s.Commit("g", []OffsetCommit{{hot, CommittedOffset{Offset: 2}}}) }()
	<-fs.entered // the first commit's fdatasync is held
	const writers = 20
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			commits := []OffsetCommit{{hot, CommittedOffset{Offset: int64(100 + i)}}, {TopicPartition{"orders", int32(1 + i)}, CommittedOffset{Offset: int64(i)}}}
			if i%2 == 0 {
				errs <- s.Write([]SideRecord{{Kind: "test", Key: []byte(fmt.Sprint(i)), Value: []byte("v")}}, GroupCommits{Group: "g", Commits: commits})
			} else {
				errs <- s.Commit("g", commits)
			}
		}()
	}
	// Every writer gets into the log while the fdatasync is held (a
	// store that kept its lock through the fdatasync would let none in).
	giveUp := time.Now().Add(time.Minute)
	n := 0
	for n < writers+1 && time.Now().Before(giveUp) {
		runtime.Gosched()
		if s.mu.TryLock() {
			n = len(s.pending)
			s.mu.Unlock()
		}
	}
	fs.mu.Lock()
	fs.armed = false
	fs.mu.Unlock()
	close(fs.release)
	if n != writers+1 {
		t.Fatalf("%d of %d writes got into the log while one fdatasync ran", n, writers+1)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// One held fdatasync, then one for the twenty writes behind it (a
	// write on its own would take twenty).
	if n := fs.syncs.Load() - before; n > 2 {
		t.Fatalf("%d commits took %d fdatasyncs, want at most 2", writers+1, n)
	}
	live := s.Committed("g")
	if len(live) != writers+1 {
		t.Fatalf("group g has %d partitions committed, want %d", len(live), writers+1)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(fs, dir, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	again := s.Committed("g")
	if !maps.Equal(live, again) {
		t.Fatalf("reopened store shows %v, the live one showed %v", again, live)
	}
}
