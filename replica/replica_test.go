package replica

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
)

// memNet connects hosts in process: each Send is delivered, in order per
// link, by a goroutine of the receiving end. Links can be cut.
type memNet struct {
	mu    sync.Mutex
	hosts map[string]*Host
	cut   map[[2]string]bool
	bytes map[[2]string]int
	// frames counts every frame sent, delivered or not.
	frames int
	queue  map[string]chan frame
	wg     sync.WaitGroup
	quit   chan struct{}
}

type frame struct {
	from    string
	kind    byte
	payload []byte
}

func newMemNet(t *testing.T) *memNet {
	n := &memNet{hosts: map[string]*Host{}, cut: map[[2]string]bool{}, bytes: map[[2]string]int{}, queue: map[string]chan frame{}, quit: make(chan struct{})}
	t.Cleanup(func() { close(n.quit); n.wg.Wait() })
	return n
}

// endpoint is one node's Sender.
type endpoint struct {
	n    *memNet
	self string
}

func (e endpoint) Send(to string, kind byte, payload []byte) bool {
	n := e.n
	n.mu.Lock()
	q := n.queue[to]
	cut := n.cut[[2]string{e.self, to}] || n.cut[[2]string{to, e.self}]
	if !cut {
		n.bytes[[2]string{e.self, to}] += len(payload)
	}
	n.frames++
	n.mu.Unlock()
	if q == nil || cut {
		return false
	}
	select {
	case q <- frame{e.self, kind, payload}:
		return true
	default:
		return false
	}
}

// attach makes h reachable as name.
func (n *memNet) attach(name string, h *Host) {
	q := make(chan frame, 4096)
	n.mu.Lock()
	n.hosts[name] = h
	n.queue[name] = q
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			select {
			case <-n.quit:
				return
			case f := <-q:
				n.mu.Lock()
				cut := n.cut[[2]string{f.from, name}] || n.cut[[2]string{name, f.from}]
				n.mu.Unlock()
				if !cut {
					h.HandleFrame(f.from, f.kind, f.payload)
				}
			}
		}
	}()
}

func (n *memNet) detach(name string) {
	n.mu.Lock()
	delete(n.hosts, name)
	delete(n.queue, name)
	n.mu.Unlock()
}

