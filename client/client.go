package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/edge/native/wire/quicwire"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// Special start offsets for ConsumerOptions.From (and Fetch).
const (
	// Earliest starts at the first offset a partition still holds.
	Earliest int64 = -2
	// Latest starts at the high watermark: only events stored from now on.
	Latest int64 = -1
)

// DefaultAddr is the native listener a Client dials when Options.Addr is
// empty.
const DefaultAddr = "127.0.0.1:7070"

// DefaultQUICAddr is the QUIC listener a Client dials when Options.Addr is
// empty and Options.Transport is TransportQUIC.
const DefaultQUICAddr = "127.0.0.1:7071"

// Transports for Options.Transport.
const (
	// TransportTCP is the native protocol on a TCP connection (default).
	TransportTCP = "tcp"
	// TransportQUIC is the native protocol on QUIC streams (docs/quic.md).
	TransportQUIC = "quic"
	// TransportHTTP is the node's HTTP listener (docs/http.md): HTTP/2,
	// over TLS or with prior knowledge (h2c).
	TransportHTTP = "http"
)

// DefaultDialTimeout bounds the TCP connect and the HELLO handshake when
// Options.DialTimeout is zero.
const DefaultDialTimeout = 5 * time.Second

// Options configure a Client.
type Options struct {
	// Addr is the host:port of the Sense node's listener for Transport:
	// the native listener (default DefaultAddr, 127.0.0.1:7070), the QUIC
	// listener (DefaultQUICAddr, 127.0.0.1:7071) or the HTTP listener
	// (DefaultHTTPAddr, 127.0.0.1:8080). Over HTTP it may start with
	// https:// (TLS) or http://.
	Addr string
	// ClientID names the client in the server's logs (sent in HELLO).
	// Default "sense-go".
	ClientID string
	// DialTimeout bounds connecting and the handshake, also when the
	// client reconnects. Default 5s.
	DialTimeout time.Duration

	// Transport is TransportTCP ("tcp", the default) or TransportQUIC
	// ("quic"). Over QUIC the client opens one QUIC connection to Addr
	// (the node's QUIC listener, UDP) and runs every logical connection
	// on a stream of it: one for admin calls and fetches, and one for
	// each Producer and each Consumer, so a loss that stalls one of them
	// does not stall the others. Everything above the byte stream is the
	// same as over TCP.
	//
	// TransportHTTP ("http") speaks to the node's HTTP listener instead
	// (docs/http.md): HTTP/2 with prior knowledge (h2c) on a plain
	// address, HTTP/2 over TLS when Addr starts with https:// or one of
	// the TLS options below is set. Producers POST the native batch
	// encoding, consumers tail each partition with Server-Sent Events,
	// admin calls POST /v1/admin. HTTP produce is not idempotent: see
	// ProducerOptions.AtLeastOnce.
	Transport string
	// ServerFingerprint pins the QUIC (or HTTPS) server's certificate: the SHA-256 of
	// its leaf certificate in hex (colons allowed), as `sense serve`
	// prints it. When set, only the pin is checked (neither chain nor
	// name): this is how a client trusts a dev server's self-signed
	// certificate.
	ServerFingerprint string
	// InsecureSkipVerify accepts any QUIC (or HTTPS) server certificate. For
	// experiments only: the connection is encrypted but not
	// authenticated.
	InsecureSkipVerify bool
	// TLSConfig is the base TLS configuration for QUIC, TLS over TCP and
	// HTTPS (for example RootCAs for a configured server certificate, and
	// Certificates for a client certificate when the server asks for one:
	// mutual TLS); it is cloned, and TLS 1.3 and ALPN "sense/1" are set
	// (over HTTP: ALPN h2 and http/1.1). With neither a pin nor
	// InsecureSkipVerify, the server's certificate is verified against
	// TLSConfig.RootCAs (or the system roots) and the host of Addr.
	TLSConfig *tls.Config
	// TLS runs the native protocol over TLS on TCP (the native listener's
	// tls.native.enabled; docs/security.md). It is implied by TLSConfig,
	// ServerFingerprint or InsecureSkipVerify; set it alone to verify the
	// server against the system roots.
	TLS bool

	// User and Password authenticate the client (docs/security.md) with
	// Mechanism: SCRAM-SHA-512 (the default), SCRAM-SHA-256 or PLAIN. Over
	// HTTP they are sent as Basic credentials.
	User, Password, Mechanism string
	// Token authenticates the client with a token of `sense token
	// create`, or the bootstrap token; it is used instead of User.
	Token string
}

