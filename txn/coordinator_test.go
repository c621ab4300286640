package txn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/group"
)

type markers struct {
	mu   sync.Mutex
	got  map[TopicPartition][]batch.Marker
	fail bool
}

func (m *markers) write(_ context.Context, tp TopicPartition, mk batch.Marker) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("injected marker failure")
	}
	if m.got == nil {
		m.got = map[TopicPartition][]batch.Marker{}
	}
	m.got[tp] = append(m.got[tp], mk)
	return nil
}

func (m *markers) of(tp TopicPartition) []batch.Marker {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]batch.Marker(nil), m.got[tp]...)
}

type env struct {
	dir   string
	store *group.Store
	mk    *markers
	c     *Coordinator
	pids  int64
	// openTxn, when set, is the coordinator's Config.OpenTxn.
	openTxn func(tp TopicPartition, pid int64) (OpenTxnInfo, error)
}

func open(t *testing.T, e *env) {
	t.Helper()
	var err error
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if e.store, err = group.Open(nil, e.dir, quiet); err != nil {
		t.Fatal(err)
	}
	e.c, err = New(Config{Store: e.store, WriteMarker: e.mk.write, Tick: time.Hour, Logger: quiet, OpenTxn: e.openTxn,
		NewProducerID: func() (int64, error) { e.pids++; return 1000 + e.pids, nil }})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) close() {
	e.c.Close()
	e.store.Close()
}

func newEnv(t *testing.T) *env { return newEnvWith(t, nil) }

// newEnvWith is newEnv with the coordinator's Config.OpenTxn.
func newEnvWith(t *testing.T, openTxn func(tp TopicPartition, pid int64) (OpenTxnInfo, error)) *env {
	e := &env{dir: filepath.Join(t.TempDir(), "groups"), mk: &markers{}, openTxn: openTxn}
	open(t, e)
	t.Cleanup(func() { e.c.Close(); e.store.Close() })
	return e
}

var (
	ctx = context.Background()
	tpA = TopicPartition{Topic: "out", Partition: 0}
	tpB = TopicPartition{Topic: "out", Partition: 1}
	in0 = TopicPartition{Topic: "in", Partition: 0}
)

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	s := e.c.NewSession()
	pid, epoch, err := e.c.InitProducerID(ctx, s, "t1", time.Minute)
	if err != nil || epoch != 0 {
		t.Fatal(pid, epoch, err)
	}
	if err := e.c.AddPartitions(ctx, s, "t1", pid, epoch, []TopicPartition{tpA, tpB}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.BeginProduce(ctx, pid, epoch, TopicPartition{Topic: "other"}); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("produce to a partition not added: %v", err)
	}
	done, err := e.c.BeginProduce(ctx, pid, epoch, tpA)
	if err != nil {
		t.Fatal(err)
	}
	done(true)
	if err := e.c.AddOffsets(ctx, s, "t1", pid, epoch, "g"); err != nil {
		t.Fatal(err)
	}
	oc := []group.OffsetCommit{{TopicPartition: in0, CommittedOffset: group.CommittedOffset{Offset: 17, LeaderEpoch: -1}}}
	if err := e.c.CommitOffsets(ctx, "t1", pid, epoch, "g", oc); err != nil {
		t.Fatal(err)
	}
	if got := e.store.Committed("g"); len(got) != 0 {
		t.Fatalf("offsets visible before the commit: %v", got)
	}
	if err := e.c.EndTxn(ctx, s, "t1", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	if got := e.store.Committed("g")[in0].Offset; got != 17 {
		t.Fatalf("committed offset %d, want 17", got)
	}
	if m := e.mk.of(tpA); len(m) != 1 || !m[0].Commit || m[0].ProducerID != pid {
		t.Fatalf("markers of %v: %+v", tpA, m)
	}
	// A retry of the same EndTxn succeeds, the opposite outcome does not.
	if err := e.c.EndTxn(ctx, s, "t1", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	if err := e.c.EndTxn(ctx, s, "t1", pid, epoch, false); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("abort after commit: %v", err)
	}
	// A second producer of the id fences the first and aborts its
	// transaction.
	if err := e.c.AddPartitions(ctx, s, "t1", pid, epoch, []TopicPartition{tpB}); err != nil {
		t.Fatal(err)
	}
	pid2, epoch2, err := e.c.InitProducerID(ctx, e.c.NewSession(), "t1", time.Minute)
	if err != nil || pid2 != pid || epoch2 <= epoch {
		t.Fatalf("second init: %d %d %v", pid2, epoch2, err)
	}
	if m := e.mk.of(tpB); len(m) != 2 || m[1].Commit || m[1].ProducerEpoch <= epoch {
		t.Fatalf("markers of %v: %+v", tpB, m)
	}
	if err := e.c.AddPartitions(ctx, s, "t1", pid, epoch, []TopicPartition{tpA}); !errors.Is(err, ErrFenced) {
		t.Fatalf("the fenced producer: %v", err)
	}
	if _, _, err := e.c.InitProducerID(ctx, s, "t2", time.Hour); !errors.Is(err, ErrInvalidTimeout) {
		t.Fatalf("a timeout above the maximum: %v", err)
	}
}

