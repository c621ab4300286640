// Package quicedge carries Sense's native protocol (docs/protocol.md) over
// QUIC (docs/quic.md): TLS 1.3 with ALPN "sense/1", and every
// bidirectional stream a client opens is one native-protocol connection,
// HELLO handshake and all. A producer flow per stream means a lost packet
// stalls only the stream it belongs to. This is the server side: the
// listener and its certificate. What the server and the client share (the
// ALPN, the error codes, the stream as a net.Conn, fingerprint pinning) is
// package quicwire.
//
// The package does not serve the protocol itself. Listen returns a
// net.Listener whose Accept yields one net.Conn per stream; the native
// server (package native) serves it exactly as it serves a TCP
// connection, so acknowledgements, idempotence and error codes are the
// same code.
package quicedge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/sensehq/sense/edge/native/wire/quicwire"
)

// DefaultMaxStreams is the default of Options.MaxStreams.
const DefaultMaxStreams = 1024

// Options configure a Listener.
type Options struct {
	// CertFile and KeyFile are a PEM certificate (chain) and its private
	// key. Both empty: a self-signed ECDSA certificate for 127.0.0.1, ::1,
	// localhost and the listen host is generated (dev mode); its SHA-256
	// fingerprint is Listener.Fingerprint.
	CertFile, KeyFile string
	// GetCertificate, when set with CertFile and KeyFile, serves each
	// handshake instead of the files loaded at start, so that a
	// certificate reloaded on SIGHUP reaches new connections.
	// Listener.Fingerprint stays the one of the files at start.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ClientCAs, when set, asks clients for a certificate signed by one of
	// the pool it returns (read at each handshake, so that a reloaded CA
	// file applies to new connections), as ClientAuth says (a
	// tls.ClientAuthType: tls.VerifyClientCertIfGiven or
	// tls.RequireAndVerifyClientCert). A stream's tls.ConnectionState
	// (quicwire.StreamConn.ConnectionState) then shows the verified
	// certificate.
	ClientCAs  func() *x509.CertPool
	ClientAuth tls.ClientAuthType
	// DevCertDir, when set, keeps the self-signed certificate there
	// (dev-quic-cert.pem, dev-quic-key.pem) so its fingerprint survives
	// restarts: clients pin it once. A kept certificate is replaced when
	// it expires within 30 days or does not cover the listen host.
	DevCertDir string
	// MaxStreams bounds the concurrent streams (native connections) one
	// QUIC connection may open. Default 1024.
	MaxStreams int
	// IdleTimeout closes a connection that received nothing for this long
	// (clients send keep-alives). Default quicwire.DefaultIdleTimeout.
	IdleTimeout time.Duration
	Logger      *slog.Logger
}

// Errors.
var (
	// ErrClosed is returned by Accept after Close.
	ErrClosed = errors.New("quicedge: listener closed")
)

// Listener accepts QUIC connections and hands out their bidirectional
// streams as net.Conns. Close stops accepting connections and streams;
// established streams go on until CloseConnections, so a server can let
// requests in flight finish first.
type Listener struct {
	log         *slog.Logger
	udp         *net.UDPConn
	tr          *quic.Transport
	ql          *quic.Listener
	fingerprint string
	selfSigned  bool

	streams chan net.Conn
	quit    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup // accept loops

	mu    sync.Mutex
	conns map[*quic.Conn]struct{}
	done  bool
}