func (o *Options) normalize() error {
	if o.User != "" && o.Token == "" {
		if o.Password == "" {
			return fmt.Errorf("client: Options.User %q without a Password", o.User)
		}
		switch o.Mechanism {
		case "":
			o.Mechanism = security.ScramSHA512
		case security.ScramSHA256, security.ScramSHA512, security.Plain:
		default:
			return fmt.Errorf("client: Options.Mechanism %q: use %s, %s or %s", o.Mechanism, security.ScramSHA512, security.ScramSHA256, security.Plain)
		}
	}
	switch o.Transport {
	case "", TransportTCP:
		o.Transport = TransportTCP
	case TransportQUIC, TransportHTTP:
	default:
		return fmt.Errorf("client: Options.Transport %q: use %q, %q or %q", o.Transport, TransportTCP, TransportQUIC, TransportHTTP)
	}
	if o.ServerFingerprint != "" {
		fp, err := quicwire.ParseFingerprint(o.ServerFingerprint)
		if err != nil {
			return fmt.Errorf("client: Options.ServerFingerprint: %w", err)
		}
		o.ServerFingerprint = fp
	}
	if o.Addr == "" {
		switch o.Transport {
		case TransportQUIC:
			o.Addr = DefaultQUICAddr
		case TransportHTTP:
			o.Addr = DefaultHTTPAddr
		default:
			o.Addr = DefaultAddr
		}
	}
	if o.Transport == TransportTCP && (o.TLSConfig != nil || o.ServerFingerprint != "" || o.InsecureSkipVerify) {
		o.TLS = true
	}
	if o.ClientID == "" {
		o.ClientID = "sense-go"
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	return nil
}

var (
	// ErrClosed is returned by the methods of a Client, Producer or
	// Consumer after its Close, and is the Result.Err of events that were
	// still pending when their Client was closed.
	ErrClosed = errors.New("client: closed")
	// ErrConnectionLost matches (errors.Is) every error that reports the
	// loss of the connection to the server; see *ConnError.
	ErrConnectionLost = errors.New("client: connection lost")
	// ErrNoRecord is returned by Consumer.NextWithin when no record
	// arrived within the wait.
	ErrNoRecord = errors.New("client: no record within the wait")
	// ErrProtocol matches errors caused by a frame from the server that
	// breaks the protocol; the client closes that connection.
	ErrProtocol = errors.New("client: protocol violation by the server")
)

// ConnError reports that the connection to Addr ended. errors.Is matches
// it with ErrConnectionLost; Err is the cause (io.EOF when the server
// closed the connection, a *result.Error when it said why first).
type ConnError struct {
	Addr string
	Err  error
}

func (e *ConnError) Error() string {
	return "client: connection to " + e.Addr + " lost: " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *ConnError) Unwrap() error { return e.Err }

// Is matches ErrConnectionLost.
func (e *ConnError) Is(target error) bool { return target == ErrConnectionLost }

// AdminError is an administrative operation the server refused, with its
// explanation. When the server answered with an ERROR frame, Err is that
// *result.Error, so errors.Is(err, result.ErrUnknownPipeline) and the like
// work.
type AdminError struct {
	Op      string
	Message string
	Err     error
}

func (e *AdminError) Error() string { return "client: admin " + e.Op + ": " + e.Message }

// Unwrap returns Err.
func (e *AdminError) Unwrap() error { return e.Err }

// Client is a connection to one Sense node over the native protocol. Over
// TCP it holds one connection, shared by every Producer and Consumer made
// from it; frames are told apart by correlation id. Over QUIC it holds one
// QUIC connection, and each Producer and Consumer has a stream of its own
// (see Options.Transport). A Client is safe for concurrent use. When the connection breaks, producers reconnect (and
// resend what was not answered); consumers end with an error; other calls
// reconnect on their next use.
type Client struct {
	opts Options
	corr atomic.Uint32

	dialMu sync.Mutex // one dial at a time
	mu     sync.Mutex
	cur    *conn
	closed bool

	regMu sync.Mutex
	reg   *jurisdiction.Registry

	// QUIC only.
	tlsConf *tls.Config
	qmu     sync.Mutex // one QUIC dial at a time
	qc      *quic.Conn
	flows   map[*conn]struct{} // streams of producers and consumers, under mu

	// HTTP only; then the fields above for connections stay unused.
	h *httpClient

	// cutAnswer, set by tests, is asked about every frame from the server;
	// true drops it and cuts its connection, as a network failure would.
	cutAnswer atomic.Pointer[func(wire.Frame) bool]
}

// Dial connects to a Sense node and performs the HELLO handshake. Errors
// name the address.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	c := &Client{opts: opts, flows: map[*conn]struct{}{}}
	if opts.Transport == TransportHTTP {
		h, err := newHTTPClient(&c.opts)
		if err != nil {
			return nil, err
		}
		if err := h.check(ctx, opts.DialTimeout); err != nil {
			h.close()
			return nil, err
		}
		c.h = h
		return c, nil
	}
	if opts.Transport == TransportQUIC || opts.Transport == TransportTCP && opts.TLS {
		host, _, err := net.SplitHostPort(opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("client: Options.Addr %q: %w", opts.Addr, err)
		}
		if c.tlsConf, err = quicwire.ClientTLS(opts.TLSConfig, host, opts.ServerFingerprint, opts.InsecureSkipVerify); err != nil {
			return nil, err
		}
	}
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.cur = cn
	return c, nil
}

