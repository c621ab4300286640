// Package native serves Sense's native binary protocol (docs/protocol.md)
// over TCP; package wire holds the frame codec.
//
// Each connection has one reader goroutine. It checks every frame, answers
// malformed input with an ERROR frame and closes the connection. A PRODUCE
// request is decoded once, into events that alias the frame's bytes (the
// reader hands its buffer to the request instead of copying it), its memory
// is reserved, and it is started in arrival order (sequence numbers and
// per-key order depend on it) by the reader itself, or, when the node's
// lanes or the connection's earlier requests would make it wait, by the
// connection's starter goroutine: the batches are written and the request
// queued for the connection's completer goroutine, which waits for
// durability and answers, in order. At most MaxInFlight requests wait for
// their answer: when the queue is full the reader stops reading, which is
// the backpressure a producer feels.
// Subscriptions push DATA frames from their own goroutine, paced by the
// client's credit.
package native

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/edge/ingest"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/edge/tcpserve"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/internal/tlsconf"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// Options configure a Server.
type Options struct {
	Limits wire.Limits
	// MaxInFlight bounds the PRODUCE requests read ahead and queued per
	// connection; default 8.
	MaxInFlight int
	// ServerID is announced in HELLO_OK.
	ServerID string
	// Admin serves ADMIN frames; nil answers them INVALID_REQUEST.
	Admin admin.Handler
	// Auth authenticates AUTHENTICATE exchanges; when it is Enabled, a
	// connection must authenticate before any request but PING, within
	// AuthTimeout (default 10s) of connecting. Nil: no authentication.
	Auth        *security.Authenticator
	AuthTimeout time.Duration
	// Authorizer is asked at produce, read and admin requests; nil
	// allows everything.
	Authorizer security.Authorizer
	Logger     *slog.Logger
}

// Server serves the native protocol for one node.
type Server struct {
	node *node.Node
	opts Options
	log  *slog.Logger

	conns tcpserve.Tracker
}

// New returns a server for n.
func New(n *node.Node, opts Options) (*Server, error) {
	if err := opts.Limits.Validate(); err != nil {
		return nil, err
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 8
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ServerID == "" {
		opts.ServerID = "sense"
	}
	if opts.AuthTimeout <= 0 {
		opts.AuthTimeout = 10 * time.Second
	}
	if opts.Authorizer == nil {
		opts.Authorizer = security.DefaultAuthorizer{}
	}
	return &Server{node: n, opts: opts, log: opts.Logger}, nil
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("native: server closed")

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.conns.Serve(ln, func(nc net.Conn) tcpserve.Conn { return s.newConn(nc) }, ErrServerClosed)
}

// Shutdown stops accepting, stops reading new requests, lets the requests
// in flight finish (their acknowledgements are sent), and closes every
// connection. If ctx ends first, the connections are closed at once.
func (s *Server) Shutdown(ctx context.Context) error { return s.conns.Shutdown(ctx) }

// conn is one client connection.
type conn struct {
	s   *Server
	nc  net.Conn
	log *slog.Logger
	rd  *wire.Reader

	ctx    context.Context
	cancel context.CancelFunc
	starts chan *produceJob // PRODUCE requests read, started in order
	// queued counts the requests sent to starts and not yet handed on to
	// jobs; the reader starts a request itself only when it is 0.
	queued atomic.Int32
	jobs   chan *produceJob // started PRODUCE requests, answered in order
	work   sync.WaitGroup

	wmu  sync.Mutex // serializes writes; guards the write state below
	wbuf []byte
	werr error
	// wvecs and wvec are writeWith's head and body, kept here so that a
	// writev allocates nothing.
	wvecs [2][]byte
	wvec  net.Buffers

	smu  sync.Mutex
	subs map[uint32]*subscription

	stopping atomic.Bool

	lastPipeline string // the pipeline of the last PRODUCE read (pipelineName)

	// Authentication, owned by the reader goroutine: the exchange under
	// way, and who the connection acts as (Anonymous until then). c.ctx
	// carries the principal once authenticated.
	edge          string
	session       security.Session
	principal     security.Principal
	authenticated bool
	// byCertificate is set while the principal is the client
	// certificate's (security.certificate_user).
	byCertificate bool
	// filter removes from FETCH answers the records a
	// jurisdiction-limited principal may not receive (the reading
	// goroutine's; each subscription has its own).
	filter node.MaskFilter
}

// authRequired reports whether the connection must still authenticate.
func (c *conn) authRequired() bool { return c.s.opts.Auth.Enabled() && !c.authenticated }

func (s *Server) newConn(nc net.Conn) *conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{s: s, nc: nc, log: s.log.With("remote", nc.RemoteAddr().String()), ctx: ctx, cancel: cancel,
		starts: make(chan *produceJob, s.opts.MaxInFlight), jobs: make(chan *produceJob, s.opts.MaxInFlight), subs: map[uint32]*subscription{}}
	c.rd = wire.NewReader(nc)
	c.rd.SetMaxFrame(s.opts.Limits.MaxFrameBytes)
	c.edge = "native"
	if nc.LocalAddr() != nil && nc.LocalAddr().Network() == "udp" {
		c.edge = "quic"
	}
	if c.authRequired() {
		// Until authenticated: small frames, and a deadline, so that a
		// slow or silent peer holds neither memory nor the connection.
		c.rd.SetMaxFrame(wire.HandshakeMaxFrame)
		nc.SetReadDeadline(time.Now().Add(s.opts.AuthTimeout))
	}
	return c
}

