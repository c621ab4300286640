package txn

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/group"
)

// partitions stands in for the node's partitions in the tests of kept
// partitions: which producers have a transaction open where.
type partitions struct {
	mu   sync.Mutex
	open map[TopicPartition][]int64
	err  error
}

func (p *partitions) openTxn(tp TopicPartition, pid int64) (OpenTxnInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return OpenTxnInfo{Open: slices.Contains(p.open[tp], pid)}, p.err
}

func (p *partitions) set(tp TopicPartition, pid int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open == nil {
		p.open = map[TopicPartition][]int64{}
	}
	p.open[tp] = append(p.open[tp], pid)
}

func newKeptEnv(t *testing.T) (*env, *partitions) {
	p := &partitions{}
	return newEnvWith(t, p.openTxn), p
}

// inMemory reports whether id's ongoing transaction began without a write.
func (c *Coordinator) inMemory(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.ids[id]
	return e != nil && e.mem
}

// A transaction's partitions stay added for the id's next transaction:
// adding them again writes nothing, adding another writes, and the markers
// go only to the partitions the transaction holds.
func TestKeptPartitions(t *testing.T) {
	e, _ := newKeptEnv(t)
	s := e.c.NewSession()
	pid, ep, err := e.c.InitProducerID(ctx, s, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.AddPartitions(ctx, s, "k", pid, ep, []TopicPartition{tpA, tpB}); err != nil {
		t.Fatal(err)
	}
	if e.c.inMemory("k") {
		t.Fatal("the first transaction began without a write")
	}
	pid, ep, err = e.c.EndTxnBump(ctx, s, "k", pid, ep, true)
	if err != nil {
		t.Fatal(err)
	}
	// Describe shows no partitions for a completed transaction.
	if st, _ := e.c.Describe("k"); st.State != CompleteCommit || len(st.Partitions) != 0 {
		t.Fatalf("described: %+v", st)
	}
	// Transaction 2 writes to tpA only: added in memory.
	if err := e.c.AddPartitions(ctx, s, "k", pid, ep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	if !e.c.inMemory("k") {
		t.Fatal("a kept partition was added with a write")
	}
	if st, _ := e.c.Describe("k"); st.State != Ongoing || !slices.Equal(st.Partitions, []TopicPartition{tpA}) {
		t.Fatalf("described: %+v", st)
	}
	if _, err := e.c.BeginProduce(ctx, pid, ep, tpB); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("a produce to a kept partition not added: %v", err)
	}
	done, err := e.c.BeginProduce(ctx, pid, ep, tpA)
	if err != nil {
		t.Fatal(err)
	}
	done(true)
	pid, ep, err = e.c.EndTxnBump(ctx, s, "k", pid, ep, true)
	if err != nil {
		t.Fatal(err)
	}
	if m := e.mk.of(tpA); len(m) != 2 || !m[1].Commit {
		t.Fatalf("markers of %v: %+v", tpA, m)
	}
	if m := e.mk.of(tpB); len(m) != 1 {
		t.Fatalf("transaction 2 marked %v, which it did not hold: %+v", tpB, m)
	}
	// Transaction 3 adds a partition that was not kept: a write, which
	// makes the transaction the log's.
	if err := e.c.AddPartitions(ctx, s, "k", pid, ep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.AddPartitions(ctx, s, "k", pid, ep, []TopicPartition{tpB}); err != nil {
		t.Fatal(err)
	}
	if e.c.inMemory("k") {
		t.Fatal("a partition that was not kept was added without a write")
	}
	if _, _, err := e.c.EndTxnBump(ctx, s, "k", pid, ep, false); err != nil {
		t.Fatal(err)
	}
	if m := e.mk.of(tpB); len(m) != 2 || m[1].Commit {
		t.Fatalf("markers of %v: %+v", tpB, m)
	}
}

// A start finds a transaction begun in memory by the batches it left open
// in a kept partition: it is aborted (markers, the epoch bumped), and its
// offsets, kept in memory once a batch landed, never become the group's.
// Without an open batch nothing is aborted and the partitions stay kept.
func TestKeptPartitionsRecovery(t *testing.T) {
	e, parts := newKeptEnv(t)
	s := e.c.NewSession()
	// Each id runs one transaction over its partition, which stays kept.
	type producer struct {
		pid int64
		ep  int16
	}
	ids := map[string]*producer{}
	for id, tp := range map[string]TopicPartition{"k": tpA, "early": tpA, "quiet": tpB} {
		pid, ep, err := e.c.InitProducerID(ctx, s, id, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.c.AddPartitions(ctx, s, id, pid, ep, []TopicPartition{tp}); err != nil {
			t.Fatal(err)
		}
		if pid, ep, err = e.c.EndTxnBump(ctx, s, id, pid, ep, true); err != nil {
			t.Fatal(err)
		}
		ids[id] = &producer{pid, ep}
	}
	oc := []group.OffsetCommit{{TopicPartition: in0, CommittedOffset: group.CommittedOffset{Offset: 3, LeaderEpoch: -1}}}
	// "early" sends offsets before any batch of its transaction landed:
	// they are written (with the transaction, which becomes the log's).
	early := ids["early"]
	if err := e.c.AddPartitions(ctx, s, "early", early.pid, early.ep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.AddAndCommitOffsets(ctx, s, "early", early.pid, early.ep, "g-early", oc); err != nil {
		t.Fatal(err)
	}
	if e.c.inMemory("early") {
		t.Fatal("offsets of a transaction begun in memory, before any batch landed, were not written")
	}
	// "k" appends a batch, then sends offsets: kept in memory.
	k := ids["k"]
	if err := e.c.AddPartitions(ctx, s, "k", k.pid, k.ep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	done, err := e.c.BeginProduce(ctx, k.pid, k.ep, tpA)
	if err != nil {
		t.Fatal(err)
	}
	done(true)
	parts.set(tpA, k.pid) // the batch is in the partition, no marker after it
	if err := e.c.AddAndCommitOffsets(ctx, s, "k", k.pid, k.ep, "g", oc); err != nil {
		t.Fatal(err)
	}
	if !e.c.inMemory("k") {
		t.Fatal("offsets sent after a batch landed were written")
	}
	markersA := len(e.mk.of(tpA))
	e.close() // a crash: nothing more is written
	open(t, e)
	st, _ := e.c.Describe("k")
	if st.State != CompleteAbort || st.Epoch <= k.ep {
		t.Fatalf("the transaction begun in memory, after the restart: %+v", st)
	}
	// Two aborts on tpA: "k"'s and "early"'s (in the log as ongoing).
	m := e.mk.of(tpA)
	if len(m) != markersA+2 || slices.ContainsFunc(m[markersA:], func(mk batch.Marker) bool { return mk.Commit }) {
		t.Fatalf("markers of %v: %+v", tpA, m)
	}
	if got := e.store.Committed("g"); len(got) != 0 {
		t.Fatalf("offsets of the aborted transaction became the group's: %v", got)
	}
	if _, _, err := e.c.EndTxnBump(ctx, e.c.NewSession(), "k", k.pid, k.ep, true); err == nil {
		t.Fatal("the producer committed its transaction after the restart")
	}
	// "quiet" left nothing open: not aborted, its partition still kept.
	q := ids["quiet"]
	if st, _ := e.c.Describe("quiet"); st.State != CompleteCommit || st.Epoch != q.ep {
		t.Fatalf("the quiet id after the restart: %+v", st)
	}
	if err := e.c.AddPartitions(ctx, s, "quiet", q.pid, q.ep, []TopicPartition{tpB}); err != nil {
		t.Fatal(err)
	}
	if !e.c.inMemory("quiet") {
		t.Fatal("the quiet id's partition is no longer kept after the restart")
	}
}

// When the partitions cannot tell, a start aborts.
func TestKeptPartitionsRecoveryUnknown(t *testing.T) {
	e, parts := newKeptEnv(t)
	s := e.c.NewSession()
	pid, ep, _ := e.c.InitProducerID(ctx, s, "k", time.Minute)
	if err := e.c.AddPartitions(ctx, s, "k", pid, ep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	_, ep, err := e.c.EndTxnBump(ctx, s, "k", pid, ep, true)
	if err != nil {
		t.Fatal(err)
	}
	e.close()
	parts.err = errors.New("injected: the partition cannot be read")
	open(t, e)
	if st, _ := e.c.Describe("k"); st.State != CompleteAbort || st.Epoch <= ep {
		t.Fatalf("after a start that could not read the partition: %+v", st)
	}
}
