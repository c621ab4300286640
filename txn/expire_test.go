package txn

import (
	"testing"
	"time"
)

// An id with no transaction under way and no write for IDExpiration is
// forgotten (also after a restart), and its producer gets a new producer
// id when it comes back; an id idle for less, or with a transaction under
// way, stays.
func TestIDExpires(t *testing.T) {
	e := newEnv(t)
	clock := newTestClock(time.Unix(1_000_000, 0))
	e.c.cfg.Now, e.c.cfg.IDExpiration, e.c.cfg.MaxTimeout = clock.Now, time.Hour, 3*time.Hour
	s := e.c.NewSession()
	pid, _, err := e.c.InitProducerID(ctx, s, "idle", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	opid, oep, _ := e.c.InitProducerID(ctx, s, "ongoing", 2*time.Hour)
	if err := e.c.AddPartitions(ctx, s, "ongoing", opid, oep, []TopicPartition{tpA}); err != nil {
		t.Fatal(err)
	}
	clock.Add(59 * time.Minute)
	e.c.tick()
	if _, cur := e.c.current("idle"); cur == nil {
		t.Fatal("an id idle for 59 minutes of an hour's expiration was forgotten")
	}
	clock.Add(2 * time.Minute)
	e.c.tick()
	if _, cur := e.c.current("idle"); cur != nil {
		t.Fatalf("an id idle for 61 minutes is still there: %+v", cur)
	}
	e.c.mu.Lock()
	_, kept := e.c.ids["idle"]
	e.c.mu.Unlock()
	if kept {
		t.Fatal("the expired id's entry is still held")
	}
	if _, cur := e.c.current("ongoing"); cur == nil || cur.State != Ongoing {
		t.Fatalf("an id with a transaction under way: %+v, want it kept, ongoing", cur)
	}

	// After a restart the id is still gone; its producer starts over.
	e.close()
	open(t, e)
	e.c.cfg.Now = clock.Now
	if _, cur := e.c.current("idle"); cur != nil {
		t.Fatalf("the expired id is back after a restart: %+v", cur)
	}
	if _, cur := e.c.current("ongoing"); cur == nil {
		t.Fatal("the ongoing id was lost in the restart")
	}
	npid, nep, err := e.c.InitProducerID(ctx, e.c.NewSession(), "idle", time.Minute)
	if err != nil || npid == pid || nep != 0 {
		t.Fatalf("the expired id's producer again: pid %d epoch %d %v, want a new producer id (was %d) at epoch 0", npid, nep, err, pid)
	}
}