// closeGracefully half-closes the connection and drains what the client
// still sends for a moment, so that a last ERROR frame is not lost to a
// reset caused by unread bytes.
func (c *conn) closeGracefully() {
	switch nc := c.nc.(type) {
	case *net.TCPConn:
		nc.CloseWrite()
		nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		io.CopyN(io.Discard, nc, 1<<20)
	case *tlsconf.Conn:
		// A close_notify, then the same drain; fails at once when the
		// handshake did.
		if nc.CloseWrite() == nil {
			nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			io.CopyN(io.Discard, nc, 1<<20)
		}
	}
	c.nc.Close()
}

func (c *conn) stopReading() {
	c.stopping.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

// write sends one frame (or several, appended) under the write lock.
func (c *conn) write(build func([]byte) []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	c.wbuf = build(c.wbuf[:0])
	_, err := c.nc.Write(c.wbuf)
	if cap(c.wbuf) > 1<<20 {
		c.wbuf = nil
	}
	if err != nil {
		c.werr = err
	}
	return err
}

// writeBytes sends frames b holds.
func (c *conn) writeBytes(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if _, err := c.nc.Write(b); err != nil {
		c.werr = err
	}
	return c.werr
}

// writeWith sends a frame whose head build appends and whose tail is body,
// without copying body: the two go out in one writev (net.Buffers) where
// the connection is a socket. A DATA frame's batches are sent this way,
// so a stored batch is copied once on its way out (from the file, by the
// read).
func (c *conn) writeWith(build func([]byte) []byte, body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	c.wbuf = build(c.wbuf[:0])
	c.wvecs = [2][]byte{c.wbuf, body}
	c.wvec = c.wvecs[:]
	_, err := c.wvec.WriteTo(c.nc)
	c.wvecs = [2][]byte{} // body is the caller's again
	if err != nil {
		c.werr = err
	}
	return err
}

// Serve, Stop and Close make conn a tcpserve.Conn.
func (c *conn) Serve() { c.serve() }

// Stop asks the connection to read no new requests.
func (c *conn) Stop() { c.stopReading() }

// Close closes the connection at once.
func (c *conn) Close() { c.nc.Close() }

func (c *conn) serve() {
	c.work.Add(2)
	go c.starter()
	go c.completer()
	defer func() {
		close(c.starts) // the starter starts what is queued, then the completer answers it
		c.endSubscriptions()
		c.work.Wait()
		c.cancel()
		c.closeGracefully()
	}()
	if !c.handshake() {
		return
	}
	for {
		f, err := c.rd.Next()
		if err != nil {
			c.readFailed(f, err)
			return
		}
		if !c.dispatch(f) {
			return
		}
	}
}

// endSubscriptions stops every subscription of the connection, whose
// goroutines would otherwise wait for data or credit until c.ctx ends,
// which happens only after they are done. Called once the reader has
// stopped, so no subscription starts after it.
func (c *conn) endSubscriptions() {
	c.smu.Lock()
	defer c.smu.Unlock()
	for corr, sub := range c.subs {
		sub.cancel()
		delete(c.subs, corr)
	}
}

// readFailed ends the connection after a read error, first telling the
// client why when the error is its fault.
func (c *conn) readFailed(f wire.Frame, err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case c.stopping.Load() && errors.Is(err, os.ErrDeadlineExceeded):
	case c.authRequired() && errors.Is(err, os.ErrDeadlineExceeded):
		why := fmt.Sprintf("no authentication within %s (security.auth_timeout); the connection is closed", c.s.opts.AuthTimeout)
		mech, user := "", ""
		if c.session != nil {
			mech, user = c.session.Mechanism(), c.session.User()
		}
		c.s.opts.Auth.Record(c.edge, c.nc.RemoteAddr().String(), mech, user, errors.New("timed out"))
		c.write(func(b []byte) []byte { return wire.AppendError(b, 0, result.AuthenticationFailed, why) })
	case errors.Is(err, result.ErrRequestTooLarge):
		c.write(func(b []byte) []byte {
			return wire.AppendError(b, 0, result.RequestTooLarge, fmt.Sprintf("%s frame is larger than the %d bytes allowed; the connection is closed", f.Type, c.s.opts.Limits.MaxFrameBytes))
		})
	case errors.Is(err, result.ErrMalformed):
		c.malformed(err)
	default:
		c.log.Debug("connection read failed", "err", err)
	}
}