// Addr returns the address the client connects to.
func (c *Client) Addr() string { return c.opts.Addr }

// Transport returns TransportTCP, TransportQUIC or TransportHTTP.
func (c *Client) Transport() string { return c.opts.Transport }

// ServerID returns the server's id from the last handshake (for example
// "sense/n1"), or "" while disconnected and over HTTP, which has no
// handshake.
func (c *Client) ServerID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return ""
	}
	return c.cur.hello.ServerID
}

// Close closes the connection. Producers and consumers of the client stop
// working: close them first (Producer.Close flushes). Events still pending
// in a producer get ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.h != nil {
		c.mu.Unlock()
		c.h.close()
		return nil
	}
	cn := c.cur
	flows := c.flows
	c.flows = nil
	c.mu.Unlock()
	if cn != nil {
		cn.fail(ErrClosed)
	}
	for f := range flows {
		f.fail(ErrClosed)
	}
	c.qmu.Lock()
	if c.qc != nil {
		c.qc.CloseWithError(0, "client closed")
		c.qc = nil
	}
	c.qmu.Unlock()
	return nil
}

// nextCorr returns a fresh correlation id, never 0.
func (c *Client) nextCorr() uint32 {
	for {
		if v := c.corr.Add(1); v != 0 {
			return v
		}
	}
}

// conn returns the live connection, dialing a new one if the last one
// ended.
func (c *Client) conn(ctx context.Context) (*conn, error) {
	if cn, err := c.live(); cn != nil || err != nil {
		return cn, err
	}
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	if cn, err := c.live(); cn != nil || err != nil {
		return cn, err
	}
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cn.fail(ErrClosed)
		return nil, ErrClosed
	}
	c.cur = cn
	return cn, nil
}

func (c *Client) live() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.cur != nil && !c.cur.isDone() {
		return c.cur, nil
	}
	return nil, nil
}

