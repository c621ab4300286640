package txn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/group"
)

// plog stands in for one partition's log in the tests of markers made
// durable after the answer: what was appended, in order, and how much of it
// is durable. A sync makes everything appended durable; while held, syncs
// wait.
type plog struct {
	mu      sync.Mutex
	cond    *sync.Cond
	entries []pentry
	durable int
	hold    bool
	syncs   int
}

// pentry is a transactional batch of a producer, or its marker.
type pentry struct {
	pid    int64
	epoch  int16
	marker bool
	commit bool
}

type pack struct {
	l   *plog
	end int
}

func (a *pack) Ready() bool {
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	return a.l.durable >= a.end
}

func (a *pack) Wait() (int64, error) {
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	for a.l.hold {
		a.l.cond.Wait()
	}
	if a.l.durable < a.end {
		a.l.durable = len(a.l.entries)
		a.l.syncs++
	}
	return int64(a.end - 1), nil
}

// fakeParts are the partitions of the coordinator under test.
type fakeParts struct {
	mu   sync.Mutex
	logs map[TopicPartition]*plog
}

func (f *fakeParts) log(tp TopicPartition) *plog {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.logs == nil {
		f.logs = map[TopicPartition]*plog{}
	}
	l := f.logs[tp]
	if l == nil {
		l = &plog{}
		l.cond = sync.NewCond(&l.mu)
		f.logs[tp] = l
	}
	return l
}

func (f *fakeParts) append(tp TopicPartition, e pentry) *pack {
	l := f.log(tp)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e)
	return &pack{l: l, end: len(l.entries)}
}

func (f *fakeParts) start(tp TopicPartition, m batch.Marker) (MarkerAck, error) {
	return f.append(tp, pentry{pid: m.ProducerID, epoch: m.ProducerEpoch, marker: true, commit: m.Commit}), nil
}

func (f *fakeParts) write(_ context.Context, tp TopicPartition, m batch.Marker) error {
	a, _ := f.start(tp, m)
	_, err := a.Wait()
	return err
}

// produce appends a durable batch of pid at epoch.
func (f *fakeParts) produce(tp TopicPartition, pid int64, epoch int16) {
	f.append(tp, pentry{pid: pid, epoch: epoch}).Wait()
}

// openTxn reads what is durable, as a node's index does after a start.
func (f *fakeParts) openTxn(tp TopicPartition, pid int64) (OpenTxnInfo, error) {
	l := f.log(tp)
	l.mu.Lock()
	defer l.mu.Unlock()
	var o OpenTxnInfo
	for i, e := range l.entries[:l.durable] {
		switch {
		case e.pid != pid:
		case e.marker:
			o = OpenTxnInfo{}
		case !o.Open:
			o = OpenTxnInfo{Open: true, Epoch: e.epoch, First: int64(i)}
		}
	}
	return o, nil
}

// end is a partition's next offset.
func (f *fakeParts) end(tp TopicPartition) (int64, error) {
	l := f.log(tp)
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.entries)), nil
}

func (f *fakeParts) setHold(tp TopicPartition, hold bool) {
	l := f.log(tp)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hold = hold
	l.cond.Broadcast()
}

// markers returns tp's markers, durable or not.
func (f *fakeParts) markers(tp TopicPartition) []pentry {
	l := f.log(tp)
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []pentry
	for _, e := range l.entries {
		if e.marker {
			out = append(out, e)
		}
	}
	return out
}

func (f *fakeParts) durableLen(tp TopicPartition) int {
	l := f.log(tp)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable
}

// release lets every held sync go on.
func (f *fakeParts) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.logs {
		l.mu.Lock()
		l.hold = false
		l.cond.Broadcast()
		l.mu.Unlock()
	}
}

// crash loses what is not durable in every partition.
func (f *fakeParts) crash() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.logs {
		l.mu.Lock()
		l.entries = l.entries[:l.durable]
		l.hold = false
		l.cond.Broadcast()
		l.mu.Unlock()
	}
}