// Listen opens a UDP socket on addr (host:port), raises its buffers, and
// listens for QUIC connections on it.
func Listen(addr string, opts Options) (*Listener, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = quicwire.DefaultIdleTimeout
	}
	cert, selfSigned, err := loadCertificate(addr, opts.CertFile, opts.KeyFile, opts.DevCertDir)
	if err != nil {
		return nil, err
	}
	udp, err := quicwire.ListenUDP(addr, opts.Logger)
	if err != nil {
		return nil, err
	}
	tr := &quic.Transport{Conn: udp}
	tlsConf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{quicwire.ALPN},
		MinVersion:   tls.VersionTLS13,
	}
	if opts.GetCertificate != nil && !selfSigned {
		tlsConf.Certificates, tlsConf.GetCertificate = nil, opts.GetCertificate
	}
	if opts.ClientCAs != nil {
		base := tlsConf.Clone()
		tlsConf.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := base.Clone()
			c.ClientCAs, c.ClientAuth = opts.ClientCAs(), opts.ClientAuth
			return c, nil
		}
	}
	ql, err := tr.Listen(tlsConf, &quic.Config{
		MaxIncomingStreams:    int64(opts.MaxStreams),
		MaxIncomingUniStreams: -1,
		MaxIdleTimeout:        opts.IdleTimeout,
		KeepAlivePeriod:       opts.IdleTimeout / 3,
	})
	if err != nil {
		tr.Close()
		udp.Close()
		return nil, fmt.Errorf("quicedge: listen on %s: %w", addr, err)
	}
	l := &Listener{log: opts.Logger, udp: udp, tr: tr, ql: ql, fingerprint: quicwire.Fingerprint(cert.Certificate[0]), selfSigned: selfSigned,
		streams: make(chan net.Conn), quit: make(chan struct{}), conns: map[*quic.Conn]struct{}{}}
	if selfSigned {
		l.log.Info("QUIC listener uses a generated self-signed certificate; clients pin its fingerprint",
			"addr", udp.LocalAddr().String(), "sha256", l.fingerprint)
	} else {
		l.log.Info("QUIC listener certificate loaded", "addr", udp.LocalAddr().String(), "cert_file", opts.CertFile, "sha256", l.fingerprint)
	}
	l.wg.Add(1)
	go l.acceptConns()
	return l, nil
}

// Fingerprint is the SHA-256 of the listener's leaf certificate (DER), in
// lower-case hex: what client.Options.ServerFingerprint pins.
func (l *Listener) Fingerprint() string { return l.fingerprint }

// SelfSigned reports whether the certificate was generated at start.
func (l *Listener) SelfSigned() bool { return l.selfSigned }

// Addr is the UDP address listened on.
func (l *Listener) Addr() net.Addr { return l.udp.LocalAddr() }

// Accept returns the next stream opened by any client, as a net.Conn.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.streams:
		return c, nil
	case <-l.quit:
		return nil, ErrClosed
	}
}

// Close stops accepting connections and streams. Streams already accepted
// keep working until CloseConnections.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.quit)
		l.ql.Close()
	})
	return nil
}

// CloseConnections closes the listener, every QUIC connection (their
// streams end) and the UDP socket.
func (l *Listener) CloseConnections() error {
	l.Close()
	l.mu.Lock()
	l.done = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for qc := range conns {
		qc.CloseWithError(quicwire.ConnCodeClosed, "server shutting down")
	}
	l.wg.Wait()
	err := l.tr.Close()
	l.udp.Close()
	return err
}

func (l *Listener) acceptConns() {
	defer l.wg.Done()
	for {
		qc, err := l.ql.Accept(context.Background())
		if err != nil {
			select {
			case <-l.quit:
			default:
				l.log.Error("QUIC accept failed; no new QUIC connections", "err", err)
			}
			return
		}
		l.mu.Lock()
		if l.done {
			l.mu.Unlock()
			qc.CloseWithError(quicwire.ConnCodeClosed, "server shutting down")
			return
		}
		l.conns[qc] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.acceptStreams(qc)
	}
}

// acceptStreams hands the streams of qc to Accept until qc ends or the
// listener closes.
func (l *Listener) acceptStreams(qc *quic.Conn) {
	defer l.wg.Done()
	defer func() {
		// A connection still open when the listener closes stays known,
		// for CloseConnections.
		if qc.Context().Err() != nil {
			l.mu.Lock()
			delete(l.conns, qc)
			l.mu.Unlock()
		}
	}()
	ctx, cancel := context.WithCancel(qc.Context())
	defer cancel()
	go func() {
		select {
		case <-l.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		st, err := qc.AcceptStream(ctx)
		if err != nil {
			return
		}
		select {
		case l.streams <- quicwire.NewStreamConn(qc, st):
		case <-ctx.Done():
			st.CancelRead(quicwire.StreamCodeRefused)
			st.CancelWrite(quicwire.StreamCodeRefused)
			return
		}
	}
}