func (c *conn) malformed(err error) {
	c.log.Warn("malformed frame; closing the connection", "err", err)
	c.write(func(b []byte) []byte {
		return wire.AppendError(b, 0, result.Malformed, err.Error()+"; the connection is closed")
	})
}

func (c *conn) handshake() bool {
	f, err := c.rd.Next()
	if err != nil {
		c.readFailed(f, err)
		return false
	}
	if f.Type != wire.TypeHello {
		c.write(func(b []byte) []byte {
			return wire.AppendError(b, f.Corr, result.NotHandshaken, fmt.Sprintf("the first frame must be HELLO, got %s; the connection is closed", f.Type))
		})
		return false
	}
	h, err := wire.DecodeHello(f.Payload)
	if err != nil {
		c.malformed(err)
		return false
	}
	if id, ok := tlsconf.PeerIdentity(c.nc); ok {
		// The verified client certificate's subject, on every later line.
		c.log = c.log.With("client_cert", id.String())
		c.log.Debug("TLS client certificate verified", "client_id", h.ClientID)
		c.certificateAuth(id)
	}
	v, err := wire.NegotiateVersion(h)
	if err != nil {
		c.write(func(b []byte) []byte { return wire.AppendErrorFrom(b, f.Corr, err) })
		return false
	}
	ok := wire.NewHelloOK(v, c.s.opts.Limits, c.s.opts.ServerID)
	ok.AuthRequired = c.authRequired()
	return c.write(func(b []byte) []byte { return wire.AppendHelloOK(b, f.Corr, ok) }) == nil
}

// certificateAuth authenticates the connection as the user its verified
// client certificate maps to (security.certificate_user), if any. An
// AUTHENTICATE exchange may still replace that principal.
func (c *conn) certificateAuth(id tlsconf.Identity) {
	auth := c.s.opts.Auth
	p, ok, err := auth.Certificate(id, true)
	if err != nil {
		auth.Record(c.edge, c.nc.RemoteAddr().String(), security.Certificate, "", err)
		return
	}
	if !ok {
		return
	}
	c.byCertificate = true
	c.authenticatedAs(p)
}

// authenticatedAs makes p the connection's principal.
func (c *conn) authenticatedAs(p security.Principal) {
	c.principal = p
	c.authenticated = true
	c.session = nil
	c.ctx = security.NewContext(c.ctx, p)
	c.log = c.log.With("principal", p.User)
	c.s.opts.Auth.Record(c.edge, c.nc.RemoteAddr().String(), p.Mechanism, p.User, nil)
	c.rd.SetMaxFrame(c.s.opts.Limits.MaxFrameBytes)
	c.nc.SetReadDeadline(time.Time{})
	if c.stopping.Load() {
		c.nc.SetReadDeadline(time.Now())
	}
}