// flowConn returns the connection a Producer or Consumer uses: over TCP
// the client's shared one; over QUIC a new stream of its own, which the
// caller releases with releaseFlow.
func (c *Client) flowConn(ctx context.Context) (*conn, error) {
	if c.opts.Transport != TransportQUIC {
		return c.conn(ctx)
	}
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cn.fail(ErrClosed)
		return nil, ErrClosed
	}
	c.flows[cn] = struct{}{}
	return cn, nil
}

// releaseFlow closes a connection from flowConn when its Producer or
// Consumer is done with it (a no-op over TCP, where it is shared).
func (c *Client) releaseFlow(cn *conn) {
	if cn == nil || c.opts.Transport != TransportQUIC {
		return
	}
	c.mu.Lock()
	delete(c.flows, cn)
	c.mu.Unlock()
	cn.fail(ErrClosed)
}

// quicConn returns the live QUIC connection, dialing a new one if there is
// none or the last one ended.
func (c *Client) quicConn(ctx context.Context) (*quic.Conn, error) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.qc != nil && c.qc.Context().Err() == nil {
		return c.qc, nil
	}
	raddr, err := net.ResolveUDPAddr("udp", c.opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("client: QUIC address %s: %w", c.opts.Addr, err)
	}
	udp, err := quicwire.ListenUDP(":0", discardLogger)
	if err != nil {
		return nil, fmt.Errorf("client: connect to Sense at %s over QUIC: %w", c.opts.Addr, err)
	}
	tr := &quic.Transport{Conn: udp}
	qc, err := tr.Dial(ctx, raddr, c.tlsConf, &quic.Config{
		MaxIdleTimeout:  quicwire.DefaultIdleTimeout,
		KeepAlivePeriod: quicwire.DefaultIdleTimeout / 3,
	})
	if err != nil {
		tr.Close()
		udp.Close()
		msg := err.Error()
		if strings.Contains(msg, "x509") || strings.Contains(msg, "certificate") {
			return nil, fmt.Errorf("client: connect to Sense at %s over QUIC: the server's certificate is not trusted: %w "+
				"(pin it with Options.ServerFingerprint, sense produce/consume --server-fingerprint, taking the SHA-256 from sense serve's banner; "+
				"or give its CA in Options.TLSConfig)", c.opts.Addr, err)
		}
		return nil, fmt.Errorf("client: connect to Sense at %s over QUIC (UDP; is listeners.quic on?): %w", c.opts.Addr, err)
	}
	go func() {
		<-qc.Context().Done()
		tr.Close()
		udp.Close()
	}()
	c.qc = qc
	return qc, nil
}

// dialStream opens a stream of the client's QUIC connection.
func (c *Client) dialStream(ctx context.Context) (net.Conn, error) {
	for attempt := 0; ; attempt++ {
		qc, err := c.quicConn(ctx)
		if err != nil {
			return nil, err
		}
		st, err := qc.OpenStreamSync(ctx)
		if err == nil {
			return quicwire.NewStreamConn(qc, st), nil
		}
		// A connection that ended (idle timeout, server restart) is
		// replaced once.
		if qc.Context().Err() == nil || attempt > 0 || ctx.Err() != nil {
			return nil, fmt.Errorf("client: open a QUIC stream to Sense at %s: %w", c.opts.Addr, err)
		}
	}
}

