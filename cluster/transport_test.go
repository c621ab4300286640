package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var three = []string{"n1", "n2", "n3"}

// TestAllPairs: every node sends frames to every other; each pair's frames
// arrive complete and in order, with the right sender, kind and payload.
func TestAllPairs(t *testing.T) {
	checkGoroutines(t)
	nodes := startCluster(t, three, nil)
	const count = 400
	var wg sync.WaitGroup
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range count {
					if !a.Send(b.id, byte(i), payloadFor(a.id, b.id, i)) {
						t.Errorf("%s: Send to %s refused frame %d", a.id, b.id, i)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for _, b := range nodes {
		waitFor(t, b.id+" to receive every frame", func() bool { return b.rec.count() == count*(len(nodes)-1) })
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			frames := b.rec.from(a.id)
			for i, f := range frames {
				if f.kind != byte(i) || !bytes.Equal(f.payload, payloadFor(a.id, b.id, i)) {
					t.Fatalf("%s→%s frame %d: kind %d, payload %.40q", a.id, b.id, i, f.kind, f.payload)
				}
			}
			waitFor(t, "the counters to settle", func() bool {
				return statsOf(t, a.Transport, b.id).SentFrames == count
			})
			s := statsOf(t, a.Transport, b.id)
			if s.Dropped != 0 || !s.Connected || s.Addr != b.Addr() {
				t.Errorf("%s's stats of %s: %+v", a.id, b.id, s)
			}
			if r := statsOf(t, b.Transport, a.id); r.RecvFrames != count || r.LastHeard.IsZero() {
				t.Errorf("%s's stats of %s: %+v", b.id, a.id, r)
			}
		}
	}
}

// TestByteCounters: the bytes a node counts as sent to a peer are those
// the peer counts as received from it, the hello and frame headers
// included, and a node that takes part in no traffic counts nothing.
func TestByteCounters(t *testing.T) {
	checkGoroutines(t)
	nodes := startCluster(t, three, nil)
	n1, n2, n3 := nodes["n1"], nodes["n2"], nodes["n3"]
	const count, size = 250, 777
	for i := range count {
		p := bytes.Repeat([]byte{byte(i)}, size)
		if !n1.Send("n2", 9, p) {
			t.Fatalf("Send %d refused", i)
		}
	}
	waitFor(t, "n2 to receive every frame", func() bool { return n2.rec.count() == count })
	want := uint64(helloLen(hello{Cluster: DefaultClusterName, From: "n1", To: "n2"}) + count*(frameHeaderLen+size))
	waitFor(t, "the counters to settle", func() bool {
		return statsOf(t, n1.Transport, "n2").SentBytes == want && statsOf(t, n2.Transport, "n1").RecvBytes == want
	})
	if s := statsOf(t, n1.Transport, "n2"); s.SentFrames != count || s.RecvBytes != 0 || s.RecvFrames != 0 {
		t.Errorf("n1's stats of n2: %+v", s)
	}
	if s := statsOf(t, n2.Transport, "n1"); s.RecvFrames != count || s.SentBytes != 0 || s.SentFrames != 0 {
		t.Errorf("n2's stats of n1: %+v", s)
	}
	zero := func(s PeerStats) bool {
		return s.SentFrames == 0 && s.SentBytes == 0 && s.RecvFrames == 0 && s.RecvBytes == 0 &&
			s.Dropped == 0 && s.LastHeard.IsZero() && !s.Connected
	}
	for _, s := range n3.Stats() {
		if !zero(s) {
			t.Errorf("n3 took no part, yet counts %+v", s)
		}
	}
	for _, s := range []PeerStats{statsOf(t, n1.Transport, "n3"), statsOf(t, n2.Transport, "n3")} {
		if !zero(s) {
			t.Errorf("n3 took no part, yet a peer counts %+v", s)
		}
	}
}

// TestPeerDown: frames for a peer that does not answer are dropped and
// counted, Send never blocks, and once the peer is up new frames arrive.
func TestPeerDown(t *testing.T) {
	checkGoroutines(t)
	n1 := startNode(t, "n1", []string{"n1", "n2"}, nil)
	n1.SetPeerAddr("n2", closedAddr(t))
	const count = 100
	for range count {
		n1.Send("n2", 1, []byte("lost"))
	}
	waitFor(t, "every frame to be dropped", func() bool { return statsOf(t, n1.Transport, "n2").Dropped == count })
	if !strings.Contains(n1.logs.String(), "peer unreachable") {
		t.Errorf("no warning logged:\n%s", n1.logs)
	}

	n2 := startNode(t, "n2", []string{"n1", "n2"}, nil)
	n1.SetPeerAddr("n2", n2.Addr())
	seq := 0
	waitFor(t, "a frame to reach n2", func() bool {
		seq++
		n1.Send("n2", 2, binary.BigEndian.AppendUint32(nil, uint32(seq)))
		return n2.rec.count() > 0
	})
	last := uint32(0)
	for _, f := range n2.rec.from("n1") {
		if f.kind != 2 || len(f.payload) != 4 || binary.BigEndian.Uint32(f.payload) <= last {
			t.Fatalf("frame kind %d payload %x after %d", f.kind, f.payload, last)
		}
		last = binary.BigEndian.Uint32(f.payload)
	}
	if !n1.Connected("n2") {
		t.Error("n1 reports no connection to n2")
	}
}

// TestPeerRestart: a peer's transport closes and comes back on the same
// address; the sender notices, drops frames meanwhile, and reconnects.
func TestPeerRestart(t *testing.T) {
	checkGoroutines(t)
	ids := []string{"n1", "n2"}
	n1 := startNode(t, "n1", ids, nil)
	n2 := startNode(t, "n2", ids, nil)
	addr := n2.Addr()
	n1.SetPeerAddr("n2", addr)
	if !n1.Send("n2", 1, []byte("before")) {
		t.Fatal("Send refused")
	}
	waitFor(t, "the first frame", func() bool { return n2.rec.count() == 1 })
	if err := n2.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n1 to see n2 gone", func() bool { return !n1.Connected("n2") })
	waitFor(t, "a frame to be dropped", func() bool {
		n1.Send("n2", 1, []byte("lost"))
		return statsOf(t, n1.Transport, "n2").Dropped > 0
	})

	again := startNode(t, "n2", ids, func(c *Config) { c.Listen = addr })
	waitFor(t, "a frame to reach n2 again", func() bool {
		n1.Send("n2", 3, []byte("after"))
		frames := again.rec.from("n1")
		return len(frames) > 0 && frames[len(frames)-1].kind == 3
	})
	// A "lost" frame sent as n2 came back may have made it.
	for _, f := range again.rec.from("n1") {
		if !(f.kind == 3 && string(f.payload) == "after" || f.kind == 1 && string(f.payload) == "lost") {
			t.Fatalf("got kind %d %q", f.kind, f.payload)
		}
	}
}

// TestFullQueue: a peer that accepts the connection but never reads. Send
// keeps returning at once, refusing frames once the queue is full; the
// write times out, the connection is dropped and dialed again.
func TestFullQueue(t *testing.T) {
	checkGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var held sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn // held open, never read
	held.Add(1)
	go func() {
		defer held.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			accepted.Add(1)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		held.Wait()
		for _, c := range conns {
			c.Close()
		}
	})

	const maxFrame = 8 << 10
	n1 := startNode(t, "n1", []string{"n1", "n2"}, func(c *Config) {
		c.MaxQueueBytes = 64 << 10
		c.MaxFrameBytes = maxFrame
		c.WriteTimeout = 200 * time.Millisecond
	})
	n1.SetPeerAddr("n2", ln.Addr().String())
	payload := make([]byte, maxFrame-1)
	if !n1.Send("n2", 1, payload) {
		t.Fatal("the first frame was refused")
	}
	waitFor(t, "the connection", func() bool { return n1.Connected("n2") })
	// Send until the socket buffers fill, the write blocks and times out.
	refused := 0
	waitFor(t, "the write to time out", func() bool {
		for range 64 {
			if !n1.Send("n2", 1, payload) {
				refused++
			}
		}
		return !n1.Connected("n2")
	})
	if refused == 0 {
		t.Error("no frame was refused while the write was blocked")
	}
	if s := statsOf(t, n1.Transport, "n2"); s.Dropped < uint64(refused) {
		t.Errorf("%d frames refused, %d counted", refused, s.Dropped)
	}
	if n1.Send("n2", 1, make([]byte, maxFrame)) {
		t.Error("a frame above MaxFrameBytes was accepted")
	}
	waitFor(t, "a second connection", func() bool {
		n1.Send("n2", 1, []byte("x"))
		return accepted.Load() >= 2
	})
	if !strings.Contains(n1.logs.String(), "i/o timeout") {
		t.Errorf("the timeout was not logged:\n%s", n1.logs)
	}
}

