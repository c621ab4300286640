package replica_test

import (
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/cluster"
	"github.com/sensehq/sense/replica"
	"github.com/sensehq/sense/seglog"
)

// BenchmarkReplicatedAppend: three replicas in process over the real
// cluster transport on loopback, fsync always; each op is one batch of 100
// events of 100 bytes, 16 appends in flight. It reports events/s.
func BenchmarkReplicatedAppend(b *testing.B) {
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
	defer func() {
		for i := range hosts {
			hosts[i].Close()
			trs[i].Close()
		}
	}()
	var groups []*replica.Group
	for i, h := range hosts {
		g, err := h.Open(replica.GroupOptions{Key: "bench/0", Dir: filepath.Join(root, names[i]), Replicas: names,
			Log: seglog.Options{Logger: quiet}})
		if err != nil {
			b.Fatal(err)
		}
		groups = append(groups, g)
	}
	var leader *replica.Group
	for leader == nil {
		for _, g := range groups {
			if g.IsLeader() {
				leader = g
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	var bl batch.Builder
	bl.Reset(-1, -1, -1)
	val := make([]byte, 100)
	for range 100 {
		bl.Add(1, nil, val)
	}
	data := append([]byte(nil), bl.Finish()...)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for range b.N {
		sem <- struct{}{}
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
			<-sem
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)*100/b.Elapsed().Seconds(), "events/s")
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