// authenticate handles one AUTHENTICATE frame; it returns false when the
// connection must close (a refused or malformed exchange).
func (c *conn) authenticate(f wire.Frame) bool {
	m, err := wire.DecodeAuthenticate(f.Payload)
	if err != nil {
		c.malformed(err)
		return false
	}
	auth := c.s.opts.Auth
	if auth == nil {
		c.write(func(b []byte) []byte {
			return wire.AppendError(b, f.Corr, result.InvalidRequest, "this server does not authenticate")
		})
		return true
	}
	if c.authenticated && !c.byCertificate {
		c.write(func(b []byte) []byte {
			return wire.AppendError(b, f.Corr, result.InvalidRequest, "this connection is authenticated already, as "+c.principal.User)
		})
		return true
	}
	remote := c.nc.RemoteAddr().String()
	if c.session == nil {
		if c.session, err = auth.NewSession(m.Mechanism); err != nil {
			auth.Record(c.edge, remote, m.Mechanism, "", err)
			return c.refuse(f.Corr, err)
		}
	} else if m.Mechanism != c.session.Mechanism() {
		err := fmt.Errorf("AUTHENTICATE with mechanism %s in the middle of a %s exchange", m.Mechanism, c.session.Mechanism())
		auth.Record(c.edge, remote, c.session.Mechanism(), c.session.User(), err)
		return c.refuse(f.Corr, result.New(result.AuthenticationFailed, err.Error()))
	}
	out, done, err := c.session.Step(m.Data)
	if err != nil {
		auth.Record(c.edge, remote, c.session.Mechanism(), c.session.User(), err)
		return c.refuse(f.Corr, err)
	}
	res := wire.AuthenticateResult{Done: done, Data: out}
	if done {
		c.byCertificate = false
		c.authenticatedAs(c.session.Principal())
		res.Principal = c.principal.User
	}
	return c.write(func(b []byte) []byte { return wire.AppendAuthenticateResult(b, f.Corr, res) }) == nil
}

// refuse answers a refused authentication with ERROR
// AUTHENTICATION_FAILED; the connection then closes.
func (c *conn) refuse(corr uint32, err error) bool {
	msg := err.Error() + "; the connection is closed"
	var re *result.Error
	if errors.As(err, &re) {
		msg = re.Message + "; the connection is closed"
	}
	c.write(func(b []byte) []byte { return wire.AppendError(b, corr, result.AuthenticationFailed, msg) })
	return false
}

// authorize asks the authorizer; a denial is answered with ERROR
// UNAUTHORIZED and false.
// With security off nothing is asked: every request is allowed, at no
// cost.
func (c *conn) authorize(corr uint32, a security.Action, r security.Resource) bool {
	if !c.s.opts.Auth.Enabled() {
		return true
	}
	err := c.s.opts.Authorizer.Authorize(c.principal, a, r)
	if err == nil {
		return true
	}
	c.log.Info("request denied", "action", a.String(), "resource", r.String(), "err", err)
	c.write(func(b []byte) []byte { return wire.AppendError(b, corr, result.Unauthorized, err.Error()) })
	return false
}

// readLimit is the principal's read limit on a pipeline (none with
// security off).
func (c *conn) readLimit(pipeline string) security.ReadLimit {
	if !c.s.opts.Auth.Enabled() {
		return security.ReadLimit{}
	}
	return security.ReadLimitOf(c.s.opts.Authorizer, c.principal, pipeline)
}

