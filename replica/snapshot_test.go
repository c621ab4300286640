package replica

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/sensehq/sense/vfs"
)

// snapSent is a raft snapshot a host sent.
type snapSent struct {
	from, to string
	bytes    int // the frame's payload
}

// snapRecorder is a host's sender that records the raft snapshots it
// sends.
type snapRecorder struct {
	Sender
	self string
	mu   *sync.Mutex
	sent *[]snapSent
}

func (r snapRecorder) Send(to string, kind byte, p []byte) bool {
	if kind == KindRaft {
		if _, m, err := decodeFrame(p); err == nil && m.GetType() == pb.MessageType_MsgSnap {
			r.mu.Lock()
			*r.sent = append(*r.sent, snapSent{from: r.self, to: to, bytes: len(p)})
			r.mu.Unlock()
		}
	}
	return r.Sender.Send(to, kind, p)
}

// trimTo trims the group to offset and waits until every live replica
// starts there.
func (c *testCluster) trimTo(offset int64) {
	c.t.Helper()
	a, err := c.group(c.leader()).Trim(offset)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := a.Wait(); err != nil {
		c.t.Fatal(err)
	}
	for n := range c.hosts {
		deadline := time.Now().Add(10 * time.Second)
		for c.group(n).StartOffset() != offset {
			if time.Now().After(deadline) {
				c.t.Fatalf("%s starts at %d, want %d", n, c.group(n).StartOffset(), offset)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// settle waits until a replica leads, has committed an entry of its term,
// and every live replica has its high watermark.
func (c *testCluster) settle() {
	c.t.Helper()
	c.waitFor("every replica at the leader's high watermark", func() bool {
		g := c.group(c.leader())
		if !g.LeaderReady() {
			return false
		}
		hw := g.HighWatermark()
		for n := range c.hosts {
			if c.group(n).HighWatermark() != hw {
				return false
			}
		}
		return true
	})
}

// waitFor polls cond for up to 20 s.
func (c *testCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("not so within 20s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSnapshot: a replica whose directory is wiped after a trim moved the
// raft log's base catches up through a snapshot: its log starts at the
// leader's start and holds, from there, exactly the leader's bytes (and
// nothing below the start); it can then lead, and a replica wiped in turn
// catches up from it. Snapshots go only to the group's replicas and carry
// no record.
func TestSnapshot(t *testing.T) {
	var mu sync.Mutex
	var snaps []snapSent
	wrap := func(name string, s Sender) Sender { return snapRecorder{Sender: s, self: name, mu: &mu, sent: &snaps} }
	c := newTestClusterWith(t, nil, wrap, "a", "b", "c")
	var bases []int64
	for i := range 400 { // 400 KiB: several 64 KiB segments
		bases = append(bases, c.appendRetry(bigRecord(i)))
	}
	c.converge(bases[len(bases)-1] + 2)
	cut := bases[300]
	c.trimTo(cut)
	l := c.leader()
	if c.group(l).st.baseNext == 0 {
		t.Fatal("the trim did not move the raft log's base: no snapshot would be needed")
	}
	f, o := "", ""
	for _, n := range []string{"a", "b", "c"} {
		switch {
		case n == l:
		case f == "":
			f = n
		default:
			o = n
		}
	}

	// f loses its log; appends go on meanwhile.
	c.stop(f)
	if err := os.RemoveAll(c.dirs[f]); err != nil {
		t.Fatal(err)
	}
	var hw int64
	for i := 400; i < 420; i++ {
		hw = c.appendRetry(bigRecord(i), f) + 2
	}
	c.start(f)
	c.converge(hw)
	c.settle()
	g := c.group(f)
	if n := g.Snapshots(); n != 1 {
		t.Fatalf("%s installed %d snapshots, want 1", f, n)
	}
	if s, ls := g.StartOffset(), g.log.StartOffset(); s != cut || ls != cut {
		t.Fatalf("%s starts at %d, its segments at %d; want both at the leader's start %d", f, s, ls, cut)
	}
	want := c.sameLogs()
	if got := readAll(t, g); !bytes.Equal(got, want) || len(values(t, got)) != 2*(420-300) {
		t.Fatalf("%s reads %d bytes (%d records) from its start; want the leader's %d bytes from %d", f, len(got), len(values(t, got)), len(want), cut)
	}

	// f can lead: with o down, the lead can only go to f.
	c.waitFor(f+" repaired", func() bool { return !g.Repairing() })
	c.stop(o)
	c.waitFor(f+" leads", func() bool {
		if l := c.leader(o); l != f {
			c.group(l).TransferLeadership()
			time.Sleep(50 * time.Millisecond)
		}
		return g.IsLeader()
	})
	hw = c.appendRetry(record(1000), o) + 2
	if l := c.leader(o); l != f {
		t.Fatalf("%s leads, want %s", l, f)
	}

	// o loses its log too, and catches up from f, the leader that came
	// from a snapshot.
	if err := os.RemoveAll(c.dirs[o]); err != nil {
		t.Fatal(err)
	}
	c.start(o)
	c.converge(hw)
	c.settle()
	if n := c.group(o).Snapshots(); n != 1 {
		t.Fatalf("%s installed %d snapshots, want 1", o, n)
	}
	if s := c.group(o).StartOffset(); s != cut {
		t.Fatalf("%s starts at %d, want %d", o, s, cut)
	}
	c.sameLogs()

	mu.Lock()
	defer mu.Unlock()
	var to []string
	for _, s := range snaps {
		if s.to != f && s.to != o {
			t.Fatalf("%s sent a snapshot to %s, which lost nothing", s.from, s.to)
		}
		if s.bytes > 128 {
			t.Fatalf("%s sent %s a snapshot of %d bytes: a snapshot carries no record", s.from, s.to, s.bytes)
		}
		to = append(to, s.to)
	}
	if len(to) < 2 {
		t.Fatalf("snapshots sent to %v; want to %s and to %s", to, f, o)
	}
}

// crashFS is one host's view of a MemFS whose power fails at its crashAt-th
// mutating operation (a write, truncate, sync, create, rename, removal or
// directory sync): that operation is carried out (a sync is not), and
// every later one fails, as the host is gone. Reads go on, so that the
// dying host fails its writes rather than panic on a read; the test stops
// it, then calls the MemFS's Crash, which keeps only what was durable.
type crashFS struct {
	mem     *vfs.MemFS
	mu      sync.Mutex
	ops     int
	crashAt int // 0: never
	down    bool
}

var errPowerLoss = errors.New("test: power lost")

func (c *crashFS) do(apply bool, op func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return errPowerLoss
	}
	c.ops++
	if c.crashAt > 0 && c.ops >= c.crashAt {
		if apply {
			op()
		}
		c.down = true
		return errPowerLoss
	}
	return op()
}

func (c *crashFS) dead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down
}

func (c *crashFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &crashFile{c: c, File: f}, nil
}

func (c *crashFS) Create(name string) (f vfs.File, err error) {
	err = c.do(true, func() error { f, err = c.mem.Create(name); return err })
	if err != nil {
		return nil, err
	}
	return c.wrap(f, nil)
}
func (c *crashFS) OpenRW(name string) (vfs.File, error) { return c.wrap(c.mem.OpenRW(name)) }
func (c *crashFS) Open(name string) (vfs.File, error)   { return c.wrap(c.mem.Open(name)) }
func (c *crashFS) Remove(name string) error {
	return c.do(true, func() error { return c.mem.Remove(name) })
}
func (c *crashFS) Rename(o, n string) error {
	return c.do(true, func() error { return c.mem.Rename(o, n) })
}
func (c *crashFS) MkdirAll(dir string) error {
	return c.do(false, func() error { return c.mem.MkdirAll(dir) })
}
func (c *crashFS) List(dir string) ([]string, error) { return c.mem.List(dir) }
func (c *crashFS) SyncDir(dir string) error {
	return c.do(false, func() error { return c.mem.SyncDir(dir) })
}

type crashFile struct {
	c *crashFS
	vfs.File
}

func (f *crashFile) WriteAt(p []byte, off int64) (n int, err error) {
	err = f.c.do(true, func() error { n, err = f.File.WriteAt(p, off); return err })
	return n, err
}
func (f *crashFile) Truncate(size int64) error {
	return f.c.do(true, func() error { return f.File.Truncate(size) })
}
func (f *crashFile) Sync() error { return f.c.do(false, f.File.Sync) }

// copyDir returns a new MemFS holding a durable copy of dir's files in
// src: a replica's disk as a backup taken then would restore it.
func copyDir(t *testing.T, src *vfs.MemFS, dir string) *vfs.MemFS {
	t.Helper()
	dst := vfs.NewMem()
	if err := dst.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	names, err := src.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := src.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		f, err := dst.Create(filepath.Join(dir, n))
		if err == nil {
			_, err = f.WriteAt(b, 0)
		}
		if err == nil {
			err = f.Sync()
		}
		if err == nil {
			err = f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestSnapshotCrash cuts the power of a replica that lost its log at file
// operations of its return — every one of opening, noticing the loss and
// installing the snapshot, then some of the appends that refill its log —
// and starts it again on what the crash left: it opens, completes the
// install and catches up, and ends with the leader's bytes from the
// leader's start. The replica comes back with an empty disk, or with an
// old copy of its directory, whose log, far behind the leader's start,
// the install deletes.
func TestSnapshotCrash(t *testing.T) {
	for _, disk := range []string{"empty", "old copy"} {
		t.Run(disk, func(t *testing.T) { snapshotCrash(t, disk == "old copy") })
	}
}

func snapshotCrash(t *testing.T, oldCopy bool) {
	names := []string{"a", "b", "c"}
	c := &testCluster{t: t, net: newMemNet(t), dirs: map[string]string{}, hosts: map[string]*Host{}, names: names,
		fs: map[string]vfs.FS{}, segBytes: 16 << 10}
	for _, n := range names {
		c.dirs[n] = "/" + n
		c.fs[n] = vfs.NewMem()
		c.start(n)
	}
	t.Cleanup(func() {
		for _, h := range c.hosts {
			h.Close()
		}
	})
	f := ""
	for _, n := range names {
		if n != c.leader() {
			f = n
		}
	}
	kill := func() {
		c.net.detach(f)
		c.hosts[f].Close() // fails on a dead file system: the power is out
		delete(c.hosts, f)
	}
	var bases []int64
	var backup *vfs.MemFS
	for i := range 60 { // 60 KiB: a few 16 KiB segments
		bases = append(bases, c.appendRetry(bigRecord(i)))
		if i == 20 {
			// f's disk as a backup taken now holds it: 21 batches, while
			// the leader's log will start after 40.
			c.converge(bases[i] + 2)
			kill()
			backup = copyDir(t, c.fs[f].(*vfs.MemFS), c.dirs[f])
			c.start(f)
		}
	}
	hw := bases[len(bases)-1] + 2
	c.converge(hw)
	cut := bases[40]
	c.trimTo(cut)
	rng := rand.New(rand.NewPCG(7, 11))
	// Each return makes a new leader (the lost log's repair), whose first
	// entry lengthens the log: past the install, crash points thin out so
	// that one return outruns them.
	var beforeInstall, afterInstall int
	for at := 1; ; at += max(1, (at-40)/3) {
		kill()
		mem := vfs.NewMem() // its disk replaced
		if oldCopy {
			mem = copyDir(t, backup, c.dirs[f])
		}
		cfs := &crashFS{mem: mem, crashAt: at}
		c.fs[f] = cfs
		if err := c.tryStart(f); err != nil {
			if !errors.Is(err, errPowerLoss) {
				t.Fatalf("crash at operation %d: open: %v", at, err)
			}
			beforeInstall++
		} else {
			g, caught := c.group(f), false
			c.waitFor(f+" crashed or caught up", func() bool {
				caught = g.HighWatermark() >= hw && g.Snapshots() > 0
				return caught || cfs.dead()
			})
			if caught {
				break // its whole return ran before the crash point
			}
			if g.Snapshots() == 0 {
				beforeInstall++
			} else {
				afterInstall++
			}
			kill()
		}
		mem.Crash(rng)
		c.fs[f] = mem
		c.start(f) // on what the crash left
		c.converge(hw)
		if s := c.group(f).StartOffset(); s != cut {
			t.Fatalf("crash at operation %d: %s starts at %d, want %d", at, f, s, cut)
		}
		c.settle()
		c.sameLogs()
	}
	t.Logf("%d crash points before the install completed, %d after", beforeInstall, afterInstall)
	if beforeInstall < 5 || afterInstall < 5 {
		t.Fatalf("crashes before the install complete: %d, after: %d; want both", beforeInstall, afterInstall)
	}
}