// TestGarbage: connections that do not speak the protocol are closed with
// a logged error naming what was wrong, and the real peers' traffic goes
// on.
func TestGarbage(t *testing.T) {
	checkGoroutines(t)
	nodes := startCluster(t, three, func(c *Config) {
		c.MaxFrameBytes = 1024
		c.DialTimeout = 100 * time.Millisecond
		c.WriteTimeout = 200 * time.Millisecond
	})
	n1, n2 := nodes["n1"], nodes["n2"]
	good := appendHello(nil, hello{Cluster: DefaultClusterName, From: "n3", To: "n2"})
	with := func(b ...[]byte) []byte { return bytes.Join(append([][]byte{good}, b...), nil) }
	length := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	cases := []struct {
		name  string
		bytes []byte
		log   []string // in the line of the error logged
	}{
		{"magic", []byte("HTTP/1.1 200 OK\r\n"), []string{`magic \"HTTP\"`}},
		{"version", []byte("SNSC\x02\x05sense\x02n3\x02n2"), []string{"version 2, want 1"}},
		{"cluster", appendHello(nil, hello{Cluster: "other", From: "n3", To: "n2"}), []string{`cluster name \"other\", want \"sense\"`}},
		{"unknown sender", appendHello(nil, hello{Cluster: "sense", From: "n9", To: "n2"}), []string{`sender id \"n9\" is not a configured peer`}},
		{"self sender", appendHello(nil, hello{Cluster: "sense", From: "n2", To: "n2"}), []string{`\"n2\" is this node's own id`}},
		{"target", appendHello(nil, hello{Cluster: "sense", From: "n3", To: "n1"}), []string{`dialed \"n1\", but this is \"n2\"`}},
		{"short hello", []byte("SNSC\x01\x05sen"), []string{"no valid hello", "unexpected EOF"}},
		{"silence", nil, []string{"no valid hello", "i/o timeout"}},
		{"zero length", with(length(0)), []string{"peer=n3", "bad frame length: 0, want 1 to 1024"}},
		{"huge length", with(length(0xffffffff), []byte{1, 2}), []string{"peer=n3", "bad frame length: 4294967295, want 1 to 1024"}},
		{"just over", with(length(1025)), []string{"peer=n3", "bad frame length: 1025"}},
		{"truncated", with(appendFrame(nil, 1, []byte("ok")), length(100), []byte{7, 1, 2, 3}), []string{"peer=n3", "unexpected EOF"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", n2.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			if tc.name != "silence" {
				c.(*net.TCPConn).CloseWrite()
			}
			c.SetReadDeadline(time.Now().Add(waitLimit))
			var b [1]byte
			_, err = c.Read(b[:])
			var ne net.Error
			if err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the connection was not closed: %v", err)
			}
			waitFor(t, "the error to be logged", func() bool { return n2.logs.hasLine(tc.log...) })
		})
	}
	if !n1.Send("n2", 5, []byte("still here")) {
		t.Fatal("Send refused")
	}
	waitFor(t, "the real peer's frame", func() bool { return len(n2.rec.from("n1")) == 1 })
	if f := n2.rec.from("n1")[0]; f.kind != 5 || string(f.payload) != "still here" {
		t.Errorf("got kind %d %q", f.kind, f.payload)
	}
	if got := n2.rec.from("n3"); len(got) != 1 || string(got[0].payload) != "ok" {
		t.Errorf("frames from the forged n3: %v", got)
	}
}