// dispatch handles one frame; it returns false when the connection must
// close.
func (c *conn) dispatch(f wire.Frame) bool {
	if c.authRequired() && f.Type != wire.TypeAuthenticate && f.Type != wire.TypePing {
		c.s.opts.Auth.Record(c.edge, c.nc.RemoteAddr().String(), "", "", fmt.Errorf("%s before authentication", f.Type))
		c.write(func(b []byte) []byte {
			return wire.AppendError(b, f.Corr, result.AuthenticationFailed, fmt.Sprintf("%s before authentication: this server requires an AUTHENTICATE exchange first (docs/protocol.md); the connection is closed", f.Type))
		})
		return false
	}
	switch f.Type {
	case wire.TypeAuthenticate:
		return c.authenticate(f)
	case wire.TypeProduce:
		return c.produce(f)
	case wire.TypeInitProducer:
		if _, err := wire.DecodeInitProducer(f.Payload); err != nil {
			c.malformed(err)
			return false
		}
		if !c.authorize(f.Corr, security.IdempotentWrite, security.ClusterResource) {
			return true
		}
		id, err := c.s.node.NewProducerID()
		if err != nil {
			return c.write(func(b []byte) []byte { return wire.AppendErrorFrom(b, f.Corr, err) }) == nil
		}
		return c.write(func(b []byte) []byte {
			return wire.AppendInitProducerOK(b, f.Corr, wire.InitProducerOK{ProducerID: id, Epoch: 0})
		}) == nil
	case wire.TypeSubscribe:
		m, err := wire.DecodeSubscribe(f.Payload)
		if err != nil {
			c.malformed(err)
			return false
		}
		if !c.authorize(f.Corr, security.Read, security.PipelineResource(m.Pipeline)) {
			return true
		}
		c.subscribe(f.Corr, m)
		return true
	case wire.TypeCredit:
		n, err := wire.DecodeCredit(f.Payload)
		if err != nil {
			c.malformed(err)
			return false
		}
		c.smu.Lock()
		if sub := c.subs[f.Corr]; sub != nil {
			sub.addCredit(n)
		}
		c.smu.Unlock()
		return true
	case wire.TypeUnsubscribe:
		if err := wire.DecodeEmpty(f.Type, f.Payload); err != nil {
			c.malformed(err)
			return false
		}
		c.smu.Lock()
		sub := c.subs[f.Corr]
		delete(c.subs, f.Corr)
		c.smu.Unlock()
		if sub != nil {
			sub.cancel()
		} else {
			c.write(func(b []byte) []byte { return wire.AppendUnsubscribed(b, f.Corr) })
		}
		return true
	case wire.TypeFetch:
		m, err := wire.DecodeFetch(f.Payload)
		if err != nil {
			c.malformed(err)
			return false
		}
		if !c.authorize(f.Corr, security.Read, security.PipelineResource(m.Pipeline)) {
			return true
		}
		c.fetch(f.Corr, m)
		return true
	case wire.TypeAdmin:
		body := append([]byte(nil), f.Payload...)
		res := admin.EncodeResponse(admin.Response{}, result.New(result.InvalidRequest, "this server does not serve the admin API"))
		if c.s.opts.Admin != nil {
			res = admin.ServeContext(c.ctx, c.s.opts.Admin, body)
		}
		return c.write(func(b []byte) []byte { return wire.AppendAdminResult(b, f.Corr, res) }) == nil
	case wire.TypePing:
		data := f.Payload
		return c.write(func(b []byte) []byte { return wire.AppendPong(b, f.Corr, data) }) == nil
	case wire.TypeHello:
		c.write(func(b []byte) []byte {
			return wire.AppendError(b, f.Corr, result.InvalidRequest, "HELLO was already received on this connection")
		})
		return true
	}
	c.malformed(fmt.Errorf("frame type %#x is not a client request", uint8(f.Type)))
	return false
}

// produceJob is one PRODUCE being handled.
type produceJob struct {
	reserved int64 // bytes of the node's ingress budget
	pending  node.PendingProduce
	err      error
	corr     uint32
	buf      []byte              // the request's payload (taken from the reader: Swap)
	wr       wire.ProduceRequest // decoded once, aliasing buf
	pipeline string              // wr.Pipeline (pipelineName)
	req      node.ProduceRequest
	in       ingest.Request // the request's events, as the node takes them
	res      []node.Result
	out      []wire.EventResult
	arrived  time.Time // when the request had been read
}

var jobPool = sync.Pool{New: func() any { return new(produceJob) }}

