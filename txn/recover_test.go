package txn

import (
	"errors"
	"testing"
	"time"
)

// KIP-360: a producer that names its producer id and epoch keeps the id
// with a new epoch (its ongoing transaction aborted); a retry of that
// request, which names the epoch before the bump, gets the same epoch
// without another bump; any other id or epoch is fenced, and so is the
// old producer once another producer has initialized the id.
func TestRecoverProducerID(t *testing.T) {
	e := newEnv(t)
	s := e.c.NewSession()
	pid, ep, err := e.c.InitProducerID(ctx, s, "r", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.AddPartitions(ctx, s, "r", pid, ep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	p1, e1, err := e.c.RecoverProducerID(ctx, s, "r", time.Minute, pid, ep)
	if err != nil || p1 != pid || e1 != ep+1 {
		t.Fatalf("recover: %d %d %v, want %d %d", p1, e1, err, pid, ep+1)
	}
	if m := e.mk.of(tpA); len(m) != 1 || m[0].Commit || m[0].ProducerEpoch <= ep {
		t.Fatalf("markers: %+v, want the ongoing transaction aborted with a bumped epoch", m)
	}
	// The answer was lost: the same request again.
	if p2, e2, err := e.c.RecoverProducerID(ctx, s, "r", time.Minute, pid, ep); err != nil || p2 != p1 || e2 != e1 {
		t.Fatalf("retry: %d %d %v, want %d %d", p2, e2, err, p1, e1)
	}
	for _, bad := range []struct {
		pid   int64
		epoch int16
	}{{pid, ep + 5}, {pid + 100, ep}, {pid + 100, e1}} {
		if _, _, err := e.c.RecoverProducerID(ctx, s, "r", time.Minute, bad.pid, bad.epoch); !errors.Is(err, ErrFenced) {
			t.Fatalf("recover as %d epoch %d: %v, want fenced", bad.pid, bad.epoch, err)
		}
	}
	// The recovered producer goes on with its new epoch.
	if err := e.c.AddPartitions(ctx, s, "r", p1, e1, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.c.EndTxnBump(ctx, s, "r", p1, e1, true); err != nil {
		t.Fatal(err)
	}
	// A new producer of the id fences the old one for good.
	_, cur := e.c.current("r")
	if _, _, err := e.c.InitProducerID(ctx, e.c.NewSession(), "r", time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, old := range []int16{cur.Epoch, e1} {
		if _, _, err := e.c.RecoverProducerID(ctx, s, "r", time.Minute, cur.ProducerID, old); !errors.Is(err, ErrFenced) {
			t.Fatalf("the old producer (epoch %d) after a new one: %v, want fenced", old, err)
		}
	}
}

// KIP-588: a producer whose transaction the coordinator aborted on its
// timeout (which bumped the epoch) recovers with its old epoch and gets the
// current one.
func TestRecoverAfterTimeout(t *testing.T) {
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
	if err := e.c.AddPartitions(ctx, s, "slow", pid, ep, []TopicPartition{tpA}); !errors.Is(err, ErrFenced) {
		t.Fatalf("the timed-out producer adds: %v, want fenced", err)
	}
	p1, e1, err := e.c.RecoverProducerID(ctx, s, "slow", time.Second, pid, ep)
	if err != nil || p1 != pid || e1 != ep+1 {
		t.Fatalf("recover after the timeout: %d %d %v, want %d %d", p1, e1, err, pid, ep+1)
	}
	if err := e.c.AddPartitions(ctx, s, "slow", p1, e1, []TopicPartition{tpA}); err != nil {
		t.Fatalf("the recovered producer adds: %v", err)
	}
}

// Naming the current producer when the id is new, or no producer at all,
// is InitProducerID.
func TestRecoverUnknownID(t *testing.T) {
	e := newEnv(t)
	pid, ep, err := e.c.RecoverProducerID(ctx, e.c.NewSession(), "new", time.Minute, 42, 7)
	if err != nil || pid < 0 || ep != 0 {
		t.Fatalf("recover of an unknown id: %d %d %v, want a new producer id at epoch 0", pid, ep, err)
	}
}