// lazyEnv is a coordinator with StartMarker over fakeParts (the markers of
// transaction version 2 made durable after the answer).
type lazyEnv struct {
	dir   string
	store *group.Store
	c     *Coordinator
	parts *fakeParts
	pids  int64
}

func (e *lazyEnv) open(t *testing.T) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var err error
	if e.store, err = group.Open(nil, e.dir, quiet); err != nil {
		t.Fatal(err)
	}
	e.c, err = New(Config{Store: e.store, WriteMarker: e.parts.write, StartMarker: e.parts.start, OpenTxn: e.parts.openTxn, PartitionEnd: e.parts.end,
		Tick: time.Hour, Logger: quiet, MarkerLinger: -1,
		NewProducerID: func() (int64, error) { e.pids++; return 1000 + e.pids, nil }})
	if err != nil {
		t.Fatal(err)
	}
}

// crash stops the coordinator as a kill would: what its store wrote is
// durable (each write is), the partitions lose what is not.
func (e *lazyEnv) crash(t *testing.T) {
	e.parts.crash()
	e.c.Close()
	e.store.Close()
	e.open(t)
}

func newLazyEnv(t *testing.T) *lazyEnv {
	e := &lazyEnv{dir: filepath.Join(t.TempDir(), "groups"), parts: &fakeParts{}}
	e.open(t)
	t.Cleanup(func() {
		e.parts.release()
		e.c.Close()
		e.store.Close()
	})
	return e
}