// After a restart an ongoing transaction is aborted (its epoch fenced),
// one whose commit was logged is completed with its offsets.
func TestRecovery(t *testing.T) {
	e := newEnv(t)
	s := e.c.NewSession()
	pid1, ep1, _ := e.c.InitProducerID(ctx, s, "ongoing", time.Minute)
	if err := e.c.AddPartitions(ctx, s, "ongoing", pid1, ep1, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	pid2, ep2, _ := e.c.InitProducerID(ctx, s, "deciding", time.Minute)
	if err := e.c.AddPartitions(ctx, s, "deciding", pid2, ep2, []TopicPartition{tpB}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.AddOffsets(ctx, s, "deciding", pid2, ep2, "g"); err != nil {
		t.Fatal(err)
	}
	oc := []group.OffsetCommit{{TopicPartition: in0, CommittedOffset: group.CommittedOffset{Offset: 5, LeaderEpoch: -1}}}
	if err := e.c.CommitOffsets(ctx, "deciding", pid2, ep2, "g", oc); err != nil {
		t.Fatal(err)
	}
	// Offsets sent in a transaction the log holds as ongoing are kept in
	// memory (the commit's record stores them): a restart before EndTxn
	// aborts the transaction, and the offsets never become the group's.
	pid3, ep3, _ := e.c.InitProducerID(ctx, s, "offsets", time.Minute)
	if err := e.c.AddPartitions(ctx, s, "offsets", pid3, ep3, []TopicPartition{{Topic: "out", Partition: 2}}); err != nil {
		t.Fatal(err)
	}
	oc3 := []group.OffsetCommit{{TopicPartition: in0, CommittedOffset: group.CommittedOffset{Offset: 9, LeaderEpoch: -1}}}
	if err := e.c.AddAndCommitOffsets(ctx, s, "offsets", pid3, ep3, "g3", oc3); err != nil {
		t.Fatal(err)
	}
	if p := e.c.PendingOffsets("g3"); !p[in0] {
		t.Fatalf("pending offsets of g3: %v", p)
	}
	e.mk.fail = true // the commit is logged (with its offsets), its markers are not written
	if err := e.c.EndTxn(ctx, s, "deciding", pid2, ep2, true); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.c.Describe("deciding"); st.State != PrepareCommit {
		t.Fatalf("state %v, want PrepareCommit", st.State)
	}
	e.close()
	e.mk.fail = false
	open(t, e)
	if st, _ := e.c.Describe("deciding"); st.State != CompleteCommit {
		t.Fatalf("after restart: %v, want CompleteCommit", st.State)
	}
	if got := e.store.Committed("g")[in0].Offset; got != 5 {
		t.Fatalf("offset %d, want 5", got)
	}
	st, _ := e.c.Describe("ongoing")
	if st.State != CompleteAbort || st.Epoch <= ep1 {
		t.Fatalf("ongoing after restart: %+v", st)
	}
	if m := e.mk.of(tpA); len(m) != 1 || m[0].Commit {
		t.Fatalf("markers of the aborted transaction: %+v", m)
	}
	if err := e.c.EndTxn(ctx, e.c.NewSession(), "ongoing", pid1, ep1, true); !errors.Is(err, ErrFenced) {
		t.Fatalf("the old producer's commit after the restart: %v", err)
	}
	if st, _ := e.c.Describe("offsets"); st.State != CompleteAbort || st.Epoch <= ep3 {
		t.Fatalf("the transaction with offsets after restart: %+v", st)
	}
	if got := e.store.Committed("g3"); len(got) != 0 {
		t.Fatalf("offsets of an aborted transaction became the group's: %v", got)
	}
	if p := e.c.PendingOffsets("g3"); len(p) != 0 {
		t.Fatalf("pending offsets of g3 after the abort: %v", p)
	}
	if _, _, err := e.c.EndTxnBump(ctx, e.c.NewSession(), "offsets", pid3, ep3, true); err == nil {
		t.Fatal("the old producer committed after the restart")
	}
}

// A transaction past its timeout is aborted and its producer fenced.
func TestTimeout(t *testing.T) {
	e := newEnv(t)
	clock := newTestClock(time.Unix(1000, 0))
	e.c.cfg.Now = clock.Now
	s := e.c.NewSession()
	pid, ep, _ := e.c.InitProducerID(ctx, s, "slow", time.Second)
	if err := e.c.AddPartitions(ctx, s, "slow", pid, ep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	e.c.tick()
	if st, _ := e.c.Describe("slow"); st.State != Ongoing {
		t.Fatalf("aborted before its timeout: %v", st.State)
	}
	clock.Add(2 * time.Second)
	e.c.tick()
	if st, _ := e.c.Describe("slow"); st.State != CompleteAbort {
		t.Fatalf("state %v after the timeout", st.State)
	}
	if err := e.c.EndTxn(ctx, s, "slow", pid, ep, true); !errors.Is(err, ErrFenced) {
		t.Fatalf("commit after the timeout: %v", err)
	}
}

// The fence: an EndTxn on a connection opened before the ongoing
// transaction began, that carried none of it, is refused.
func TestStaleEndTxnFenced(t *testing.T) {
	e := newEnv(t)
	a := e.c.NewSession()
	pid, ep, _ := e.c.InitProducerID(ctx, a, "t", time.Minute)
	if err := e.c.AddPartitions(ctx, a, "t", pid, ep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	// The EndTxn(commit) sent on a is delayed; the producer aborts on b
	// and begins the next transaction there.
	b := e.c.NewSession()
	if err := e.c.EndTxn(ctx, b, "t", pid, ep, false); err != nil {
		t.Fatal(err)
	}
	if err := e.c.AddPartitions(ctx, b, "t", pid, ep, []TopicPartition{tpB}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.EndTxn(ctx, a, "t", pid, ep, true); !errors.Is(err, ErrStaleEndTxn) {
		t.Fatalf("the delayed EndTxn: %v", err)
	}
	// A connection opened after the transaction began may end it.
	if err := e.c.EndTxn(ctx, e.c.NewSession(), "t", pid, ep, true); err != nil {
		t.Fatal(err)
	}
}

// List selects ids by state, producer id, start and id, as Kafka's
// ListTransactions does; a completed transaction keeps its start.
func TestListFilter(t *testing.T) {
	e := newEnv(t)
	clock := newTestClock(time.Unix(1000, 0))
	e.c.cfg.Now = clock.Now
	s := e.c.NewSession()
	pidA, _, _ := e.c.InitProducerID(ctx, s, "a", time.Minute) // Empty
	pidB, epB, _ := e.c.InitProducerID(ctx, s, "b", time.Minute)
	if err := e.c.AddPartitions(ctx, s, "b", pidB, epB, []TopicPartition{tpA}); err != nil { // Ongoing since 1000 s
		t.Fatal(err)
	}
	clock.Add(10 * time.Second)
	pidC, epC, _ := e.c.InitProducerID(ctx, s, "c", time.Minute)
	if err := e.c.AddPartitions(ctx, s, "c", pidC, epC, []TopicPartition{tpB}); err != nil { // began at 1010 s
		t.Fatal(err)
	}
	if err := e.c.EndTxn(ctx, s, "c", pidC, epC, true); err != nil {
		t.Fatal(err)
	}
	clock.Add(5 * time.Second)
	ids := func(f Filter) []string {
		var out []string
		for _, x := range e.c.List(f) {
			out = append(out, x.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, []string{"a", "b", "c"}},
		{"ongoing", Filter{States: []State{Ongoing}}, []string{"b"}},
		{"empty or committed", Filter{States: []State{Empty, CompleteCommit}}, []string{"a", "c"}},
		{"producer ids", Filter{ProducerIDs: []int64{pidA, pidC}}, []string{"a", "c"}},
		{"state and producer id", Filter{States: []State{Ongoing}, ProducerIDs: []int64{pidA}}, nil},
		// Longer than 10 s (started before 1005 s): b, and a (never began).
		{"started before", Filter{StartedBefore: clock.Now().Add(-10 * time.Second)}, []string{"a", "b"}},
		{"id", Filter{ID: func(id string) bool { return id != "a" }}, []string{"b", "c"}},
	} {
		if got := ids(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	c, _ := e.c.Describe("c")
	if c.State != CompleteCommit || c.StartMs != time.Unix(1010, 0).UnixMilli() || len(c.Partitions) != 0 {
		t.Errorf("completed: %+v, want CompleteCommit, started at 1010 s, no partitions", c)
	}
	if _, ok := e.c.Describe("never"); ok {
		t.Error("an unknown id described")
	}
}

func TestParseState(t *testing.T) {
	for s := Empty; s <= CompleteAbort; s++ {
		if got, ok := ParseState(s.String()); !ok || got != s {
			t.Errorf("ParseState(%q) = %v, %v", s.String(), got, ok)
		}
	}
	for _, name := range []string{"", "ongoing", "Dead", "PrepareEpochFence", "State(9)"} {
		if _, ok := ParseState(name); ok {
			t.Errorf("ParseState(%q) accepted", name)
		}
	}
}

// testClock is a clock a test moves; the coordinator's own goroutines read
// it too (a completion written in the background takes its time).
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
