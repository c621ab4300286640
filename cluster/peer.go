package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Reconnect backoff: after a failed dial, or a connection that lasted less
// than maxBackoff, the sender waits this long (doubling) before it dials
// again; Send drops frames meanwhile.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// errNoAddr is the dial error of a peer whose address is not known.
var errNoAddr = errors.New("cluster: no address known for the peer")

// peer is one other node: the queue of frames for it, the goroutine that
// dials it and writes them, and its counters.
//
// The sender goroutine (run) owns the outbound connection. It waits for a
// frame, dials, writes the hello, then writes whatever is queued each time
// it is woken, until a write fails, the peer closes the connection, the
// address changes or the transport closes. After a failure it drops what
// is queued, marks the peer down for a backoff (Send refuses frames), and
// waits for the next frame; after a change of address it keeps the queue
// and dials the new address at once.
type peer struct {
	t    *Transport
	id   string
	wake chan struct{} // capacity 1: frames were queued
	kick chan struct{} // capacity 1: the address changed

	mu       sync.Mutex // guards the fields below
	addr     string
	q        queue    // frames waiting for the sender
	inflight int      // the mem of the frames the sender is writing
	down     bool     // in backoff after a failure: Send refuses
	closed   bool     // the transport is closed: Send refuses
	conn     net.Conn // the outbound connection, once dialed

	connected  atomic.Bool
	sentFrames atomic.Uint64
	sentBytes  atomic.Uint64
	recvFrames atomic.Uint64
	recvBytes  atomic.Uint64
	dropped    atomic.Uint64
	lastHeard  atomic.Int64 // unix nanoseconds; 0 if never
	inbound    atomic.Int32 // accepted connections from the peer, open
}

func newPeer(t *Transport, id, addr string) *peer {
	return &peer{
		t: t, id: id, addr: addr,
		wake: make(chan struct{}, 1), kick: make(chan struct{}, 1),
		q: queue{blockSize: blockSizeFor(t.cfg.MaxQueueBytes)},
	}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (p *peer) heard() { p.lastHeard.Store(time.Now().UnixNano()) }

// enqueue queues a frame while the peer's queue stays within limit bytes;
// the caller counts a refusal.
func (p *peer) enqueue(kind byte, payload []byte, limit int) bool {
	p.mu.Lock()
	if p.closed || p.down || p.q.mem+p.inflight+p.q.cost(len(payload)) > limit {
		p.mu.Unlock()
		return false
	}
	p.q.add(kind, payload)
	p.mu.Unlock()
	poke(p.wake)
	return true
}

// dropQueued discards the frames waiting, counting them; p.mu is held.
func (p *peer) dropQueued() {
	p.dropped.Add(uint64(p.q.frames))
	p.q.reset()
}

func (p *peer) setAddr(addr string) {
	p.mu.Lock()
	p.addr = addr
	p.down = false
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	p.mu.Unlock()
	poke(p.kick)
}

// close is the transport's Close for this peer: refuse frames, drop those
// queued, and unblock the sender's write.
func (p *peer) close() {
	p.mu.Lock()
	p.closed = true
	p.dropQueued()
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	p.mu.Unlock()
}

func (p *peer) stats() PeerStats {
	p.mu.Lock()
	addr := p.addr
	p.mu.Unlock()
	s := PeerStats{
		ID:         p.id,
		Addr:       addr,
		Connected:  p.connected.Load(),
		SentFrames: p.sentFrames.Load(),
		SentBytes:  p.sentBytes.Load(),
		RecvFrames: p.recvFrames.Load(),
		RecvBytes:  p.recvBytes.Load(),
		Dropped:    p.dropped.Load(),
	}
	if n := p.lastHeard.Load(); n != 0 {
		s.LastHeard = time.Unix(0, n)
	}
	return s
}

// run is the sender goroutine.
func (p *peer) run() {
	defer p.t.wg.Done()
	log := p.t.log.With("peer", p.id)
	done := p.t.ctx.Done()
	backoff := minBackoff
	failing := false // warned of this series of failures: log the next ones quietly
	inflight := queue{blockSize: blockSizeFor(p.t.cfg.MaxQueueBytes)}
	for {
		if !p.waitFrames() {
			return
		}
		p.mu.Lock()
		addr := p.addr
		p.mu.Unlock()
		conn, err := p.dial(addr)
		if conn != nil {
			log.Debug("cluster: connected to peer", "addr", addr)
			began := time.Now()
			err = p.serve(conn, &inflight)
			if time.Since(began) >= maxBackoff {
				// A connection that lasted: the peer is healthy again.
				backoff, failing = minBackoff, false
			}
		}
		if p.t.closing() {
			return
		}
		if err == nil {
			// The address changed (or changed while dialing): keep what is
			// queued and dial the new one now.
			select {
			case <-p.kick:
			default:
			}
			continue
		}
		if failing {
			log.Debug("cluster: peer still unreachable", "addr", addr, "err", err)
		} else {
			log.Warn("cluster: peer unreachable; dropping its frames until it answers", "addr", addr, "err", err)
		}
		failing = true

		p.mu.Lock()
		p.dropQueued()
		p.down = true
		p.mu.Unlock()
		wait := backoff
		backoff = min(2*backoff, maxBackoff)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-p.kick:
			backoff = minBackoff
		case <-done:
			timer.Stop()
			return
		}
		timer.Stop()
		p.mu.Lock()
		p.down = false
		p.mu.Unlock()
	}
}