func (n *memNet) setCut(a, b string, cut bool) {
	n.mu.Lock()
	n.cut[[2]string{a, b}] = cut
	n.mu.Unlock()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// cluster is three in-process replicas of one group.
type testCluster struct {
	t     *testing.T
	net   *memNet
	dirs  map[string]string
	hosts map[string]*Host
	names []string
	// alive, when set, is every host's HostOptions.Alive (groups go quiet).
	alive func(string) bool
	// learners are the names of names that hold the group as learners.
	learners []string
	// wrap, when set, wraps each host's sender (tests that hold a host's
	// sends).
	wrap func(name string, s Sender) Sender
	// fs, when it has an entry for a host, holds that host's state files
	// and logs (else the operating system's).
	fs map[string]vfs.FS
	// segBytes, when set, is the replicas' segment size (else 64 KiB).
	segBytes int64
}

func newTestCluster(t *testing.T, names ...string) *testCluster {
	return newTestClusterAlive(t, nil, names...)
}

// newTestClusterAlive is newTestCluster whose hosts judge liveness by alive
// (so their idle groups go quiet).
func newTestClusterAlive(t *testing.T, alive func(string) bool, names ...string) *testCluster {
	return newTestClusterWith(t, alive, nil, names...)
}

// newTestClusterWith is newTestClusterAlive whose hosts send through
// wrap(name, sender) when wrap is set.
func newTestClusterWith(t *testing.T, alive func(string) bool, wrap func(string, Sender) Sender, names ...string) *testCluster {
	c := &testCluster{t: t, net: newMemNet(t), dirs: map[string]string{}, hosts: map[string]*Host{}, names: names, alive: alive, wrap: wrap}
	root := t.TempDir()
	for _, n := range names {
		c.dirs[n] = filepath.Join(root, n)
		c.start(n)
	}
	t.Cleanup(func() {
		for _, h := range c.hosts {
			h.Close()
		}
	})
	return c
}

func (c *testCluster) start(name string) {
	if err := c.tryStart(name); err != nil {
		c.t.Fatal(err)
	}
}

// tryStart starts host name and opens its replica.
func (c *testCluster) tryStart(name string) error {
	var s Sender = endpoint{c.net, name}
	if c.wrap != nil {
		s = c.wrap(name, s)
	}
	ho := HostOptions{Tick: 5 * time.Millisecond, Logger: quiet, Alive: c.alive}
	lo := seglog.Options{Logger: quiet, SegmentBytes: 64 << 10}
	if c.segBytes > 0 {
		lo.SegmentBytes = c.segBytes
	}
	if fs := c.fs[name]; fs != nil {
		ho.FS, lo.FS = fs, fs
	}
	h := NewHost(name, s, ho)
	voters := slices.DeleteFunc(slices.Clone(c.names), func(n string) bool { return slices.Contains(c.learners, n) })
	if _, err := h.Open(GroupOptions{Key: "p/0", Dir: c.dirs[name], Replicas: voters, Learners: c.learners,
		Log: lo}); err != nil {
		h.Close()
		return err
	}
	c.hosts[name] = h
	c.net.attach(name, h)
	return nil
}

func (c *testCluster) stop(name string) {
	c.net.detach(name)
	if err := c.hosts[name].Close(); err != nil {
		c.t.Fatal(err)
	}
	delete(c.hosts, name)
}

func (c *testCluster) group(name string) *Group { return c.hosts[name].Group("p/0") }

// leader waits for one live replica to lead, other than not.
func (c *testCluster) leader(not ...string) string {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
	next:
		for n, h := range c.hosts {
			for _, x := range not {
				if n == x {
					continue next
				}
			}
			if g := h.Group("p/0"); g != nil && g.IsLeader() {
				return n
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatal("no leader elected within 20s")
	return ""
}

func record(i int) []byte {
	var b batch.Builder
	b.Reset(-1, -1, -1)
	b.Add(int64(1000+i), []byte(fmt.Sprintf("k%d", i)), []byte(fmt.Sprintf("value %d", i)))
	b.Add(int64(1000+i), nil, []byte("second"))
	return append([]byte(nil), b.Finish()...)
}

func idempotent(pid int64, seq int32) []byte {
	var b batch.Builder
	b.Reset(pid, 0, seq)
	b.Add(1, nil, []byte(fmt.Sprintf("pid %d seq %d", pid, seq)))
	return append([]byte(nil), b.Finish()...)
}

// appendRetry appends b to whichever replica leads, retrying retriable
// refusals, and returns the base offset.
func (c *testCluster) appendRetry(b []byte, not ...string) int64 {
	c.t.Helper()
	for range 200 {
		g := c.group(c.leader(not...))
		a, err := g.Append(append([]byte(nil), b...), false, false, false)
		if err == nil {
			var off int64
			if off, err = a.Wait(); err == nil {
				return off
			}
		}
		if !result.CodeOf(err).Retriable() {
			c.t.Fatalf("append: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatal("append kept failing")
	return 0
}

// readAll reads every committed batch of g.
func readAll(t *testing.T, g *Group) []byte {
	t.Helper()
	var out []byte
	off := g.StartOffset()
	for off < g.HighWatermark() {
		n := len(out)
		var err error
		out, err = g.Read(out, off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) == n {
			t.Fatalf("no progress reading at %d (high watermark %d)", off, g.HighWatermark())
		}
		p := out[n:]
		for len(p) > 0 {
			h, err := batch.ParseHeader(p)
			if err != nil {
				t.Fatal(err)
			}
			off = h.NextOffset()
			p = p[h.Size():]
		}
	}
	return out
}

// values returns the values of the data records in batches, skipping
// control batches.
func values(t *testing.T, p []byte) []string {
	t.Helper()
	var vs []string
	for len(p) > 0 {
		h, err := batch.Check(p[:mustSize(t, p)])
		if err != nil {
			t.Fatal(err)
		}
		if h.Attributes&batch.AttrControl == 0 {
			it, err := batch.NewIter(p[:h.Size()])
			if err != nil {
				t.Fatal(err)
			}
			for it.Next() {
				vs = append(vs, string(it.Record().Value))
			}
		}
		p = p[h.Size():]
	}
	return vs
}

func mustSize(t *testing.T, p []byte) int {
	n, err := batch.Size(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// converge waits until every live replica's high watermark reaches hw.
func (c *testCluster) converge(hw int64) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		for n := range c.hosts {
			ok = ok && c.group(n).HighWatermark() >= hw
		}
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	for n := range c.hosts {
		c.t.Logf("%s: high watermark %d next %d", n, c.group(n).HighWatermark(), c.group(n).NextOffset())
	}
	c.t.Fatalf("replicas did not reach high watermark %d within 20s", hw)
}

// sameLogs checks every live replica holds the same committed bytes and
// returns them.
func (c *testCluster) sameLogs() []byte {
	c.t.Helper()
	var want []byte
	first := ""
	for n := range c.hosts {
		got := readAll(c.t, c.group(n))
		if first == "" {
			want, first = got, n
			continue
		}
		if !bytes.Equal(got, want) {
			c.t.Fatalf("replica %s holds %d committed bytes that differ from %s's %d", n, len(got), first, len(want))
		}
	}
	return want
}

func TestReplicateAndRead(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	var want []string
	var last int64
	for i := range 50 {
		off := c.appendRetry(record(i))
		if off < last {
			t.Fatalf("batch %d at offset %d, before the previous one's %d", i, off, last)
		}
		last = off
		want = append(want, fmt.Sprintf("value %d", i), "second")
	}
	g := c.group(c.leader())
	c.converge(g.HighWatermark())
	got := values(t, c.sameLogs())
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replicas hold %v, want %v", got, want)
	}
}

func TestFollowerRefusesAppend(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	l := c.leader()
	for n := range c.hosts {
		if n == l {
			continue
		}
		_, err := c.group(n).Append(record(0), false, false, false)
		if result.CodeOf(err) != result.NotLeader {
			t.Fatalf("append on follower %s: %v, want NOT_LEADER", n, err)
		}
	}
}

func TestFailoverKeepsAcknowledged(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	var want []string
	for round := range 3 {
		for i := range 20 {
			c.appendRetry(record(round*100 + i))
			want = append(want, fmt.Sprintf("value %d", round*100+i), "second")
		}
		old := c.leader()
		c.stop(old)
		nl := c.leader(old)
		if nl == old {
			t.Fatal("the stopped node still leads")
		}
		for i := 20; i < 25; i++ {
			c.appendRetry(record(round*100 + i))
			want = append(want, fmt.Sprintf("value %d", round*100+i), "second")
		}
		c.start(old) // it catches up from the new leader
		c.converge(c.group(nl).HighWatermark())
	}
	got := values(t, c.sameLogs())
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after failovers replicas hold\n%v\nwant\n%v", got, want)
	}
}

func TestIdempotentRetryAfterFailover(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	b := idempotent(7, 0)
	first := c.appendRetry(b)
	old := c.leader()
	c.converge(c.group(old).HighWatermark())
	c.stop(old)
	again := c.appendRetry(b, old)
	if again != first {
		t.Fatalf("retry after failover stored at %d, the original is at %d", again, first)
	}
	next := c.appendRetry(idempotent(7, 1), old)
	if next <= first {
		t.Fatalf("next sequence at %d, not after %d", next, first)
	}
	got := values(t, readAll(t, c.group(c.leader(old))))
	want := []string{"pid 7 seq 0", "pid 7 seq 1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("log holds %v, want %v", got, want)
	}
	// A gap is refused.
	g := c.group(c.leader(old))
	a, err := g.Append(idempotent(7, 5), false, false, false)
	if err == nil {
		_, err = a.Wait()
	}
	if !errors.Is(err, seglog.ErrOutOfOrderSequence) {
		t.Fatalf("sequence gap: %v, want out of order", err)
	}
}

func TestIsolatedLeaderStopsAcknowledging(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	c.appendRetry(record(0))
	old := c.leader()
	for _, n := range c.names {
		if n != old {
			c.net.setCut(old, n, true)
		}
	}
	// The isolated leader may still accept a proposal, but never
	// acknowledges it: no quorum.
	a, err := c.group(old).Append(record(1), false, false, false)
	if err == nil {
		if _, err = a.Wait(); err == nil {
			t.Fatal("an isolated leader acknowledged a write")
		}
	}
	if !result.CodeOf(err).Retriable() {
		t.Fatalf("isolated leader's refusal is not retriable: %v", err)
	}
	nl := c.leader(old)
	c.appendRetry(record(2), old)
	for _, n := range c.names {
		c.net.setCut(old, n, false)
	}
	c.converge(c.group(nl).HighWatermark())
	got := values(t, c.sameLogs())
	want := []string{"value 0", "second", "value 2", "second"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after healing replicas hold %v, want %v", got, want)
	}
}

func TestFollowerForwardsToLeader(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	l := c.leader()
	c.appendRetry(record(0)) // followers learn the leader
	c.converge(c.group(l).HighWatermark())
	want := []string{"value 0", "second"}
	seq := int32(0)
	var lastOff int64
	var err error
	for n := range c.hosts {
		if n == l {
			continue
		}
		for i := range 5 {
			a, err := c.group(n).Append(idempotent(11, seq), false, false, true)
			if err != nil {
				t.Fatal(err)
			}
			if lastOff, err = a.Wait(); err != nil {
				t.Fatalf("forwarded append %d from %s: %v", i, n, err)
			}
			want = append(want, fmt.Sprintf("pid 11 seq %d", seq))
			seq++
		}
	}
	// A forwarded retry of a stored batch is answered with its offsets.
	f := ""
	for n := range c.hosts {
		if n != l {
			f = n
		}
	}
	a, err := c.group(f).Append(idempotent(11, seq-1), false, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if off, err := a.Wait(); err != nil || off != lastOff {
		t.Fatalf("forwarded retry: offset %d, %v; want %d", off, err, lastOff)
	}
	// A forwarded sequence gap keeps its identity.
	a, err = c.group(f).Append(idempotent(11, 99), false, false, true)
	if err == nil {
		_, err = a.Wait()
	}
	if !errors.Is(err, seglog.ErrOutOfOrderSequence) {
		t.Fatalf("forwarded gap: %v", err)
	}
	c.converge(c.group(l).HighWatermark())
	if got := values(t, c.sameLogs()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("log holds %v, want %v", got, want)
	}
}

// TestForwardKeepsOrder: a follower's forwarded appends reach the leader
// in the order they were made, so a producer's batches issued back to back
// without waiting keep their sequence order (strict sequences: any
// reordering would be refused as out of order or duplicate).
func TestForwardKeepsOrder(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	l := c.leader()
	c.appendRetry(record(0)) // followers learn the leader
	c.converge(c.group(l).HighWatermark())
	f := ""
	for n := range c.hosts {
		if n != l {
			f = n
		}
	}
	const n = 400
	acks := make([]*Ack, n)
	for i := range n {
		a, err := c.group(f).Append(idempotent(12, int32(i)), false, false, true)
		if err != nil {
			t.Fatal(err)
		}
		acks[i] = a
	}
	prev := int64(-1)
	for i, a := range acks {
		off, err := a.Wait()
		if err != nil {
			t.Fatalf("forwarded append %d of %d: %v", i, n, err)
		}
		if off <= prev {
			t.Fatalf("append %d at offset %d, not after the previous one's %d", i, off, prev)
		}
		prev = off
	}
}

func TestTransferLeadership(t *testing.T) {
	c := newTestCluster(t, "n1", "n2", "n3")
	c.appendRetry(record(0))
	old := c.leader()
	c.converge(c.group(old).HighWatermark())
	if left := c.hosts[old].TransferAll(10 * time.Second); left != 0 {
		t.Fatalf("%s still leads %d groups after the transfer", old, left)
	}
	nl := c.leader(old)
	if nl == old {
		t.Fatal("leadership did not move")
	}
	c.appendRetry(record(1))
}

// TestLearnerFollows: a learner holds and applies the group's log like a
// voter, but never leads it and does not count for a quorum: with two of
// the three voters down, the third and the learner elect no one; a voter
// back makes a leader among the voters. A leader stopping hands the lead
// to a voter, never to the learner.
func TestLearnerFollows(t *testing.T) {
	c := &testCluster{t: t, net: newMemNet(t), dirs: map[string]string{}, hosts: map[string]*Host{},
		names: []string{"a", "b", "c", "d"}, learners: []string{"d"}}
	root := t.TempDir()
	for _, n := range c.names {
		c.dirs[n] = filepath.Join(root, n)
		c.start(n)
	}
	t.Cleanup(func() {
		for _, h := range c.hosts {
			h.Close()
		}
	})
	var hw int64
	for i := range 20 {
		hw = c.appendRetry(record(i)) + 2
	}
	c.converge(hw)
	want := c.sameLogs()
	if got := readAll(t, c.group("d")); string(got) != string(want) {
		t.Fatal("the learner's log differs from the voters'")
	}
	for range 3 {
		l := c.leader()
		if l == "d" {
			t.Fatal("the learner leads")
		}
		c.group(l).TransferLeadership()
		time.Sleep(50 * time.Millisecond)
	}
	l := c.leader()
	var others []string
	for _, n := range []string{"a", "b", "c"} {
		if n != l {
			others = append(others, n)
		}
	}
	// Down: the leader and one other voter. Left: one voter and the
	// learner, no quorum.
	c.stop(l)
	c.stop(others[0])
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		for _, n := range []string{others[1], "d"} {
			if c.group(n).IsLeader() {
				t.Fatalf("%s leads with one voter of three up (d is a learner)", n)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.start(l)
	if got := c.leader(); got == "d" {
		t.Fatal("the learner leads")
	}
	hw = c.appendRetry(record(99)) + 2
	deadline = time.Now().Add(10 * time.Second)
	for c.group("d").HighWatermark() < hw {
		if time.Now().After(deadline) {
			t.Fatalf("the learner's high watermark is %d, the log's %d", c.group("d").HighWatermark(), hw)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
