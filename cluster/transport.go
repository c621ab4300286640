package cluster

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Start on a closed transport.
var ErrClosed = errors.New("cluster: transport closed")

// readBufSize is the bufio buffer of an accepted connection, allocated
// once its hello has been accepted.
const readBufSize = 32 << 10

// Transport carries frames between this node and its peers. Its methods
// are safe for concurrent use.
type Transport struct {
	cfg   Config
	log   *slog.Logger
	peers map[string]*peer // the other nodes; fixed by New
	order []*peer          // the same, sorted by id

	// misrouted counts the frames Send refused for want of a peer: an
	// unknown id, or this node's own.
	misrouted atomic.Uint64

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine

	mu      sync.Mutex // guards the fields below
	ln      net.Listener
	started bool
	closed  bool
	inbound map[net.Conn]struct{} // accepted connections, open
}

// PeerStats are the counters of one peer. Bytes count everything on the
// wire: hellos, frame headers and payloads.
type PeerStats struct {
	ID, Addr  string
	Connected bool // an outbound connection is established
	// SentFrames and SentBytes count what was written to the peer: the
	// frames written in full, and every byte the kernel took, including
	// those of a write that then failed.
	SentFrames, SentBytes uint64
	// RecvFrames and RecvBytes count what was read from the peer's
	// connections once their hello was accepted (the hello included).
	RecvFrames, RecvBytes uint64
	// Dropped counts the frames for the peer that Send refused or that
	// were discarded, unsent or partly sent, when a connection failed.
	Dropped uint64
	// LastHeard is when the last hello or frame came from the peer; zero
	// if never.
	LastHeard time.Time
}

// New checks cfg (see Config.Validate) and returns a transport that is
// not listening yet: call Start.
func New(cfg Config) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Peers = slices.Clone(cfg.Peers)
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:     cfg,
		log:     cfg.Logger,
		peers:   make(map[string]*peer, len(cfg.Peers)),
		ctx:     ctx,
		cancel:  cancel,
		inbound: make(map[net.Conn]struct{}),
	}
	for _, p := range cfg.Peers {
		if p.ID == cfg.Self {
			continue
		}
		pr := newPeer(t, p.ID, p.Addr)
		t.peers[p.ID] = pr
		t.order = append(t.order, pr)
	}
	slices.SortFunc(t.order, func(a, b *peer) int { return cmp.Compare(a.id, b.id) })
	return t, nil
}

// Start listens on Config.Listen and starts the accept loop and one
// sender goroutine per peer.
func (t *Transport) Start() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	if t.started {
		return errors.New("cluster: Start called twice")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(t.ctx, "tcp", t.cfg.Listen)
	if err != nil {
		return fmt.Errorf("cluster: listen on %s: %w", t.cfg.Listen, err)
	}
	t.ln, t.started = ln, true
	t.wg.Add(1 + len(t.order))
	go t.acceptLoop(ln)
	for _, p := range t.order {
		go p.run()
	}
	return nil
}

// Addr returns the address the transport listens on, once started; "" before.
func (t *Transport) Addr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ln == nil {
		return ""
	}
	return t.ln.Addr().String()
}

// SetPeerAddr changes where peer id is dialed. It closes the current
// outbound connection to the peer, if any, and ends its reconnect
// backoff; the next connection goes to addr. It is meant for tests (to
// route a peer through a fault-injecting proxy) and for peers whose
// address was not known at New. An unknown id is ignored.
func (t *Transport) SetPeerAddr(id, addr string) {
	p := t.peers[id]
	if p == nil {
		t.log.Warn("cluster: SetPeerAddr for an unknown peer ignored", "peer", id, "addr", addr)
		return
	}
	p.setAddr(addr)
}

// Send queues one frame for peer to and returns at once. It returns false,
// and counts a drop, when to is unknown or this node, when 1+len(payload)
// exceeds MaxFrameBytes, when the peer's queue would exceed MaxQueueBytes,
// when the peer is down (its last connection attempt failed and the
// transport waits before the next), or after Close. The transport owns
// payload after the call: the caller must not modify it.
func (t *Transport) Send(to string, kind byte, payload []byte) bool {
	p := t.peers[to]
	if p == nil {
		t.misrouted.Add(1)
		return false
	}
	if 1+len(payload) > t.cfg.MaxFrameBytes {
		p.dropped.Add(1)
		return false
	}
	if !p.enqueue(kind, payload, t.cfg.MaxQueueBytes) {
		p.dropped.Add(1)
		return false
	}
	return true
}

// SendBulk is Send for bulk data that may wait (reads served for other
// nodes): it queues the frame only while the peer's queue stays within
// half of MaxQueueBytes, so that raft's messages always find room. It
// returns false, counting no drop, when there is no room now; the caller
// tries again later.
func (t *Transport) SendBulk(to string, kind byte, payload []byte) bool {
	p := t.peers[to]
	if p == nil {
		t.misrouted.Add(1)
		return false
	}
	if 1+len(payload) > t.cfg.MaxFrameBytes/2 {
		p.dropped.Add(1)
		return false
	}
	return p.enqueue(kind, payload, t.cfg.MaxQueueBytes/2)
}

// Connected reports whether an outbound connection to peer id is
// established (its hello written) now.
func (t *Transport) Connected(id string) bool {
	p := t.peers[id]
	return p != nil && p.connected.Load()
}

// InboundConnected reports whether a connection from peer id is open now
// (its hello accepted). A peer that dies closes it at once (its kernel
// resets the socket), which makes it the quickest sign of a crash; a
// paused peer keeps it open.
func (t *Transport) InboundConnected(id string) bool {
	p := t.peers[id]
	return p != nil && p.inbound.Load() > 0
}

