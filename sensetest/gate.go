package sensetest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Gate is an in-process TCP proxy to target whose client-to-server
// direction can be held: while held, what clients send waits in the proxy
// (read from the client, not passed on), and Release passes it on in
// order. Answers flow back unhindered. Tests delay a request this way
// without a clock (the delayed EndTxn of a transaction).
type Gate struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	held    bool
	release chan struct{} // closed by Release
	conns   []net.Conn
	wg      sync.WaitGroup
}

// NewGate starts a gate to target on a loopback port; it stops when the
// test ends.
func NewGate(t testing.TB, target string) *Gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &Gate{ln: ln, target: target, release: make(chan struct{})}
	g.wg.Add(1)
	go g.accept()
	t.Cleanup(g.close)
	return g
}

// Addr is where clients dial.
func (g *Gate) Addr() string { return g.ln.Addr().String() }

// Hold makes what clients send from now on wait in the gate.
func (g *Gate) Hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.held {
		g.held = true
		g.release = make(chan struct{})
	}
}

// Release passes on what waits, and lets what follows through.
func (g *Gate) Release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held {
		g.held = false
		close(g.release)
	}
}

// wait blocks while the gate is held.
func (g *Gate) wait() {
	g.mu.Lock()
	held, ch := g.held, g.release
	g.mu.Unlock()
	if held {
		<-ch
	}
}

func (g *Gate) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", g.target)
		if err != nil {
			c.Close()
			continue
		}
		g.mu.Lock()
		g.conns = append(g.conns, c, s)
		g.mu.Unlock()
		g.wg.Add(2)
		go func() {
			defer g.wg.Done()
			defer s.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					g.wait()
					if _, werr := s.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() {
			defer g.wg.Done()
			defer c.Close()
			io.Copy(c, s)
		}()
	}
}

func (g *Gate) close() {
	g.ln.Close()
	g.Release()
	g.mu.Lock()
	for _, c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}
