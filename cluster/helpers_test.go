package cluster

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitLimit bounds every wait of these tests; reaching it is a failure,
// never a measurement.
const waitLimit = 20 * time.Second

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkGoroutines fails the test if, once its cleanups (registered after
// this call) have run, more goroutines are left than at the start.
func checkGoroutines(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(waitLimit)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("%d goroutines left, %d at the start:\n%s", runtime.NumGoroutine(), base, buf)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
}

// got is one frame a recorder received.
type got struct {
	from    string
	kind    byte
	payload []byte
}

// recorder is a Handler that keeps copies of the frames it gets.
type recorder struct {
	mu     sync.Mutex
	frames []got
}

func (r *recorder) HandleFrame(from string, kind byte, payload []byte) {
	r.mu.Lock()
	r.frames = append(r.frames, got{from, kind, bytes.Clone(payload)})
	r.mu.Unlock()
}

// from returns the frames received from one peer, in order.
func (r *recorder) from(id string) []got {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []got
	for _, f := range r.frames {
		if f.from == id {
			out = append(out, f)
		}
	}
	return out
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames)
}

// logBuffer collects a transport's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// hasLine reports whether one line of the log holds every part.
func (b *logBuffer) hasLine(parts ...string) bool {
	for _, line := range strings.Split(b.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// node is a started transport of a test cluster.
type node struct {
	*Transport
	id   string
	rec  *recorder
	logs *logBuffer
}

// startNode starts the transport of node self on 127.0.0.1:0 in a
// cluster of ids, with the peers' addresses unknown; mod may change the
// config first. Its Close is a cleanup of t.
func startNode(t *testing.T, self string, ids []string, mod func(*Config)) *node {
	t.Helper()
	n := &node{id: self, rec: &recorder{}, logs: &logBuffer{}}
	cfg := Config{Self: self, Listen: "127.0.0.1:0", Handler: n.rec, Logger: n.logs.logger()}
	for _, id := range ids {
		cfg.Peers = append(cfg.Peers, Peer{ID: id})
	}
	if mod != nil {
		mod(&cfg)
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", self, n.logs)
		}
	})
	n.Transport = tr
	return n
}

// startCluster starts one node per id and tells each the others'
// addresses.
func startCluster(t *testing.T, ids []string, mod func(*Config)) map[string]*node {
	t.Helper()
	nodes := make(map[string]*node, len(ids))
	for _, id := range ids {
		nodes[id] = startNode(t, id, ids, mod)
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.SetPeerAddr(b.id, b.Addr())
			}
		}
	}
	return nodes
}

// statsOf returns n's counters for peer id.
func statsOf(t *testing.T, tr *Transport, id string) PeerStats {
	t.Helper()
	for _, s := range tr.Stats() {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no stats for peer %s", id)
	return PeerStats{}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// payloadFor is the payload of frame i from one node to another; every
// 97th is larger than smallPayload, every 31st is empty.
func payloadFor(from, to string, i int) []byte {
	switch {
	case i%31 == 0:
		return []byte{}
	case i%97 == 0:
		return bytes.Repeat([]byte(fmt.Sprintf("%s>%s#%d;", from, to, i)), 10000)
	}
	return []byte(fmt.Sprintf("%s>%s#%d%s", from, to, i, strings.Repeat(".", i%200)))
}
