package sensetest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Link is the one-directional path of cluster traffic from one node to
// another (the transport dials one connection per direction): an
// in-process TCP proxy the sending node dials instead of its peer. It can
// be cut (its connections closed, new ones refused) and healed, and it can
// delay what it carries.
type Link struct {
	From, To string // node ids
	ln       net.Listener
	target   string

	mu    sync.Mutex
	cut   bool
	delay time.Duration
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewLink starts a proxy on a loopback port for the cluster traffic of node
// from to node to, whose transport listens at target. It stops when the
// test ends.
func NewLink(t testing.TB, from, to, target string) *Link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Link{From: from, To: to, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	t.Cleanup(l.close)
	return l
}

// Addr is where the sending node dials.
func (l *Link) Addr() string { return l.ln.Addr().String() }

// Cut closes the link's connections and refuses new ones until Heal.
func (l *Link) Cut() {
	l.mu.Lock()
	l.cut = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
}

// Heal lets connections through again.
func (l *Link) Heal() {
	l.mu.Lock()
	l.cut = false
	l.mu.Unlock()
}

// SetDelay holds each chunk of bytes read from the sender for d before it
// is passed on (0: none).
func (l *Link) SetDelay(d time.Duration) {
	l.mu.Lock()
	l.delay = d
	l.mu.Unlock()
}

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.cut {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.mu.Unlock()
		up, err := net.DialTimeout("tcp", l.target, time.Second)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		if l.cut { // cut while dialing
			l.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		l.conns[c], l.conns[up] = struct{}{}, struct{}{}
		l.mu.Unlock()
		l.wg.Add(2)
		go l.pipe(up, c, true)
		go l.pipe(c, up, false)
	}
}

// pipe copies from src to dst until either fails, then closes both.
// Bytes from the sender (forward) are delayed as SetDelay says.
func (l *Link) pipe(dst, src net.Conn, forward bool) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.conns, dst)
		delete(l.conns, src)
		l.mu.Unlock()
		dst.Close()
		src.Close()
	}()
	if !forward {
		io.Copy(dst, src)
		return
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			l.mu.Lock()
			d := l.delay
			l.mu.Unlock()
			if d > 0 {
				time.Sleep(d)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (l *Link) close() {
	l.ln.Close()
	l.Cut()
	l.wg.Wait()
}