// dial opens a connection (over QUIC, a stream) and performs the
// handshake.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	var nc net.Conn
	var err error
	if c.opts.Transport == TransportQUIC {
		if nc, err = c.dialStream(ctx); err != nil {
			return nil, err
		}
	} else {
		d := net.Dialer{}
		if nc, err = d.DialContext(ctx, "tcp", c.opts.Addr); err != nil {
			return nil, fmt.Errorf("client: connect to Sense at %s: %w", c.opts.Addr, err)
		}
		if c.tlsConf != nil {
			if nc, err = c.tlsHandshake(ctx, nc); err != nil {
				return nil, err
			}
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	corr := c.nextCorr()
	rd := wire.NewReader(nc)
	hello, err := handshake(nc, rd, corr, c.opts.ClientID)
	if err == nil {
		err = authenticate(nc, rd, c.nextCorr(), &c.opts)
	}
	if !stop() || err != nil {
		nc.Close()
		if err == nil || ctx.Err() != nil {
			err = ctx.Err()
		} else if c.tlsConf != nil && clientCertRefused(err) {
			err = clientCertError(err)
		}
		return nil, fmt.Errorf("client: handshake with Sense at %s: %w", c.opts.Addr, err)
	}
	nc.SetDeadline(time.Time{})
	rd.SetMaxFrame(int(hello.MaxFrameBytes))
	cn := &conn{cl: c, nc: nc, addr: c.opts.Addr, hello: hello, pending: map[uint32]handler{}, done: make(chan struct{})}
	go cn.readLoop(rd)
	return cn, nil
}

// tlsHandshake runs a TLS handshake on nc, the TCP connection to the
// native listener; its errors say what to change.
func (c *Client) tlsHandshake(ctx context.Context, nc net.Conn) (net.Conn, error) {
	tc := tls.Client(nc, c.tlsConf)
	err := tc.HandshakeContext(ctx)
	if err == nil {
		return tc, nil
	}
	nc.Close()
	var rh tls.RecordHeaderError
	var cv *tls.CertificateVerificationError
	var fp *quicwire.FingerprintError
	switch {
	case errors.As(err, &rh):
		return nil, fmt.Errorf("client: TLS handshake with Sense at %s: the server does not speak TLS there (turn on tls.native.enabled, or connect without TLS): %w", c.opts.Addr, err)
	case errors.As(err, &cv), errors.As(err, &fp):
		return nil, fmt.Errorf("client: TLS handshake with Sense at %s: the server's certificate is not trusted: %w "+
			"(give its CA in Options.TLSConfig.RootCAs, sense ... --ca-file; or pin it with Options.ServerFingerprint)", c.opts.Addr, err)
	case clientCertRefused(err):
		return nil, fmt.Errorf("client: TLS handshake with Sense at %s: %w", c.opts.Addr, clientCertError(err))
	}
	return nil, fmt.Errorf("client: TLS handshake with Sense at %s: %w", c.opts.Addr, err)
}

// clientCertRefused reports whether err is the server's TLS alert that it
// wants a client certificate or refuses the one given. Under TLS 1.3 it
// arrives with the first read after the handshake.
func clientCertRefused(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "tls: certificate required") || strings.Contains(msg, "tls: bad certificate") ||
		strings.Contains(msg, "tls: unknown certificate authority") || strings.Contains(msg, "tls: expired certificate")
}

func clientCertError(err error) error {
	return fmt.Errorf("the server refused this client's certificate, or wants one: %w "+
		"(give a client certificate signed by a CA of the server's tls.client_ca_file: Options.TLSConfig.Certificates, sense ... --cert-file and --key-file)", err)
}

func handshake(nc net.Conn, rd *wire.Reader, corr uint32, clientID string) (wire.HelloOK, error) {
	b := wire.AppendHello(nil, corr, wire.Hello{MinVersion: wire.MinVersion, MaxVersion: wire.MaxVersion, ClientID: clientID})
	if _, err := nc.Write(b); err != nil {
		return wire.HelloOK{}, err
	}
	f, err := rd.Next()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			err = fmt.Errorf("the server closed the connection during the handshake (is this a Sense native listener? If it speaks TLS, tls.native.enabled, connect with TLS: Options.TLS, --tls): %w", err)
		}
		return wire.HelloOK{}, err
	}
	switch {
	case f.Type == wire.TypeError:
		e, err := wire.DecodeError(f.Payload)
		if err != nil {
			return wire.HelloOK{}, err
		}
		return wire.HelloOK{}, e
	case f.Type != wire.TypeHelloOK:
		return wire.HelloOK{}, fmt.Errorf("%w: %s frame in answer to HELLO", ErrProtocol, f.Type)
	case f.Corr != corr:
		return wire.HelloOK{}, fmt.Errorf("%w: HELLO_OK with correlation id %d, want %d", ErrProtocol, f.Corr, corr)
	}
	return wire.DecodeHelloOK(f.Payload)
}

