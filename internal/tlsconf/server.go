package tlsconf

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHandshakeTimeout bounds a server-side handshake when
// ListenerOptions.HandshakeTimeout is zero.
const DefaultHandshakeTimeout = 10 * time.Second

// ServerOptions shape a listener's tls.Config.
type ServerOptions struct {
	// ClientAuth is tls.NoClientCert, tls.VerifyClientCertIfGiven or
	// tls.RequireAndVerifyClientCert; the last two need the Source's CA
	// pool, which verifies the client certificates.
	ClientAuth tls.ClientAuthType
	// NextProtos are the ALPN protocols offered, in preference order.
	NextProtos []string
	// MinVersion defaults to TLS 1.2.
	MinVersion uint16
}

// ServerConfig returns a listener's tls.Config. Each handshake takes the
// Source's current certificate and client CA pool, so a Reload applies to
// the next connection.
func (s *Source) ServerConfig(o ServerOptions) (*tls.Config, error) {
	if s.Certificate() == nil {
		return nil, fmt.Errorf("tlsconf: a listener needs a certificate; none in %+v", s.files)
	}
	if o.ClientAuth != tls.NoClientCert && s.CAs() == nil {
		return nil, errors.New("tlsconf: client certificates are verified against a CA file, and none is given")
	}
	if o.MinVersion == 0 {
		o.MinVersion = tls.VersionTLS12
	}
	base := &tls.Config{
		MinVersion:     o.MinVersion,
		NextProtos:     o.NextProtos,
		ClientAuth:     o.ClientAuth,
		GetCertificate: s.GetCertificate,
	}
	// The config of one loading of the files, made at its first handshake
	// and kept until the next Reload.
	type derived struct {
		m *material
		c *tls.Config
	}
	var cache atomic.Pointer[derived]
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := s.cur.Load()
		if d := cache.Load(); d != nil && d.m == m {
			return d.c, nil
		}
		c := base.Clone()
		c.GetConfigForClient = nil
		c.GetCertificate = nil
		c.Certificates = []tls.Certificate{*m.cert}
		c.ClientCAs = m.pool
		cache.Store(&derived{m, c})
		return c, nil
	}
	return base, nil
}

// ListenerOptions configure NewListener.
type ListenerOptions struct {
	// Name is the listener's name in log lines ("native", "kafka").
	Name string
	// HandshakeTimeout bounds each handshake; default
	// DefaultHandshakeTimeout. A client that has not finished its
	// handshake by then is disconnected.
	HandshakeTimeout time.Duration
	// Hint, when set, is added to the log line of a handshake that failed
	// because the client does not speak TLS: how that client should
	// connect ("connect with --tls").
	Hint string
	// Logger receives one line per failed handshake; default
	// slog.Default().
	Logger *slog.Logger
}

// NewListener returns a listener whose connections speak TLS with cfg.
// Accept returns at once, before the handshake: it runs on the
// connection's first Read or Write (in the goroutine that serves it), or
// on Handshake, within the handshake timeout. The connections are *Conn.
func NewListener(ln net.Listener, cfg *tls.Config, o ListenerOptions) net.Listener {
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Name == "" {
		o.Name = ln.Addr().String()
	}
	return &listener{Listener: ln, cfg: cfg, opts: o}
}

type listener struct {
	net.Listener
	cfg  *tls.Config
	opts ListenerOptions
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: tls.Server(c, l.cfg), opts: &l.opts}, nil
}

// Conn is a server-side TLS connection from NewListener. Its handshake
// runs once, on the first Read, Write or Handshake, bounded by the
// listener's handshake timeout; a failed handshake is logged and the
// connection closed.
type Conn struct {
	*tls.Conn
	opts *ListenerOptions
	once sync.Once
	err  error
}

// Handshake runs the handshake if it has not run, and returns its
// outcome.
func (c *Conn) Handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.HandshakeTimeout)
		defer cancel()
		if c.err = c.Conn.HandshakeContext(ctx); c.err != nil {
			if ctx.Err() != nil {
				c.err = fmt.Errorf("tlsconf: the client did not finish the TLS handshake within %v: %w", c.opts.HandshakeTimeout, c.err)
			}
			c.logFailure()
			c.Conn.Close()
		}
	})
	return c.err
}

// Read reads application data, after the handshake.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// Write writes application data, after the handshake.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// CloseWrite tells the client nothing more will be written (a TLS
// close_notify), once the handshake is done.
func (c *Conn) CloseWrite() error {
	if err := c.Handshake(); err != nil {
		return err
	}
	return c.Conn.CloseWrite()
}

// logFailure logs why the handshake failed and what to do about it. A
// client that closed before a byte of the handshake (a port probe, a load
// balancer's health check) is logged at debug level only.
func (c *Conn) logFailure() {
	log := c.opts.Logger
	err := c.err
	remote := c.RemoteAddr().String()
	level, hint := slog.LevelWarn, ""
	var rh tls.RecordHeaderError
	switch {
	case errors.As(err, &rh):
		hint = "the client does not speak TLS (its first bytes are not a TLS handshake); connect with TLS"
		if c.opts.Hint != "" {
			hint += " (" + c.opts.Hint + ")"
		}
		hint += ", or turn TLS off on this listener"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		hint = "the client was too slow or stopped mid-handshake; a client that waits for the server to speak first is not a TLS client"
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		level, hint = slog.LevelDebug, "the client closed the connection during the handshake; if it is a client of yours, its own log says why (often: it does not trust this server's certificate)"
	case strings.Contains(err.Error(), "client didn't provide a certificate"):
		hint = "this listener requires a client certificate (client_auth: require); give the client one signed by a CA in client_ca_file"
	case strings.Contains(err.Error(), "failed to verify certificate"):
		hint = "the client's certificate is not signed by a CA in client_ca_file, has expired, or is not for client authentication; issue it from one of those CAs, or add its CA to client_ca_file"
	case strings.Contains(err.Error(), "unknown certificate authority"), strings.Contains(err.Error(), "bad certificate"):
		hint = "the client refused this server's certificate; give the client the CA that signed it (e.g. --ca-file, ssl.ca.location)"
	}
	log.Log(context.Background(), level, "TLS handshake failed; connection closed", "listener", c.opts.Name, "remote", remote, "err", err.Error(), "hint", hint)
}
