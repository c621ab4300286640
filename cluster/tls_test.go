package cluster

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/internal/tlsconf"
	"github.com/sensehq/sense/internal/tlstest"
)

// withTLS returns a Config change giving node self a certificate of ca
// that names the node named (its own id, or a wrong one).
func withTLS(t *testing.T, ca *tlstest.CA, named string) func(*Config) {
	t.Helper()
	cert := ca.Node(t, named)
	src, err := tlsconf.Load(tlsconf.Files{CertFile: cert.CertFile, KeyFile: cert.KeyFile, CAFile: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.TLS = src }
}

// TestTLSAllPairs: three nodes with mutual TLS exchange frames both ways,
// in order, and the connections are TLS.
func TestTLSAllPairs(t *testing.T) {
	checkGoroutines(t)
	ca := tlstest.NewCA(t, t.TempDir(), "cluster ca")
	nodes := map[string]*node{}
	for _, id := range three {
		nodes[id] = startNode(t, id, three, withTLS(t, ca, id))
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.SetPeerAddr(b.id, b.Addr())
			}
		}
	}
	const count = 200
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
					for !a.Send(b.id, byte(i), payloadFor(a.id, b.id, i)) {
						// Refused while the first dial is under way and the
						// peer is down: raft would resend; so does this.
						time.Sleep(time.Millisecond)
					}
				}
			}()
		}
	}
	wg.Wait()
	for _, b := range nodes {
		for _, a := range nodes {
			if a == b {
				continue
			}
			waitFor(t, b.id+" to receive "+a.id+"'s frames", func() bool { return len(b.rec.from(a.id)) >= count })
			for i, f := range b.rec.from(a.id)[:count] {
				if f.kind != byte(i) || !bytes.Equal(f.payload, payloadFor(a.id, b.id, i)) {
					t.Fatalf("%s→%s frame %d: kind %d, payload %.40q", a.id, b.id, i, f.kind, f.payload)
				}
			}
		}
	}
	// Plain TCP to a TLS node: no hello is read, the handshake fails.
	c, err := net.DialTimeout("tcp", nodes["n1"].Addr(), waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(appendHello(nil, hello{Cluster: DefaultClusterName, From: "n2", To: "n1"}))
	waitFor(t, "n1 to refuse a plain-text peer", func() bool {
		return nodes["n1"].logs.hasLine("TLS handshake failed", "remote="+c.LocalAddr().String())
	})
}

// TestTLSWrongNode: a node whose certificate names another id can neither
// deliver a frame to the others (they refuse its connections) nor receive
// one (it is refused as the server they dialed), and both sides log what
// to fix. A node with a certificate of another CA fares the same.
func TestTLSWrongNode(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "cluster ca")
	ids := []string{"n1", "n2", "n3"}
	n1 := startNode(t, "n1", ids, withTLS(t, ca, "n1"))
	n2 := startNode(t, "n2", ids, withTLS(t, ca, "n2"))
	// n3 holds n2's name: it claims n3 in its hello.
	n3 := startNode(t, "n3", ids, withTLS(t, ca, "n2"))
	for _, a := range []*node{n1, n2, n3} {
		for _, b := range []*node{n1, n2, n3} {
			if a != b {
				a.SetPeerAddr(b.id, b.Addr())
			}
		}
	}
	deadline := time.Now().Add(2 * time.Second) // long enough for many dials; the assertion is what never arrives
	for time.Now().Before(deadline) {
		n1.Send("n2", 1, []byte("good"))
		n3.Send("n1", 1, []byte("impostor"))
		n3.Send("n2", 1, []byte("impostor"))
		n1.Send("n3", 1, []byte("for n3"))
		time.Sleep(20 * time.Millisecond)
	}
	if len(n2.rec.from("n1")) == 0 {
		t.Fatal("n1 and n2, whose certificates are right, exchanged nothing")
	}
	for _, n := range []*node{n1, n2} {
		if got := n.rec.from("n3"); len(got) != 0 {
			t.Fatalf("%s accepted %d frames from n3, whose certificate names n2", n.id, len(got))
		}
		if s := statsOf(t, n.Transport, "n3"); s.RecvFrames != 0 || n.InboundConnected("n3") {
			t.Fatalf("%s's stats of n3: %+v", n.id, s)
		}
	}
	if n3.rec.count() != 0 {
		t.Fatalf("n3 received %d frames", n3.rec.count())
	}
	waitFor(t, "n1 to log the refusal", func() bool {
		return n1.logs.hasLine("refusing a connection", `its hello says it is node \"n3\"`, "URI SAN sense://node/n3")
	})
	waitFor(t, "n1 to log why it cannot reach n3", func() bool {
		return n1.logs.hasLine("peer=n3", "names node(s) n2", "want n3")
	})

	// A certificate of another CA, naming the right node.
	evil := tlstest.NewCA(t, dir, "evil ca")
	n4 := startNode(t, "n4", []string{"n1", "n4"}, withTLS(t, evil, "n4"))
	n4.SetPeerAddr("n1", n1.Addr())
	deadline = time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		n4.Send("n1", 1, []byte("alien"))
		time.Sleep(20 * time.Millisecond)
	}
	if n1.rec.count() != 0 {
		t.Fatalf("n1 accepted frames: %d", n1.rec.count())
	}
	waitFor(t, "n1 to log the foreign certificate", func() bool {
		return n1.logs.hasLine("TLS handshake failed", "cluster.tls.ca_file")
	})
}
