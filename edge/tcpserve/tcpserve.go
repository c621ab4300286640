// Package tcpserve is the accept loop and connection bookkeeping shared by
// Sense's TCP edges (native protocol, Kafka): it serves each accepted
// connection in its own goroutine and shuts down gracefully.
package tcpserve

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Conn is one served connection.
type Conn interface {
	// Serve handles the connection until it ends.
	Serve()
	// Stop asks the connection to read no new requests; Serve then
	// finishes the requests it has and returns.
	Stop()
	// Close closes the connection at once.
	Close()
}

// Tracker accepts connections on any number of listeners and tracks them
// until Shutdown. The zero value is ready to use.
type Tracker struct {
	mu      sync.Mutex
	lns     map[net.Listener]struct{}
	conns   map[Conn]struct{}
	closing bool
	wg      sync.WaitGroup
}

// Serve accepts connections on ln and serves each with newConn until
// Shutdown, after which it returns closed. It closes ln in either case.
func (t *Tracker) Serve(ln net.Listener, newConn func(net.Conn) Conn, closed error) error {
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		// Shutdown came first (a server stopped right after it started):
		// the listener is ours to close, or its port stays bound.
		ln.Close()
		return closed
	}
	if t.lns == nil {
		t.lns, t.conns = map[net.Listener]struct{}{}, map[Conn]struct{}{}
	}
	t.lns[ln] = struct{}{}
	t.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			t.mu.Lock()
			closing := t.closing
			t.mu.Unlock()
			if closing {
				return closed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return err
		}
		c := newConn(nc)
		t.mu.Lock()
		if t.closing {
			t.mu.Unlock()
			nc.Close()
			return closed
		}
		t.conns[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.wg.Done()
			c.Serve()
			t.mu.Lock()
			delete(t.conns, c)
			t.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting, stops every connection reading new requests,
// and waits for them to finish what they have. If ctx ends first, the
// connections are closed at once and ctx's error is returned.
func (t *Tracker) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	t.closing = true
	for ln := range t.lns {
		ln.Close()
	}
	for c := range t.conns {
		c.Stop()
	}
	t.mu.Unlock()
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		t.mu.Lock()
		for c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