// waitFrames waits until a frame is queued; false when the transport
// closes.
func (p *peer) waitFrames() bool {
	for {
		p.mu.Lock()
		n := p.q.frames
		p.mu.Unlock()
		if n > 0 {
			return true
		}
		select {
		case <-p.wake:
		case <-p.kick:
		case <-p.t.ctx.Done():
			return false
		}
	}
}

// dial connects to addr and records the connection where close and
// setAddr can reach it.
func (p *peer) dial(addr string) (net.Conn, error) {
	if addr == "" {
		return nil, errNoAddr
	}
	d := net.Dialer{Timeout: p.t.cfg.DialTimeout}
	conn, err := d.DialContext(p.t.ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if p.t.cfg.TLS != nil {
		tc := tls.Client(conn, p.t.clientTLS(p.id))
		if err := p.t.handshake(tc); err != nil {
			conn.Close()
			return nil, fmt.Errorf("cluster: TLS handshake with peer %s at %s: %w", p.id, addr, err)
		}
		conn = tc
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.addr != addr {
		conn.Close()
		return nil, nil // closed, or moved while dialing: go round again
	}
	p.conn = conn
	return conn, nil
}

// serve writes the hello and then the queued frames on conn until it
// fails. It returns nil when the connection was closed by setAddr or
// Close, else the error that ended it.
func (p *peer) serve(conn net.Conn, inflight *queue) (err error) {
	// The peer never writes on this connection: a read returns only when
	// it closes the connection (or breaks the protocol).
	dead := make(chan struct{})
	var deadErr error // why the read ended; read after dead is closed
	p.t.wg.Add(1)
	go func() {
		defer p.t.wg.Done()
		defer close(dead)
		var b [1]byte
		_, deadErr = conn.Read(b[:])
	}()
	defer func() {
		p.mu.Lock()
		moved := p.conn != conn // setAddr or Close closed it
		p.conn = nil
		p.mu.Unlock()
		p.connected.Store(false)
		conn.Close()
		if moved {
			err = nil
		}
	}()

	h := appendHello(nil, hello{Cluster: p.t.cfg.ClusterName, From: p.t.cfg.Self, To: p.id})
	conn.SetWriteDeadline(time.Now().Add(p.t.cfg.WriteTimeout))
	n, err := conn.Write(h)
	p.sentBytes.Add(uint64(n))
	if err != nil {
		return err
	}
	p.connected.Store(true)

	var segs [][]byte
	for {
		p.mu.Lock()
		if p.conn != conn { // closed by setAddr or Close
			p.mu.Unlock()
			return nil
		}
		if p.q.frames == 0 {
			p.mu.Unlock()
			select {
			case <-p.wake:
				continue
			case <-dead:
				if deadErr != nil && !errors.Is(deadErr, io.EOF) {
					// Such as the TLS alert of a peer that refused this
					// node's certificate.
					return fmt.Errorf("%w: %v", errPeerClosed, deadErr)
				}
				return errPeerClosed
			case <-p.t.ctx.Done():
				return nil
			}
		}
		*inflight, p.q = p.q, *inflight
		p.inflight = inflight.mem
		p.mu.Unlock()

		segs = inflight.segments(segs[:0])
		written, err := p.write(conn, segs)
		sent := inflight.framesWithin(written)
		p.sentFrames.Add(uint64(sent))
		p.dropped.Add(uint64(inflight.frames - sent))
		clear(segs)
		p.mu.Lock()
		inflight.reset()
		p.inflight = 0
		p.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// errPeerClosed ends an outbound connection the peer closed.
var errPeerClosed = errors.New("cluster: the peer closed the connection")

// write writes segs to conn, writeChunk bytes (one writev) at a time, each
// with its own deadline, and counts the bytes.
func (p *peer) write(conn net.Conn, segs [][]byte) (int64, error) {
	var total int64
	for len(segs) > 0 {
		chunk, rest := takeChunk(segs, writeChunk)
		conn.SetWriteDeadline(time.Now().Add(p.t.cfg.WriteTimeout))
		bufs := net.Buffers(chunk)
		n, err := bufs.WriteTo(conn)
		total += n
		p.sentBytes.Add(uint64(n))
		if err != nil {
			return total, err
		}
		segs = rest()
	}
	return total, nil
}