// authenticate runs an AUTHENTICATE exchange when the options give
// credentials (a token, or a user and password).
func authenticate(nc net.Conn, rd *wire.Reader, corr uint32, o *Options) error {
	var mech string
	var first []byte
	var sc *security.ScramClient
	switch {
	case o.Token != "":
		mech, first = security.Token, []byte(o.Token)
	case o.User == "":
		return nil
	case o.Mechanism == security.Plain:
		mech, first = security.Plain, []byte("\x00"+o.User+"\x00"+o.Password)
	default:
		var err error
		if sc, err = security.NewScramClient(o.Mechanism, o.User, o.Password); err != nil {
			return err
		}
		mech, first = o.Mechanism, sc.First()
	}
	step := func(data []byte) (wire.AuthenticateResult, error) {
		if _, err := nc.Write(wire.AppendAuthenticate(nil, corr, wire.Authenticate{Mechanism: mech, Data: data})); err != nil {
			return wire.AuthenticateResult{}, err
		}
		f, err := rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("the server closed the connection during authentication: %w", err)
			}
			return wire.AuthenticateResult{}, err
		}
		switch {
		case f.Type == wire.TypeError:
			e, err := wire.DecodeError(f.Payload)
			if err != nil {
				return wire.AuthenticateResult{}, err
			}
			return wire.AuthenticateResult{}, e
		case f.Type != wire.TypeAuthenticateResult || f.Corr != corr:
			return wire.AuthenticateResult{}, fmt.Errorf("%w: %s frame (correlation id %d) in answer to AUTHENTICATE", ErrProtocol, f.Type, f.Corr)
		}
		return wire.DecodeAuthenticateResult(f.Payload)
	}
	res, err := step(first)
	if err != nil {
		return err
	}
	if sc == nil {
		if !res.Done {
			return fmt.Errorf("%w: %s authentication not done after one step", ErrProtocol, mech)
		}
		return nil
	}
	if res.Done {
		return fmt.Errorf("%w: SCRAM authentication done after one step", ErrProtocol)
	}
	final, err := sc.Final(res.Data)
	if err != nil {
		return err
	}
	if res, err = step(final); err != nil {
		return err
	}
	if !res.Done {
		return fmt.Errorf("%w: SCRAM authentication not done after two steps", ErrProtocol)
	}
	return sc.Verify(res.Data)
}

// handler receives the frames of one correlation id.
type handler interface {
	// handle is called on the connection's reader goroutine; f.Payload is
	// valid only during the call. It returns true when no more frames are
	// expected, which unregisters the handler.
	handle(f wire.Frame) bool
	// closed is called once when the connection ends while the handler is
	// registered.
	closed(err error)
}

// conn is one TCP connection with its reader goroutine.
type conn struct {
	cl    *Client
	nc    net.Conn
	addr  string
	hello wire.HelloOK

	wmu sync.Mutex // serializes writes

	mu      sync.Mutex
	pending map[uint32]handler
	reason  error // from an ERROR frame with correlation id 0
	err     error // why the connection ended
	done    chan struct{}
}

func (cn *conn) isDone() bool {
	select {
	case <-cn.done:
		return true
	default:
		return false
	}
}

// error returns why the connection ended (nil while it is live).
func (cn *conn) error() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

// register assigns h a fresh correlation id.
func (cn *conn) register(h handler) (uint32, error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.err != nil {
		return 0, cn.err
	}
	for {
		corr := cn.cl.nextCorr()
		if _, used := cn.pending[corr]; !used {
			cn.pending[corr] = h
			return corr, nil
		}
	}
}

