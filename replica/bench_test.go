package replica_test

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/cluster"
	"github.com/sensehq/sense/replica"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/sensetest"
	"github.com/sensehq/sense/vfs"
)

// BenchmarkReplicatedAppend: three replicas in process over the real
// cluster transport on loopback, fsync always; each op is one batch of 100
// events of 100 bytes, 16 appends in flight. It reports events/s, the p50
// and p99 of an append's ack in µs and the process's CPU time per append
// (the three replicas together).
func BenchmarkReplicatedAppend(b *testing.B) {
	leader, _ := startBenchGroup(b)
	var bl batch.Builder
	bl.Reset(-1, -1, -1)
	val := make([]byte, 100)
	for range 100 {
		bl.Add(1, nil, val)
	}
	data := append([]byte(nil), bl.Finish()...)
	cpu0 := sensetest.CPUTime()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	for range b.N {
		sem <- struct{}{}
		t0 := time.Now()
		a, err := leader.Append(data, true, false, false)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Wait(); err != nil {
				b.Error(err)
			}
			d := time.Since(t0)
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
			<-sem
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(b.N)*100/b.Elapsed().Seconds(), "events/s")
	sensetest.ReportCPU(b, cpu0)
}

// BenchmarkReplicatedAckLatency is BenchmarkReplicatedAppend with one
// append at a time, each a batch of 10 events of 100 bytes: an op is a
// commit's whole round (the leader's write and sync, a follower's, the
// messages between). It reports the p50 and p99 of an append's ack in µs
// and the process's CPU time (user + system, the three replicas together)
// per append. With "forwarded" the appends are made on a follower, which
// forwards each to the leader (the router's hop).
func BenchmarkReplicatedAckLatency(b *testing.B) {
	b.Run("leader", func(b *testing.B) { benchAckLatency(b, false) })
	b.Run("forwarded", func(b *testing.B) { benchAckLatency(b, true) })
}

