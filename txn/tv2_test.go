package txn

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/sensehq/sense/group"
)

// Transaction version 2 (KIP-890 part 2): each EndTxn bumps the epoch,
// its markers carry the bumped one, a retry is answered with the same new
// epoch, and an EndTxn of an earlier transaction cannot end the next.
func TestEndTxnBump(t *testing.T) {
	e := newEnv(t)
	s := e.c.NewSession()
	pid, ep, err := e.c.InitProducerID(ctx, s, "t", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Transaction 1: the produce connection adds the partition (s), the
	// EndTxn comes on a connection opened before it began (c): no
	// connection fence under version 2.
	c := e.c.NewSession()
	p := e.c.NewSession()
	if err := e.c.AddPartitions(ctx, p, "t", pid, ep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	pid1, ep1, err := e.c.EndTxnBump(ctx, c, "t", pid, ep, true)
	if err != nil || pid1 != pid || ep1 != ep+1 {
		t.Fatalf("EndTxn: %d %d %v, want %d %d", pid1, ep1, err, pid, ep+1)
	}
	if m := e.mk.of(tpA); len(m) != 1 || !m[0].Commit || m[0].ProducerID != pid || m[0].ProducerEpoch != ep1 {
		t.Fatalf("markers: %+v, want a commit at epoch %d", m, ep1)
	}
	// A retry is answered with the same new epoch; the other outcome is
	// refused; the old epoch can no longer produce.
	if p2, e2, err := e.c.EndTxnBump(ctx, c, "t", pid, ep, true); err != nil || p2 != pid1 || e2 != ep1 {
		t.Fatalf("retry: %d %d %v", p2, e2, err)
	}
	if _, _, err := e.c.EndTxnBump(ctx, c, "t", pid, ep, false); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("abort retry of a commit: %v", err)
	}
	if _, err := e.c.BeginProduce(ctx, pid, ep, tpA); !errors.Is(err, ErrFenced) {
		t.Fatalf("produce at the old epoch: %v", err)
	}
	// Transaction 2 at the new epoch, with offsets added implicitly.
	if err := e.c.AddPartitions(ctx, p, "t", pid1, ep1, []TopicPartition{tpB}); err != nil {
		t.Fatal(err)
	}
	oc := []group.OffsetCommit{{TopicPartition: in0, CommittedOffset: group.CommittedOffset{Offset: 5, LeaderEpoch: -1}}}
	if err := e.c.AddAndCommitOffsets(ctx, c, "t", pid1, ep1, "g", oc); err != nil {
		t.Fatal(err)
	}
	// The EndTxn of transaction 1, delayed, arrives now: refused, and
	// transaction 2 is still ongoing.
	if _, _, err := e.c.EndTxnBump(ctx, c, "t", pid, ep, true); !errors.Is(err, ErrFenced) {
		t.Fatalf("the delayed EndTxn: %v", err)
	}
	if d, _ := e.c.Describe("t"); d.State != Ongoing {
		t.Fatalf("state %s after the delayed EndTxn", d.State)
	}
	pid2, ep2, err := e.c.EndTxnBump(ctx, c, "t", pid1, ep1, false)
	if err != nil || ep2 != ep1+1 {
		t.Fatalf("abort of transaction 2: %d %d %v", pid2, ep2, err)
	}
	if m := e.mk.of(tpB); len(m) != 1 || m[0].Commit || m[0].ProducerEpoch != ep2 {
		t.Fatalf("markers of transaction 2: %+v", m)
	}
	if got := e.store.Committed("g"); len(got) != 0 {
		t.Fatalf("offsets of an aborted transaction committed: %v", got)
	}
	// No transaction ongoing: an abort bumps the epoch, a commit is
	// refused.
	if _, _, err := e.c.EndTxnBump(ctx, c, "t", pid2, ep2, true); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("commit with nothing ongoing: %v", err)
	}
	pid3, ep3, err := e.c.EndTxnBump(ctx, c, "t", pid2, ep2, false)
	if err != nil || pid3 != pid2 || ep3 != ep2+1 {
		t.Fatalf("empty abort: %d %d %v", pid3, ep3, err)
	}
	// The implicit add of offsets begins a transaction, which commits.
	if err := e.c.AddAndCommitOffsets(ctx, c, "t", pid3, ep3, "g", oc); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.c.EndTxnBump(ctx, c, "t", pid3, ep3, true); err != nil {
		t.Fatal(err)
	}
	if got := e.store.Committed("g")[in0].Offset; got != 5 {
		t.Fatalf("committed offset %d, want 5", got)
	}
}