// Stats returns the counters of every other peer, sorted by id.
func (t *Transport) Stats() []PeerStats {
	out := make([]PeerStats, 0, len(t.order))
	for _, p := range t.order {
		out = append(out, p.stats())
	}
	return out
}

// Misrouted returns how many frames Send refused because they were for
// an unknown node or for this one.
func (t *Transport) Misrouted() uint64 { return t.misrouted.Load() }

// Close stops the listener, every goroutine and every connection, and
// waits for them (including HandleFrame calls in progress). Frames still
// queued are dropped. Send after Close returns false. Close is
// idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	ln := t.ln
	conns := make([]net.Conn, 0, len(t.inbound))
	for c := range t.inbound {
		conns = append(conns, c)
	}
	t.mu.Unlock()

	t.cancel()
	var err error
	if ln != nil {
		if e := ln.Close(); e != nil && !errors.Is(e, net.ErrClosed) {
			err = fmt.Errorf("cluster: close listener: %w", e)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	for _, p := range t.order {
		p.close()
	}
	t.wg.Wait()
	return err
}

// closing reports whether Close has begun.
func (t *Transport) closing() bool { return t.ctx.Err() != nil }

// acceptLoop accepts connections until the listener closes.
func (t *Transport) acceptLoop(ln net.Listener) {
	defer t.wg.Done()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if t.closing() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or the like: wait, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Error("cluster: accept failed; retrying", "addr", ln.Addr().String(), "err", err, "delay", delay)
			select {
			case <-time.After(delay):
			case <-t.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.inbound[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.serveInbound(c)
	}
}

// countingReader counts the bytes read through it: into pending until
// the connection's peer is known, then into that peer's counter.
type countingReader struct {
	r       io.Reader
	pending uint64
	to      *atomic.Uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.to != nil {
		c.to.Add(uint64(n))
	} else {
		c.pending += uint64(n)
	}
	return n, err
}

// attribute sends the bytes counted so far, and all later ones, to n.
func (c *countingReader) attribute(n *atomic.Uint64) {
	n.Add(c.pending)
	c.pending, c.to = 0, n
}

// serveInbound reads an accepted connection: a hello, then frames for
// the handler, until an error or Close.
func (t *Transport) serveInbound(c net.Conn) {
	defer t.wg.Done()
	defer func() {
		c.Close()
		t.mu.Lock()
		delete(t.inbound, c)
		t.mu.Unlock()
	}()
	remote := c.RemoteAddr().String()
	if t.cfg.TLS != nil {
		tc := tls.Server(c, t.serverTLS())
		if err := t.handshake(tc); err != nil {
			if !t.closing() {
				t.log.Error("cluster: refusing a connection: TLS handshake failed; every node needs a certificate from cluster.tls.ca_file naming its node id",
					"remote", remote, "err", err)
			}
			return
		}
		c = tc
	}
	cr := &countingReader{r: c}

	// A dialer writes its hello at once; one that does not is not a peer.
	c.SetReadDeadline(time.Now().Add(t.cfg.DialTimeout + t.cfg.WriteTimeout))
	h, err := readHello(cr)
	if err != nil {
		if !t.closing() {
			t.log.Error("cluster: refusing a connection: no valid hello", "remote", remote, "err", err)
		}
		return
	}
	p, err := t.checkHello(h)
	if err == nil {
		err = checkPeerCert(c, h.From)
	}
	if err != nil {
		t.log.Error("cluster: refusing a connection", "remote", remote, "err", err)
		return
	}
	c.SetReadDeadline(time.Time{})
	cr.attribute(&p.recvBytes)
	p.heard()
	p.inbound.Add(1)
	defer p.inbound.Add(-1)
	t.log.Debug("cluster: accepted a connection", "peer", p.id, "remote", remote)

	fr := newFrameReader(bufio.NewReaderSize(cr, readBufSize), t.cfg.MaxFrameBytes)
	for {
		kind, payload, err := fr.next()
		if err != nil {
			switch {
			case t.closing():
			case err == io.EOF:
				t.log.Info("cluster: peer closed its connection", "peer", p.id, "remote", remote)
			default:
				t.log.Error("cluster: closing a connection from a peer", "peer", p.id, "remote", remote, "err", err)
			}
			return
		}
		p.recvFrames.Add(1)
		p.heard()
		t.cfg.Handler.HandleFrame(p.id, kind, payload)
	}
}

// checkHello returns the peer that sent h, or an error naming the field
// that does not match.
func (t *Transport) checkHello(h hello) (*peer, error) {
	if h.Cluster != t.cfg.ClusterName {
		return nil, fmt.Errorf("%w: cluster name %q, want %q (from node %q)", ErrBadHello, h.Cluster, t.cfg.ClusterName, h.From)
	}
	if h.From == t.cfg.Self {
		return nil, fmt.Errorf("%w: sender id %q is this node's own id", ErrBadHello, h.From)
	}
	p := t.peers[h.From]
	if p == nil {
		return nil, fmt.Errorf("%w: sender id %q is not a configured peer, want one of %q", ErrBadHello, h.From, t.peerIDs())
	}
	if h.To != t.cfg.Self {
		return nil, fmt.Errorf("%w: node %q dialed %q, but this is %q", ErrBadHello, h.From, h.To, t.cfg.Self)
	}
	return p, nil
}

func (t *Transport) peerIDs() []string {
	ids := make([]string, len(t.order))
	for i, p := range t.order {
		ids[i] = p.id
	}
	return ids
}