func benchAckLatency(b *testing.B, forwarded bool) {
	g, follower := startBenchGroup(b)
	if forwarded {
		g = follower
	}
	var bl batch.Builder
	bl.Reset(-1, -1, -1)
	val := make([]byte, 100)
	for range 10 {
		bl.Add(1, nil, val)
	}
	data := append([]byte(nil), bl.Finish()...)
	lat := make([]time.Duration, 0, b.N)
	cpu0 := sensetest.CPUTime()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		a, err := g.Append(data, true, false, forwarded)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.Wait(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	cpu := sensetest.CPUTime() - cpu0
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkReplicatedPaced appends a batch of 10 events of 100 bytes every
// 250 µs (4,000 appends/s, open loop: an append is due at its time
// whatever the ones before did) to three replicas in process, fsync
// always, and reports the p50 and p99 of an append's ack in µs, of the
// time until a follower's readers see it (its high watermark passes it),
// and the process's CPU time per append: a steady load well below the
// maximum, where one append's ack should not wait for the next one's sync.
func BenchmarkReplicatedPaced(b *testing.B) {
	leader, follower := startBenchGroup(b)
	// The follower's high watermark as it moves, with when.
	type seen struct {
		at time.Time
		hw int64
	}
	var seenMu sync.Mutex
	var seens []seen
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			ch := follower.Changed()
			hw := follower.HighWatermark()
			seenMu.Lock()
			seens = append(seens, seen{time.Now(), hw})
			seenMu.Unlock()
			select {
			case <-ch:
			case <-stop:
				return
			}
		}
	}()
	var bl batch.Builder
	bl.Reset(-1, -1, -1)
	val := make([]byte, 100)
	for range 10 {
		bl.Add(1, nil, val)
	}
	data := append([]byte(nil), bl.Finish()...)
	var mu sync.Mutex
	var wg sync.WaitGroup
	lat := make([]time.Duration, 0, b.N)
	type sent struct {
		due time.Time
		end int64
	}
	sents := make([]sent, 0, b.N)
	tick := time.NewTicker(250 * time.Microsecond)
	defer tick.Stop()
	cpu0 := sensetest.CPUTime()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := <-tick.C
		a, err := leader.Append(data, true, false, false)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			base, err := a.Wait()
			if err != nil {
				b.Error(err)
			}
			d := time.Since(t0)
			mu.Lock()
			lat = append(lat, d)
			sents = append(sents, sent{t0, base + 10})
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	cpu := sensetest.CPUTime() - cpu0
	for follower.HighWatermark() < leader.HighWatermark() {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	<-watched
	var vis []time.Duration
	for _, s := range sents {
		i, _ := slices.BinarySearchFunc(seens, s.end, func(e seen, end int64) int {
			if e.hw < end {
				return -1
			}
			return 1
		})
		if i < len(seens) {
			vis = append(vis, seens[i].at.Sub(s.due))
		}
	}
	slices.Sort(lat)
	slices.Sort(vis)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	if len(vis) > 0 {
		b.ReportMetric(float64(vis[len(vis)/2].Microseconds()), "follower-p50-µs")
		b.ReportMetric(float64(vis[len(vis)*99/100].Microseconds()), "follower-p99-µs")
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

// startBenchGroup starts three replicas of one group in process over the
// real cluster transport on loopback, fsync always, and returns the
// leader's and a follower's.
func startBenchGroup(b *testing.B) (leader, follower *replica.Group) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	names := []string{"n1", "n2", "n3"}
	peers := make([]cluster.Peer, len(names))
	for i, n := range names {
		peers[i] = cluster.Peer{ID: n}
	}
	root := b.TempDir()
	var trs []*cluster.Transport
	var hosts []*replica.Host
	for _, n := range names {
		ls := &lateSender{}
		h := replica.NewHost(n, ls, replica.HostOptions{Logger: quiet})
		t, err := cluster.New(cluster.Config{Self: n, Listen: "127.0.0.1:0", Peers: peers, Handler: h, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		if err := t.Start(); err != nil {
			b.Fatal(err)
		}
		ls.set(t)
		trs, hosts = append(trs, t), append(hosts, h)
	}
	for _, t := range trs {
		for j, u := range trs {
			t.SetPeerAddr(names[j], u.Addr())
		}
	}
	b.Cleanup(func() {
		for i := range hosts {
			hosts[i].Close()
			trs[i].Close()
		}
	})
	var groups []*replica.Group
	for i, h := range hosts {
		g, err := h.Open(replica.GroupOptions{Key: "bench/0", Dir: filepath.Join(root, names[i]), Replicas: names,
			Log: seglog.Options{Logger: quiet}})
		if err != nil {
			b.Fatal(err)
		}
		groups = append(groups, g)
	}
	for leader == nil || follower == nil || follower.Leader() == "" {
		for _, g := range groups {
			if g.IsLeader() {
				leader = g
			} else {
				follower = g
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return leader, follower
}

type lateSender struct {
	mu sync.Mutex
	t  *cluster.Transport
}

func (l *lateSender) set(t *cluster.Transport) { l.mu.Lock(); l.t = t; l.mu.Unlock() }

func (l *lateSender) Send(to string, kind byte, p []byte) bool {
	l.mu.Lock()
	t := l.t
	l.mu.Unlock()
	return t != nil && t.Send(to, kind, p)
}

// countNet delivers frames between hosts in process, one goroutine per
// destination, and counts them per directed pair.
type countNet struct {
	mu     sync.Mutex
	hosts  map[string]*replica.Host
	queues map[string]chan countFrame
	frames map[[2]string]int
	quit   chan struct{}
	wg     sync.WaitGroup
}

type countFrame struct {
	from    string
	kind    byte
	payload []byte
}

func newCountNet() *countNet {
	return &countNet{hosts: map[string]*replica.Host{}, queues: map[string]chan countFrame{}, frames: map[[2]string]int{}, quit: make(chan struct{})}
}

func (n *countNet) attach(name string, h *replica.Host) {
	q := make(chan countFrame, 1<<16)
	n.mu.Lock()
	n.hosts[name], n.queues[name] = h, q
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			select {
			case <-n.quit:
				return
			case f := <-q:
				h.HandleFrame(f.from, f.kind, f.payload)
			}
		}
	}()
}

func (n *countNet) close() { close(n.quit); n.wg.Wait() }

func (n *countNet) sender(self string) replica.Sender {
	return senderFunc(func(to string, kind byte, p []byte) bool {
		n.mu.Lock()
		q := n.queues[to]
		n.frames[[2]string{self, to}]++
		n.mu.Unlock()
		if q == nil {
			return false
		}
		select {
		case q <- countFrame{self, kind, p}:
			return true
		default:
			return false
		}
	})
}

// between returns the frames sent so far from a to b and from b to a.
func (n *countNet) between(a, b string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.frames[[2]string{a, b}] + n.frames[[2]string{b, a}]
}

type senderFunc func(to string, kind byte, p []byte) bool

func (f senderFunc) Send(to string, kind byte, p []byte) bool { return f(to, kind, p) }

// BenchmarkIdleHeartbeats: three hosts hold G idle raft groups (elected,
// nothing appended); it reports the frames per second between two of the
// nodes, which should not grow with G (idle groups quiet). Each op is a
// 100 ms window.
func BenchmarkIdleHeartbeats(b *testing.B) { benchHeartbeats(b, true) }

// BenchmarkHeartbeats is BenchmarkIdleHeartbeats with groups that never go
// quiet, as busy groups: each leader heartbeats every period, and the
// frames per second between two nodes should still not grow with G (a
// peer's heartbeats go in one frame).
func BenchmarkHeartbeats(b *testing.B) { benchHeartbeats(b, false) }

func benchHeartbeats(b *testing.B, quiesce bool) {
	var alive func(string) bool
	if quiesce {
		alive = func(string) bool { return true }
	}
	for _, groups := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			names := []string{"n1", "n2", "n3"}
			net := newCountNet()
			defer net.close()
			var hosts []*replica.Host
			for _, n := range names {
				fs := vfs.NewMem()
				h := replica.NewHost(n, net.sender(n), replica.HostOptions{Logger: quiet, FS: fs, Alive: alive})
				defer h.Close()
				net.attach(n, h)
				hosts = append(hosts, h)
				for g := range groups {
					if _, err := h.Open(replica.GroupOptions{Key: fmt.Sprintf("idle/%d", g), Dir: fmt.Sprintf("/%s/%d", n, g), Replicas: names,
						Log: seglog.Options{FS: fs, Logger: quiet}}); err != nil {
						b.Fatal(err)
					}
				}
			}
			deadline := time.Now().Add(60 * time.Second)
			for g := 0; g < groups; {
				led := false
				for _, h := range hosts {
					led = led || h.Group(fmt.Sprintf("idle/%d", g)).IsLeader()
				}
				if led {
					g++
					continue
				}
				if time.Now().After(deadline) {
					b.Fatalf("group %d has no leader after 60s", g)
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(time.Second) // elections and their appends settle
			before, t0 := net.between("n1", "n2"), time.Now()
			b.ResetTimer()
			for range b.N {
				time.Sleep(100 * time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(net.between("n1", "n2")-before)/time.Since(t0).Seconds(), "frames/s")
		})
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