// waitEntry waits, up to 5 s, until cond holds for id's entry (read under
// the coordinator's lock), else fails with why.
func (e *lazyEnv) waitEntry(t *testing.T, id, why string, cond func(*entry) bool) {
	t.Helper()
	for i := 0; ; i++ {
		e.c.mu.Lock()
		ok := cond(e.c.ids[id])
		e.c.mu.Unlock()
		if ok {
			return
		}
		if i == 500 {
			t.Fatal(why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// firstTxn begins the first transaction of id, over tpA and tpB, and
// stores a batch of it in each.
func (e *lazyEnv) firstTxn(t *testing.T, id string) (*Session, int64, int16) {
	t.Helper()
	s := e.c.NewSession()
	pid, ep, err := e.c.InitProducerID(ctx, s, id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.AddPartitions(ctx, s, id, pid, ep, []TopicPartition{tpA, tpB}); err != nil {
		t.Fatal(err)
	}
	e.parts.produce(tpA, pid, ep)
	e.parts.produce(tpB, pid, ep)
	return s, pid, ep
}

// An EndTxn of transaction version 2 answers once its outcome is logged and
// its markers appended, before they are durable; the id's next transaction
// begins without waiting for them; its decision is written only once they
// are durable; a tick writes the completion once they are and nothing of
// the id was written since.
func TestLazyMarkers(t *testing.T) {
	e := newLazyEnv(t)
	s, pid, ep := e.firstTxn(t, "z")
	e.parts.setHold(tpA, true)
	e.parts.setHold(tpB, true)
	pid2, ep2, err := e.c.EndTxnBump(ctx, s, "z", pid, ep, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []TopicPartition{tpA, tpB} {
		m := e.parts.markers(tp)
		if len(m) != 1 || !m[0].commit || m[0].epoch != ep+1 || m[0].pid != pid {
			t.Fatalf("markers of %v: %+v", tp, m)
		}
		if e.parts.durableLen(tp) != 1 {
			t.Fatalf("%v: the marker was durable before the answer, or the batch was not", tp)
		}
	}
	// Until its markers are durable the transaction shows as being
	// committed (as Kafka shows one whose markers are being written).
	if st, _ := e.c.Describe("z"); st.State != PrepareCommit || len(st.Partitions) != 2 {
		t.Fatalf("described after the answer, markers not durable: %+v", st)
	}
	if l := e.c.List(Filter{}); len(l) != 1 || l[0].State != PrepareCommit {
		t.Fatalf("listed after the answer, markers not durable: %+v", l)
	}
	// The next transaction begins (a kept partition, in memory) and
	// appends while the markers are not durable yet.
	if err := e.c.AddPartitions(ctx, s, "z", pid2, ep2, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	done, err := e.c.BeginProduce(ctx, pid2, ep2, tpA)
	if err != nil {
		t.Fatal(err)
	}
	e.parts.append(tpA, pentry{pid: pid2, epoch: ep2})
	done(true)
	// Its EndTxn must not log its decision before the first one's
	// markers are durable.
	ended := make(chan error, 1)
	go func() {
		_, _, err := e.c.EndTxnBump(ctx, s, "z", pid2, ep2, false)
		ended <- err
	}()
	select {
	case err := <-ended:
		t.Fatalf("the next transaction ended (%v) while the markers of the one before were not durable", err)
	case <-time.After(100 * time.Millisecond):
	}
	e.parts.setHold(tpA, false)
	e.parts.setHold(tpB, false)
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	for _, tp := range []TopicPartition{tpA, tpB} {
		if e.parts.durableLen(tp) < 2 {
			t.Fatalf("%v: the first transaction's marker is not durable after the next decision", tp)
		}
	}
	// A tick completes the last transaction in the log once its marker
	// is durable: a start then finds it complete and looks for nothing.
	if _, _, err := e.c.EndTxnBump(ctx, s, "z", pid2, ep2, false); err != nil {
		t.Fatalf("a retry of the abort: %v", err)
	}
	// The background makes the markers durable (MarkerLinger -1: at once).
	e.waitEntry(t, "z", "the markers were not made durable in the background", func(en *entry) bool { return en.unsynced == nil })
	if st, _ := e.c.Describe("z"); st.State != CompleteAbort || len(st.Partitions) != 0 {
		t.Fatalf("described once the markers are durable: %+v", st)
	}
	e.c.tick()
	e.c.mu.Lock()
	pending := e.c.ids["z"].logged
	e.c.mu.Unlock()
	if pending != nil {
		t.Fatalf("after a tick the log still holds %+v", pending)
	}
	before := len(e.parts.markers(tpA))
	e.crash(t)
	if st, _ := e.c.Describe("z"); st.State != CompleteAbort {
		t.Fatalf("after a restart: %+v", st)
	}
	if n := len(e.parts.markers(tpA)); n != before {
		t.Fatalf("a start wrote %d markers to a completed transaction's partition", n-before)
	}
}

// A start that finds a decision whose completion was never logged writes
// the markers missing, and only those: a partition whose marker was lost
// gets it again; one whose marker is durable, and where the id's next
// transaction (begun in memory) left a batch open at the marker's epoch,
// does not get it again (it would end that transaction with this outcome):
// that transaction is aborted, with a newer epoch.
func TestLazyMarkersRecovery(t *testing.T) {
	e := newLazyEnv(t)
	s, pid, ep := e.firstTxn(t, "z")
	// tpB's marker is never made durable before the crash.
	e.parts.setHold(tpB, true)
	pid2, ep2, err := e.c.EndTxnBump(ctx, s, "z", pid, ep, true)
	if err != nil {
		t.Fatal(err)
	}
	// The next transaction begins in memory and appends to tpA, durably
	// (its group commit makes the marker before it durable too).
	if err := e.c.AddPartitions(ctx, s, "z", pid2, ep2, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	e.parts.produce(tpA, pid2, ep2)
	if !e.c.inMemory("z") {
		t.Fatal("the next transaction did not begin in memory")
	}
	e.crash(t)
	st, _ := e.c.Describe("z")
	if st.State != CompleteAbort || st.Epoch <= ep2 {
		t.Fatalf("after the restart: %+v (the transaction begun in memory must be aborted, its epoch bumped past %d)", st, ep2)
	}
	// tpA: the first commit marker once, then an abort of the second
	// transaction at a newer epoch.
	want := []pentry{{pid: pid, epoch: ep + 1, marker: true, commit: true}, {pid: pid2, epoch: ep2 + 1, marker: true}}
	if got := e.parts.markers(tpA); !slices.Equal(got, want) {
		t.Fatalf("markers of %v: %+v, want %+v", tpA, got, want)
	}
	// tpB: its lost commit marker written again, then the abort (the
	// second transaction kept tpB too).
	got := e.parts.markers(tpB)
	if len(got) == 0 || got[0] != (pentry{pid: pid, epoch: ep + 1, marker: true, commit: true}) {
		t.Fatalf("markers of %v: %+v: the lost commit marker was not written again", tpB, got)
	}
	for _, tp := range []TopicPartition{tpA, tpB} {
		if o, _ := e.parts.openTxn(tp, pid); o.Open {
			t.Fatalf("%v: a transaction of the producer is still open", tp)
		}
	}
	// The producer of the second transaction is fenced.
	if _, _, err := e.c.EndTxnBump(ctx, e.c.NewSession(), "z", pid2, ep2, true); err == nil {
		t.Fatal("the aborted transaction committed after the restart")
	}
}

// At transaction version 1 the markers carry the transaction's own epoch,
// which its next transaction keeps: the decision stores each partition's
// end, and a start tells the next transaction's batches by their offset.
// The same crash as TestLazyMarkersRecovery: the lost marker is written
// again, the durable one is not, the next transaction is aborted.
func TestLazyMarkersVersion1Recovery(t *testing.T) {
	e := newLazyEnv(t)
	s, pid, ep := e.firstTxn(t, "v1")
	e.parts.setHold(tpB, true)
	if err := e.c.EndTxn(ctx, s, "v1", pid, ep, true); err != nil {
		t.Fatal(err)
	}
	if m := e.parts.markers(tpB); len(m) != 1 || e.parts.durableLen(tpB) != 1 {
		t.Fatalf("tpB: markers %+v, %d entries durable: EndTxn did not answer before its marker was durable", m, e.parts.durableLen(tpB))
	}
	if err := e.c.AddPartitions(ctx, s, "v1", pid, ep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	if !e.c.inMemory("v1") {
		t.Fatal("the next transaction did not begin in memory")
	}
	e.parts.produce(tpA, pid, ep) // same producer id and epoch
	e.crash(t)
	st, _ := e.c.Describe("v1")
	if st.State != CompleteAbort || st.Epoch <= ep {
		t.Fatalf("after the restart: %+v (the transaction begun in memory must be aborted, its epoch bumped past %d)", st, ep)
	}
	want := []pentry{{pid: pid, epoch: ep, marker: true, commit: true}, {pid: pid, epoch: ep + 1, marker: true}}
	if got := e.parts.markers(tpA); !slices.Equal(got, want) {
		t.Fatalf("markers of %v: %+v, want %+v", tpA, got, want)
	}
	if got := e.parts.markers(tpB); len(got) == 0 || got[0] != want[0] {
		t.Fatalf("markers of %v: %+v: the lost commit marker was not written again", tpB, got)
	}
	for _, tp := range []TopicPartition{tpA, tpB} {
		if o, _ := e.parts.openTxn(tp, pid); o.Open {
			t.Fatalf("%v: a transaction of the producer is still open", tp)
		}
	}
}

// A batch of a transaction of version 1 whose EndTxn is noting the
// partitions' ends is refused: it would land past them.
func TestLazyMarkersVersion1RefusesLateBatch(t *testing.T) {
	e := newLazyEnv(t)
	s, pid, ep := e.firstTxn(t, "v1")
	done, err := e.c.BeginProduce(ctx, pid, ep, tpA)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- e.c.EndTxn(ctx, s, "v1", pid, ep, true) }()
	// EndTxn waits for the batch under way; meanwhile no other starts.
	e.waitEntry(t, "v1", "EndTxn never began to note the ends", func(en *entry) bool { return en.ending })
	if _, err := e.c.BeginProduce(ctx, pid, ep, tpB); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("a batch started while EndTxn noted the ends: %v", err)
	}
	e.parts.append(tpA, pentry{pid: pid, epoch: ep})
	done(true)
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	got := e.parts.markers(tpA)
	if len(got) != 1 || !got[0].commit {
		t.Fatalf("markers of %v: %+v", tpA, got)
	}
}