// TestSendRefusals: frames for nobody, for this node, or too large are
// refused and counted.
func TestSendRefusals(t *testing.T) {
	checkGoroutines(t)
	n1 := startNode(t, "n1", []string{"n1", "n2"}, func(c *Config) { c.MaxFrameBytes = 100 })
	if n1.Send("n9", 1, nil) || n1.Send("n1", 1, nil) {
		t.Error("a frame for an unknown node or for self was accepted")
	}
	if n1.Misrouted() != 2 {
		t.Errorf("Misrouted %d, want 2", n1.Misrouted())
	}
	if n1.Send("n2", 1, make([]byte, 100)) {
		t.Error("a 101-byte frame was accepted")
	}
	if s := statsOf(t, n1.Transport, "n2"); s.Dropped != 1 {
		t.Errorf("Dropped %d, want 1", s.Dropped)
	}
	if n1.Connected("n9") || n1.Connected("n1") {
		t.Error("connected to nobody")
	}
}

// TestClose: Close stops every goroutine (checkGoroutines) even with
// traffic in flight and a handler running; Send after Close is refused;
// Close again is a no-op and Start after Close fails.
func TestClose(t *testing.T) {
	checkGoroutines(t)
	ids := []string{"n1", "n2"}
	block := make(chan struct{})
	var entered sync.Once
	inHandler := make(chan struct{})
	n2 := startNode(t, "n2", ids, func(c *Config) {
		c.Handler = HandlerFunc(func(string, byte, []byte) {
			entered.Do(func() { close(inHandler) })
			<-block
		})
	})
	n1 := startNode(t, "n1", ids, nil)
	n1.SetPeerAddr("n2", n2.Addr())
	for range 1000 {
		n1.Send("n2", 1, make([]byte, 1000))
	}
	<-inHandler
	closed := make(chan error)
	go func() { closed <- n2.Close() }()
	close(block) // Close waits for the handler
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	if n1.Send("n2", 1, []byte("late")) {
		t.Error("Send after Close accepted a frame")
	}
	if err := n1.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n1.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	if n1.Connected("n2") {
		t.Error("connected after Close")
	}
}