func (c *conn) produce(f wire.Frame) bool {
	arrived := time.Now()
	// Validate the whole request before queueing it, so a malformed one
	// closes the connection at once.
	wr, err := c.s.opts.Limits.DecodeProduce(f.Payload)
	if err != nil {
		if result.CodeOf(err) == result.Malformed {
			c.malformed(err)
			return false
		}
		return c.write(func(b []byte) []byte { return wire.AppendErrorFrom(b, f.Corr, err) }) == nil
	}
	pipeline := c.pipelineName(wr.Pipeline)
	if !c.authorize(f.Corr, security.Write, security.PipelineResource(pipeline)) {
		return true
	}
	// Take the request's memory from the node's ingress budget before
	// copying it; while the budget is full this blocks, and the connection
	// is not read: backpressure.
	size := ingest.Memory(len(f.Payload), wr.Count)
	if err := c.s.node.ReserveAs(c.ctx, size, func() event.Priority { return c.lane(&wr) }); err != nil {
		return false
	}
	j := jobPool.Get().(*produceJob)
	j.reserved = size
	j.corr = f.Corr
	// The job takes the reader's buffer, which holds the payload wr
	// aliases, and gives it its own (spent) one to read into next.
	j.buf = c.rd.Swap(j.buf)
	j.wr = wr
	j.pipeline = pipeline
	j.arrived = arrived
	// Once queued, a request is always answered: the starter and the
	// completer take every job queued, even while the connection closes.
	if c.queued.Load() == 0 && !c.s.node.AppendsWaiting() {
		// Nothing of this connection waits to be started and the node
		// would not make this request wait: start it here rather than
		// hand it to the starter (a hand-off costs a goroutine wake-up
		// per request, most of a light load's CPU). The jobs queue keeps
		// the order: every request queued before has been handed on.
		c.startProduce(j.corr, &j.wr, j)
		c.jobs <- j // blocks when the queue is full: backpressure
		return true
	}
	c.queued.Add(1)
	c.starts <- j // blocks when the queue is full: backpressure
	return true
}

// pipelineName returns a request's pipeline as a string: the one of the
// connection's previous request when it is the same (a producer sends to
// one pipeline), so that a request allocates no name. Called by the
// reader.
func (c *conn) pipelineName(p []byte) string {
	if string(p) != c.lastPipeline {
		c.lastPipeline = string(p)
	}
	return c.lastPipeline
}

// lane returns the highest priority of a request's events (an event that
// names none has its pipeline's): critical requests go first when the
// node's memory budget is short (node.ReserveAs).
func (c *conn) lane(wr *wire.ProduceRequest) event.Priority {
	def := c.s.node.DefaultPriority(string(wr.Pipeline))
	lane := event.Low
	for it := wr.Events(); it.Next(); {
		p := def
		if ev := it.Event(); ev.HasPriority {
			p = ev.Priority
		}
		if p.Valid() && p > lane {
			lane = p
		}
	}
	return lane
}

// starter starts each request queued by the reader, in order, and hands
// it to the completer. Reading runs ahead of it by up to MaxInFlight
// requests, so a request's time waiting for its turn is seen by the node
// (its queueing delay, by which overload is judged) rather than hidden in
// the socket. When nothing is queued and the node would not make a
// request wait, the reader starts it itself (produce).
func (c *conn) starter() {
	defer c.work.Done()
	defer close(c.jobs)
	for j := range c.starts {
		c.startProduce(j.corr, &j.wr, j)
		c.jobs <- j // blocks when the queue is full: backpressure
		c.queued.Add(-1)
	}
}

// completer waits for each started request to be durable and answers it,
// in the order the requests came.
// maxAckWrite bounds the acknowledgements the completer gathers into one
// write.
const maxAckWrite = 64 << 10

// completer answers the connection's produce requests in order, once each
// is durable. The answers of requests that are durable by the time the one
// before them is answered (one group commit often covers several) go out
// in the same write.
func (c *conn) completer() {
	defer c.work.Done()
	var held *produceJob // taken from jobs, not yet durable
	var acks []byte
	for {
		j := held
		held = nil
		if j == nil {
			var ok bool
			if j, ok = <-c.jobs; !ok {
				return
			}
		}
		acks = c.finishProduce(acks[:0], j)
		c.releaseJob(j)
	gather:
		for len(acks) < maxAckWrite {
			select {
			case next, ok := <-c.jobs:
				if !ok {
					break gather
				}
				if !next.ready() {
					held = next
					break gather
				}
				acks = c.finishProduce(acks, next)
				c.releaseJob(next)
			default:
				break gather
			}
		}
		c.writeBytes(acks)
		if cap(acks) > 4*maxAckWrite {
			acks = nil
		}
	}
}

