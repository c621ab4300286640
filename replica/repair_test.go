package replica

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/seglog"
)

// flipByte flips one byte of the first segment file in dir, at pos.
func flipByte(t *testing.T, dir string, pos int64) {
	t.Helper()
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !strings.HasSuffix(n.Name(), ".log") {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, n.Name()), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, pos); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x40
		if _, err := f.WriteAt(b, pos); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no segment file in %s", dir)
}

// repairCluster starts three replicas holding 20 committed batches and
// returns them, the leader and a follower.
func repairCluster(t *testing.T) (c *testCluster, leader, follower string) {
	c = newTestCluster(t, "n1", "n2", "n3")
	leader = c.leader()
	for i := range 20 {
		c.appendRetry(record(i))
	}
	c.converge(c.group(leader).HighWatermark())
	for n := range c.hosts {
		if n != leader {
			follower = n
		}
	}
	return c, leader, follower
}

// TestRepairDamagedFollower: a bit flipped in a follower's segment is
// found by a read, which is refused (nothing damaged is served); the
// follower cuts its log there, fetches the rest from the leader again,
// and ends with a log identical to the others'.
func TestRepairDamagedFollower(t *testing.T) {
	c, l, f := repairCluster(t)
	flipByte(t, c.dirs[f], 300) // inside the second or third batch
	g := c.group(f)
	if _, err := g.Read(nil, 0, 1<<20); !errors.Is(err, seglog.ErrCorrupt) {
		t.Fatalf("read over the damage: %v, want a corruption error", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for g.Repairs() == 0 || g.Repairing() || g.HighWatermark() < c.group(l).HighWatermark() {
		if time.Now().After(deadline) {
			t.Fatalf("not repaired after 20s: repairs %d, repairing %v, hw %d of %d", g.Repairs(), g.Repairing(), g.HighWatermark(), c.group(l).HighWatermark())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := g.Read(nil, 0, 1<<20); err != nil {
		t.Fatalf("read after the repair: %v", err)
	}
	// The lead moved (the old leader handed it over to the third replica):
	// wait for the new leader's first entry everywhere.
	nl := c.leader(l, f)
	c.converge(c.group(nl).HighWatermark())
	c.sameLogs()
	// It takes part again: more appends commit everywhere.
	c.appendRetry(record(99))
	c.converge(c.group(nl).HighWatermark())
	c.sameLogs()
}

// TestRepairDamagedLeader: the leader's own log is damaged. Raft reads the
// damaged batch to send it to a follower that restarted empty-handed; the
// leader cuts its log, gives up the lead, the others elect a leader, and
// the old leader is repaired from it. No replica ever fails or panics.
func TestRepairDamagedLeader(t *testing.T) {
	c, l, _ := repairCluster(t)
	flipByte(t, c.dirs[l], 300)
	// A read on the leader finds it.
	if _, err := c.group(l).Read(nil, 0, 1<<20); !errors.Is(err, seglog.ErrCorrupt) {
		t.Fatalf("read over the damage: %v, want a corruption error", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.group(l).Repairs() == 0 || c.group(l).Repairing() {
		if time.Now().After(deadline) {
			t.Fatalf("the old leader is not repaired after 30s (repairs %d)", c.group(l).Repairs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	nl := c.leader()
	c.appendRetry(record(99))
	c.converge(c.group(nl).HighWatermark())
	c.sameLogs()
}

// FuzzDecodeRepair: any payload decodes or gives errBadRepair, and what
// decodes encodes back to the same bytes.
func FuzzDecodeRepair(f *testing.F) {
	f.Add(encodeRepair("p/h/0"))
	f.Add([]byte{})
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 'k'})
	f.Fuzz(func(t *testing.T, p []byte) {
		key, err := decodeRepair(p)
		if err != nil {
			if !errors.Is(err, errBadRepair) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		if re := encodeRepair(key); string(re) != string(p) {
			t.Fatalf("re-encoded %x from %x", re, p)
		}
	})
}

// TestRepairDamagedOnOpen: a follower stops; a bit of its log flips and
// its checkpoint is lost (as in a crash before the next one), so recovery
// scans the whole log and finds the damage. It cuts the log there instead
// of refusing to open, and the follower is repaired from the leader.
func TestRepairDamagedOnOpen(t *testing.T) {
	c, _, f := repairCluster(t)
	c.stop(f)
	flipByte(t, c.dirs[f], 300)
	if err := os.Remove(filepath.Join(c.dirs[f], "checkpoint")); err != nil {
		t.Fatal(err)
	}
	c.start(f)
	g := c.group(f)
	if g.Repairs() != 1 {
		t.Fatalf("repairs %d after opening a damaged log, want 1", g.Repairs())
	}
	deadline := time.Now().Add(20 * time.Second)
	for g.Repairing() {
		if time.Now().After(deadline) {
			t.Fatal("still repairing after 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	nl := c.leader(f)
	c.appendRetry(record(99))
	c.converge(c.group(nl).HighWatermark())
	c.sameLogs()
}

// TestRepairLostLog: a follower whose directory is wiped comes back with
// nothing while its leader believes it holds the log. The first heartbeat
// tells it so (its commit index lies past the empty log, on which raft
// would panic): it repairs as after a cut, a new leader refills its log,
// and every replica ends with the same bytes.
func TestRepairLostLog(t *testing.T) {
	c, _, follower := repairCluster(t)
	c.stop(follower)
	if err := os.RemoveAll(c.dirs[follower]); err != nil {
		t.Fatal(err)
	}
	c.appendRetry(record(100), follower)
	c.start(follower)
	hw := c.appendRetry(record(101)) + 2
	c.converge(hw)
	c.settle()
	c.sameLogs()
	g := c.group(follower)
	if g.Repairs() == 0 {
		t.Fatal("the wiped follower did not notice it lost its log")
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.Repairing() {
		if time.Now().After(deadline) {
			t.Fatal("the wiped follower is still repairing 10s after it caught up")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
