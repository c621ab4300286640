// Package native serves Sense's native binary protocol (docs/protocol.md)
// over TCP; package wire holds the frame codec.
//
// Each connection has one reader goroutine. It checks every frame, answers
// malformed input with an ERROR frame and closes the connection. A PRODUCE
// request is decoded once, into events that alias the frame's bytes (the
// reader hands its buffer to the request instead of copying it), its memory
// is reserved, and the reader starts it itself, in arrival order (sequence
// numbers and per-key order depend on it): the batches are written and the
// request queued for the connection's completer goroutine, which waits for
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
	"github.com/sensehq/sense/internal/tlsconf"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
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
	Admin  admin.Handler
	Logger *slog.Logger
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
	jobs   chan *produceJob // started PRODUCE requests, answered in order
	work   sync.WaitGroup

	wmu  sync.Mutex // serializes writes
	wbuf []byte
	werr error

	smu  sync.Mutex
	subs map[uint32]*subscription

	stopping atomic.Bool
}

func (s *Server) newConn(nc net.Conn) *conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{s: s, nc: nc, log: s.log.With("remote", nc.RemoteAddr().String()), ctx: ctx, cancel: cancel,
		jobs: make(chan *produceJob, s.opts.MaxInFlight), subs: map[uint32]*subscription{}}
	c.rd = wire.NewReader(nc)
	c.rd.SetMaxFrame(s.opts.Limits.MaxFrameBytes)
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
	bufs := net.Buffers{c.wbuf, body}
	_, err := bufs.WriteTo(c.nc)
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
	c.work.Add(1)
	go c.completer()
	defer func() {
		close(c.jobs) // the completer answers what is queued, then exits
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
	}
	v, err := wire.NegotiateVersion(h)
	if err != nil {
		c.write(func(b []byte) []byte { return wire.AppendErrorFrom(b, f.Corr, err) })
		return false
	}
	return c.write(func(b []byte) []byte {
		return wire.AppendHelloOK(b, f.Corr, wire.NewHelloOK(v, c.s.opts.Limits, c.s.opts.ServerID))
	}) == nil
}

// dispatch handles one frame; it returns false when the connection must
// close.
func (c *conn) dispatch(f wire.Frame) bool {
	switch f.Type {
	case wire.TypeProduce:
		return c.produce(f)
	case wire.TypeInitProducer:
		if _, err := wire.DecodeInitProducer(f.Payload); err != nil {
			c.malformed(err)
			return false
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
		c.fetch(f.Corr, m)
		return true
	case wire.TypeAdmin:
		body := append([]byte(nil), f.Payload...)
		res := admin.EncodeResponse(admin.Response{}, result.New(result.InvalidRequest, "this server does not serve the admin API"))
		if c.s.opts.Admin != nil {
			res = admin.Serve(c.s.opts.Admin, body)
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
	pending  *node.PendingProduce
	err      error
	corr     uint32
	buf      []byte              // the request's payload (taken from the reader: Swap)
	wr       wire.ProduceRequest // decoded once, aliasing buf
	req      node.ProduceRequest
	in       ingest.Request // the request's events, as the node takes them
	res      []node.Result
	out      []wire.EventResult
}

var jobPool = sync.Pool{New: func() any { return new(produceJob) }}

func (c *conn) produce(f wire.Frame) bool {
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
	// Take the request's memory from the node's ingress budget before
	// copying it; while the budget is full this blocks, and the connection
	// is not read: backpressure.
	size := ingest.Memory(len(f.Payload), wr.Count)
	if err := c.s.node.Reserve(c.ctx, size); err != nil {
		return false
	}
	j := jobPool.Get().(*produceJob)
	j.reserved = size
	j.corr = f.Corr
	// The job takes the reader's buffer, which holds the payload wr
	// aliases, and gives it its own (spent) one to read into next.
	j.buf = c.rd.Swap(j.buf)
	j.wr = wr
	c.startProduce(j.corr, &j.wr, j)
	// Once started, a request is always answered: the completer takes
	// every job queued, even while the connection closes.
	c.jobs <- j // blocks when the queue is full: backpressure
	return true
}

// completer waits for each started request to be durable and answers it,
// in the order the requests came.
func (c *conn) completer() {
	defer c.work.Done()
	for j := range c.jobs {
		c.finishProduce(j)
		c.releaseJob(j)
	}
}

func (c *conn) releaseJob(j *produceJob) {
	c.s.node.Release(j.reserved)
	j.reserved = 0
	j.pending = nil
	j.wr = wire.ProduceRequest{}
	j.req.Events = nil
	j.in.Release()
	if cap(j.buf) <= 4<<20 {
		jobPool.Put(j)
	}
}

func (c *conn) startProduce(corr uint32, wr *wire.ProduceRequest, j *produceJob) {
	j.in.Convert(wr, c.s.opts.Limits)
	j.req = node.ProduceRequest{Pipeline: string(wr.Pipeline), ProducerID: wr.ProducerID, Epoch: wr.Epoch, BaseSequence: wr.BaseSequence,
		Events: j.in.Events}
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
	j.pending, j.err = c.s.node.StartProduce(c.ctx, &j.req, j.res)
}

func (c *conn) finishProduce(j *produceJob) {
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
	c.write(func(b []byte) []byte { return wire.AppendProduceResult(b, j.corr, j.out) })
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
	if code == result.OK && len(buf) > maxBytes+batch.MaxSize {
		code = result.Code(result.BatchTooLarge)
		buf = nil
	}
	c.write(func(b []byte) []byte {
		return wire.AppendFetchResult(b, corr, wire.FetchResult{Code: result.Code(code), Partition: m.Partition, HighWatermark: hw, Batches: buf})
	})
}