// ready reports whether j's answer can be given without waiting.
func (j *produceJob) ready() bool { return j.err != nil || j.pending.Ready() }

func (c *conn) releaseJob(j *produceJob) {
	c.s.node.Release(j.reserved)
	j.reserved = 0
	j.pending = node.PendingProduce{}
	j.wr, j.pipeline = wire.ProduceRequest{}, ""
	j.req.Events = nil
	j.in.Release()
	if cap(j.buf) <= 4<<20 {
		jobPool.Put(j)
	}
}

func (c *conn) startProduce(corr uint32, wr *wire.ProduceRequest, j *produceJob) {
	j.in.Convert(wr, c.s.opts.Limits)
	j.req = node.ProduceRequest{Pipeline: j.pipeline, ProducerID: wr.ProducerID, Epoch: wr.Epoch, BaseSequence: wr.BaseSequence,
		Events: j.in.Events, Arrived: j.arrived}
	if wr.ProducerID < 0 {
		j.req.ProducerID = -1
	}
	j.out = grow(j.out, wr.Count)
	for i, code := range j.in.Codes {
		if code != result.OK {
			j.out[i] = wire.EventResult{Code: code, Partition: -1, Offset: -1}
		}
	}
	if len(j.req.Events) > 0 && wr.ProducerID >= 0 {
		// Sequences follow the request's numbering even when some events
		// were refused above: the node derives each event's sequence from
		// its index, so pass the original base and let refused events be
		// gaps.
		j.req.BaseSequence = wr.Sequence(j.in.Index[0])
	}
	j.res = growRes(j.res, len(j.req.Events))
	j.err = c.s.node.StartProduceInto(c.ctx, &j.req, j.res, &j.pending)
}

// finishProduce waits for j to be durable and appends its answer to out.
func (c *conn) finishProduce(out []byte, j *produceJob) []byte {
	if j.err != nil {
		for _, i := range j.in.Index {
			j.out[i] = wire.EventResult{Code: result.Timeout, Partition: -1, Offset: -1}
		}
	} else {
		j.pending.Wait()
		for k, i := range j.in.Index {
			r := j.res[k]
			j.out[i] = wire.EventResult{Code: result.Code(r.Code), Partition: r.Partition, Offset: r.Offset}
		}
	}
	return wire.AppendProduceResult(out, j.corr, j.out)
}

func grow(s []wire.EventResult, n int) []wire.EventResult {
	if cap(s) < n {
		return make([]wire.EventResult, n)
	}
	return s[:n]
}

func growRes(s []node.Result, n int) []node.Result {
	if cap(s) < n {
		return make([]node.Result, n)
	}
	return s[:n]
}

func (c *conn) fetch(corr uint32, m wire.Fetch) {
	maxBytes := int(m.MaxBytes)
	if limit := c.s.opts.Limits.MaxFrameBytes - wire.FetchResultHeaderSize - wire.FrameHeaderSize; maxBytes <= 0 || maxBytes > limit {
		maxBytes = limit
	}
	ctx, cancel := context.WithTimeout(c.ctx, 0)
	defer cancel()
	buf, _, hw, code := c.s.node.Fetch(ctx, m.Pipeline, m.Partition, m.Offset, maxBytes, nil)
	if lim := c.readLimit(m.Pipeline); code == result.OK && lim.Limited() {
		var err error
		if buf, err = c.filter.Filter(nil, buf, lim.Allows); err != nil {
			c.log.Error("filtering a fetch by jurisdiction failed", "err", err)
			code, buf = result.StorageError, nil
		}
	}
	if code == result.OK && len(buf) > maxBytes+batch.MaxSize {
		code = result.Code(result.BatchTooLarge)
		buf = nil
	}
	c.write(func(b []byte) []byte {
		return wire.AppendFetchResult(b, corr, wire.FetchResult{Code: result.Code(code), Partition: m.Partition, HighWatermark: hw, Batches: buf})
	})
}