func (cn *conn) unregister(corr uint32) {
	cn.mu.Lock()
	delete(cn.pending, corr)
	cn.mu.Unlock()
}

// write sends whole frames. A write error ends the connection.
func (cn *conn) write(b []byte) error {
	cn.wmu.Lock()
	_, err := cn.nc.Write(b)
	cn.wmu.Unlock()
	if err != nil {
		cn.fail(err)
		return cn.error()
	}
	return nil
}

// fail ends the connection (once) and tells every registered handler.
func (cn *conn) fail(cause error) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return
	}
	if cn.reason != nil && !errors.Is(cause, ErrClosed) {
		cause = cn.reason
	}
	if errors.Is(cause, ErrClosed) {
		cn.err = ErrClosed
	} else {
		cn.err = &ConnError{Addr: cn.addr, Err: cause}
	}
	hs := cn.pending
	cn.pending = nil
	err := cn.err
	close(cn.done)
	cn.mu.Unlock()
	cn.nc.Close()
	for _, h := range hs {
		h.closed(err)
	}
}

func (cn *conn) readLoop(rd *wire.Reader) {
	for {
		f, err := rd.Next()
		if err != nil {
			cn.fail(err)
			return
		}
		if cut := cn.cl.cutAnswer.Load(); cut != nil && (*cut)(f) {
			cn.fail(errCut)
			return
		}
		if !f.Type.FromServer() {
			cn.fail(fmt.Errorf("%w: received a client frame type %s", ErrProtocol, f.Type))
			return
		}
		if f.Corr == 0 {
			// The server is about to close the connection; keep its
			// reason for the error the handlers will see.
			if f.Type == wire.TypeError {
				if e, err := wire.DecodeError(f.Payload); err == nil {
					cn.mu.Lock()
					cn.reason = e
					cn.mu.Unlock()
				}
			}
			continue
		}
		cn.mu.Lock()
		h := cn.pending[f.Corr]
		cn.mu.Unlock()
		if h == nil {
			continue // an answer nobody waits for any more
		}
		if h.handle(f) {
			cn.mu.Lock()
			if cn.pending[f.Corr] == h {
				delete(cn.pending, f.Corr)
			}
			cn.mu.Unlock()
		}
	}
}

// callHandler waits for the single answer to a request.
type callHandler struct {
	ch chan callResult
}

type callResult struct {
	typ     wire.Type
	payload []byte
	err     error
}

func (h *callHandler) handle(f wire.Frame) bool {
	select {
	case h.ch <- callResult{typ: f.Type, payload: append([]byte(nil), f.Payload...)}:
	default:
	}
	return true
}

func (h *callHandler) closed(err error) {
	select {
	case h.ch <- callResult{err: err}:
	default:
	}
}

// roundTrip sends the request built by build and returns the payload of
// the answer of type want. An ERROR answer is returned as a *result.Error.
func (cn *conn) roundTrip(ctx context.Context, want wire.Type, build func(dst []byte, corr uint32) []byte) ([]byte, error) {
	h := &callHandler{ch: make(chan callResult, 1)}
	corr, err := cn.register(h)
	if err != nil {
		return nil, err
	}
	if err := cn.write(build(nil, corr)); err != nil {
		cn.unregister(corr)
		return nil, err
	}
	select {
	case r := <-h.ch:
		if r.err != nil {
			return nil, r.err
		}
		switch r.typ {
		case want:
			return r.payload, nil
		case wire.TypeError:
			e, err := wire.DecodeError(r.payload)
			if err != nil {
				cn.fail(err)
				return nil, err
			}
			return nil, e
		}
		err := fmt.Errorf("%w: %s in answer to a request expecting %s", ErrProtocol, r.typ, want)
		cn.fail(err)
		return nil, err
	case <-ctx.Done():
		cn.unregister(corr)
		return nil, ctx.Err()
	}
}