// TestCloseUnstarted: a transport closed before Start holds nothing.
func TestCloseUnstarted(t *testing.T) {
	checkGoroutines(t)
	tr, err := New(Config{Self: "n1", Listen: "127.0.0.1:0", Peers: []Peer{{ID: "n1"}, {ID: "n2", Addr: "127.0.0.1:1"}}, Handler: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Send("n2", 1, []byte("queued")) {
		t.Error("Send before Start refused")
	}
	if tr.Addr() != "" {
		t.Errorf("Addr before Start: %q", tr.Addr())
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if s := statsOf(t, tr, "n2"); s.Dropped != 1 {
		t.Errorf("Dropped %d, want 1", s.Dropped)
	}
}

// TestSetPeerAddr routes a connection through a proxy: the old connection
// is closed, the next goes to the new address, and the proxy carries
// exactly the bytes the sender counts.
func TestSetPeerAddr(t *testing.T) {
	checkGoroutines(t)
	nodes := startCluster(t, []string{"n1", "n2"}, nil)
	n1, n2 := nodes["n1"], nodes["n2"]
	n1.Send("n2", 1, []byte("direct"))
	waitFor(t, "the direct frame", func() bool { return n2.rec.count() == 1 })
	waitFor(t, "the counters to settle", func() bool { return statsOf(t, n1.Transport, "n2").SentFrames == 1 })
	before := statsOf(t, n1.Transport, "n2").SentBytes

	px := startProxy(t, n2.Addr())
	n1.SetPeerAddr("n2", px.addr())
	waitFor(t, "a frame through the proxy", func() bool {
		n1.Send("n2", 2, []byte("proxied"))
		return px.conns.Load() > 0 && n2.rec.count() > 1
	})
	for _, f := range n2.rec.from("n1")[1:] {
		if f.kind != 2 || string(f.payload) != "proxied" {
			t.Fatalf("got kind %d %q", f.kind, f.payload)
		}
	}
	if s := statsOf(t, n1.Transport, "n2"); s.Addr != px.addr() {
		t.Errorf("Addr %q, want the proxy's %q", s.Addr, px.addr())
	}
	waitFor(t, "the proxy's count to match", func() bool {
		return statsOf(t, n1.Transport, "n2").SentBytes-before == px.bytes.Load()
	})
}

// proxy forwards connections to a target, counting the bytes.
type proxy struct {
	ln    net.Listener
	conns atomic.Int32
	bytes atomic.Uint64
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.conns.Add(1)
			mu.Lock()
			open = append(open, c, up)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(countingWriter{up, &p.bytes}, c)
				up.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n *atomic.Uint64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(uint64(n))
	return n, err
}