// When the epoch would pass 32766 the producer gets a new producer id at
// epoch 0; the markers carry the old id at epoch 32767, and a retry is
// answered with the new id.
func TestEndTxnBumpExhausted(t *testing.T) {
	e := newEnv(t)
	s := e.c.NewSession()
	pid, _, err := e.c.InitProducerID(ctx, s, "t", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := e.c.Describe("t")
	cur.Epoch = math.MaxInt16 - 2
	if err := e.c.write(&cur); err != nil {
		t.Fatal(err)
	}
	ep := cur.Epoch
	for round := range 2 {
		if err := e.c.AddPartitions(ctx, s, "t", pid, ep, []TopicPartition{tpA}); err != nil {
			t.Fatal(round, err)
		}
		npid, nep, err := e.c.EndTxnBump(ctx, s, "t", pid, ep, true)
		if err != nil {
			t.Fatal(round, err)
		}
		m := e.mk.of(tpA)
		last := m[len(m)-1]
		switch round {
		case 0:
			if npid != pid || nep != math.MaxInt16-1 || last.ProducerEpoch != math.MaxInt16-1 {
				t.Fatalf("bump to 32766: %d %d, marker %+v", npid, nep, last)
			}
		case 1:
			if npid == pid || nep != 0 || last.ProducerID != pid || last.ProducerEpoch != math.MaxInt16 {
				t.Fatalf("exhausted: %d %d, marker %+v", npid, nep, last)
			}
			if p2, e2, err := e.c.EndTxnBump(ctx, s, "t", pid, ep, true); err != nil || p2 != npid || e2 != 0 {
				t.Fatalf("retry after a new producer id: %d %d %v", p2, e2, err)
			}
			if err := e.c.AddPartitions(ctx, s, "t", npid, 0, []TopicPartition{tpA}); err != nil {
				t.Fatalf("the new producer id: %v", err)
			}
		}
		pid, ep = npid, nep
	}
}

// A transaction ended by version 2 whose markers could not be written is
// completed after a restart with the bumped epoch's markers.
func TestEndTxnBumpRecovery(t *testing.T) {
	e := newEnv(t)
	s := e.c.NewSession()
	pid, ep, _ := e.c.InitProducerID(ctx, s, "t", time.Minute)
	if err := e.c.AddPartitions(ctx, s, "t", pid, ep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	e.mk.mu.Lock()
	e.mk.fail = true
	e.mk.mu.Unlock()
	if _, nep, err := e.c.EndTxnBump(ctx, s, "t", pid, ep, true); err != nil || nep != ep+1 {
		t.Fatalf("EndTxn: %d %v", nep, err)
	}
	e.close()
	e.mk.mu.Lock()
	e.mk.fail = false
	e.mk.mu.Unlock()
	open(t, e)
	if m := e.mk.of(tpA); len(m) != 1 || !m[0].Commit || m[0].ProducerEpoch != ep+1 {
		t.Fatalf("markers after the restart: %+v", m)
	}
	if d, _ := e.c.Describe("t"); d.State != CompleteCommit || d.Epoch != ep+1 {
		t.Fatalf("state after the restart: %s epoch %d", d.State, d.Epoch)
	}
}

// Under transaction version 2 a producer whose transaction timed out (the
// coordinator aborted it and bumped the epoch) learns the new epoch by
// aborting, as in Kafka; its commit is refused.
func TestEndTxnBumpAfterTimeout(t *testing.T) {
	e := newEnv(t)
	clock := newTestClock(time.Unix(1000, 0))
	e.c.cfg.Now = clock.Now
	s := e.c.NewSession()
	pid, ep, _ := e.c.InitProducerID(ctx, s, "slow", time.Second)
	if err := e.c.AddPartitions(ctx, s, "slow", pid, ep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Second)
	e.c.tick()
	if _, _, err := e.c.EndTxnBump(ctx, s, "slow", pid, ep, true); !errors.Is(err, ErrInvalidState) {
		t.Fatalf("commit after the timeout: %v", err)
	}
	p2, e2, err := e.c.EndTxnBump(ctx, s, "slow", pid, ep, false)
	if err != nil || p2 != pid || e2 != ep+1 {
		t.Fatalf("abort after the timeout: %d %d %v, want %d %d", p2, e2, err, pid, ep+1)
	}
	// Another producer of the id fences it for good.
	if _, _, err := e.c.InitProducerID(ctx, e.c.NewSession(), "slow", time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.c.EndTxnBump(ctx, s, "slow", p2, e2, false); !errors.Is(err, ErrFenced) {
		t.Fatalf("abort by the fenced producer: %v", err)
	}
}

// A producer fenced by another's InitProducerId cannot learn the new epoch
// by aborting: its ongoing transaction was aborted for the new producer.
func TestEndTxnBumpZombie(t *testing.T) {
	e := newEnv(t)
	s := e.c.NewSession()
	pid, ep, _ := e.c.InitProducerID(ctx, s, "z", time.Minute)
	if err := e.c.AddPartitions(ctx, s, "z", pid, ep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.c.InitProducerID(ctx, e.c.NewSession(), "z", time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, commit := range []bool{false, true} {
		if _, _, err := e.c.EndTxnBump(ctx, s, "z", pid, ep, commit); !errors.Is(err, ErrFenced) {
			t.Fatalf("EndTxn (commit %v) of the fenced producer: %v", commit, err)
		}
	}
	if m := e.mk.of(tpA); len(m) != 1 || m[0].Commit || m[0].ProducerEpoch != ep+1 {
		t.Fatalf("markers: %+v, want one abort at epoch %d", m, ep+1)
	}
}