// Admin runs an administrative operation (the ADMIN frame; see package
// admin for the operations). A refusal, whether the server answers with an
// ERROR frame or with a refused result, is returned as an *AdminError that
// wraps a *result.Error carrying the server's code (errors.Is(err,
// result.ErrUnknownPipeline) holds for an unknown pipeline), together with
// the response.
func (c *Client) Admin(ctx context.Context, req admin.Request) (admin.Response, error) {
	if c.h != nil {
		return c.h.admin(ctx, req)
	}
	body, err := admin.Encode(req)
	if err != nil {
		return admin.Response{}, err
	}
	cn, err := c.conn(ctx)
	if err != nil {
		return admin.Response{}, err
	}
	out, err := cn.roundTrip(ctx, wire.TypeAdminResult, func(dst []byte, corr uint32) []byte {
		return wire.AppendAdmin(dst, corr, body)
	})
	if err != nil {
		var we *result.Error
		if errors.As(err, &we) {
			return admin.Response{}, &AdminError{Op: req.Op(), Message: we.Error(), Err: we}
		}
		return admin.Response{}, fmt.Errorf("client: admin %s: %w", req.Op(), err)
	}
	return adminAnswer(req, out)
}

// adminAnswer decodes an admin answer, turning a refusal into an
// *AdminError.
func adminAnswer(req admin.Request, out []byte) (admin.Response, error) {
	resp, err := admin.DecodeResponse(out)
	if err != nil {
		var re *result.Error
		if errors.As(err, &re) {
			return resp, &AdminError{Op: req.Op(), Message: re.Message, Err: re}
		}
		return resp, fmt.Errorf("client: admin %s: %w", req.Op(), err)
	}
	return resp, nil
}

// Registry returns the server's jurisdiction registry (admin.GetRegistry), to turn codes and groups into masks and back. The first
// successful answer is cached for the life of the Client.
func (c *Client) Registry(ctx context.Context) (*jurisdiction.Registry, error) {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	if c.reg != nil {
		return c.reg, nil
	}
	resp, err := c.Admin(ctx, admin.GetRegistry{})
	if err != nil {
		return nil, err
	}
	if resp.Registry == nil {
		return nil, fmt.Errorf("client: admin registry: the answer holds no registry")
	}
	reg, err := jurisdiction.New(resp.Registry.Codes, resp.Registry.Groups)
	if err != nil {
		return nil, fmt.Errorf("client: the server's jurisdiction registry: %w", err)
	}
	c.reg = reg
	return reg, nil
}

// Describe returns a pipeline's description and partition layout
// (admin.DescribePipeline).
func (c *Client) Describe(ctx context.Context, pipeline string) (admin.PipelineInfo, []admin.PartitionInfo, error) {
	resp, err := c.Admin(ctx, admin.DescribePipeline{Pipeline: pipeline})
	if err != nil {
		return admin.PipelineInfo{}, nil, err
	}
	if len(resp.Pipelines) != 1 {
		return admin.PipelineInfo{}, nil, fmt.Errorf("client: describe %s: the answer holds %d pipelines", pipeline, len(resp.Pipelines))
	}
	return resp.Pipelines[0], resp.Layout, nil
}

// Ping sends PING and returns the round-trip time. Over HTTP it times
// GET /healthz.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	if c.h != nil {
		return c.h.ping(ctx)
	}
	cn, err := c.conn(ctx)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	_, err = cn.roundTrip(ctx, wire.TypePong, func(dst []byte, corr uint32) []byte {
		return wire.AppendPing(dst, corr, nil)
	})
	return time.Since(t0), err
}

// backoff returns the wait before retry number attempt (1 for the first):
// base doubling each time, capped at maxBackoff.
func backoff(base time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

const maxBackoff = time.Second

var discardLogger = slog.New(slog.DiscardHandler)

// errCut is the cause of a connection cut by a test (cutAnswer).
var errCut = errors.New("cut by the test")
