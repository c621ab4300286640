package quicwire

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

// ALPN is the application protocol negotiated in the TLS handshake.
const ALPN = "sense/1"

// DefaultIdleTimeout closes a QUIC connection that received nothing for
// this long; both ends send keep-alives at a third of it.
const DefaultIdleTimeout = 60 * time.Second

// Stream error codes (RESET_STREAM, STOP_SENDING).
const (
	// StreamCodeClosed: the endpoint closed its half without reading the
	// rest (the native protocol's "connection closed").
	StreamCodeClosed quic.StreamErrorCode = 0
	// StreamCodeRefused: the stream arrived while the server was stopping.
	StreamCodeRefused quic.StreamErrorCode = 1
	// StreamCodeAborted: the endpoint abandoned the stream mid-frame.
	StreamCodeAborted quic.StreamErrorCode = 2
)

// Connection error codes (CONNECTION_CLOSE).
const (
	// ConnCodeClosed: the endpoint closed the connection on purpose (the
	// client closed, the server is shutting down).
	ConnCodeClosed quic.ApplicationErrorCode = 0
)

// StreamConn is a QUIC stream seen as a net.Conn, with its connection's
// addresses.
type StreamConn struct {
	*quic.Stream
	qc *quic.Conn
}

var _ net.Conn = (*StreamConn)(nil)

// NewStreamConn wraps st, a stream of qc.
func NewStreamConn(qc *quic.Conn, st *quic.Stream) *StreamConn {
	return &StreamConn{Stream: st, qc: qc}
}

// Conn is the QUIC connection the stream belongs to.
func (c *StreamConn) Conn() *quic.Conn { return c.qc }

// LocalAddr is the connection's local UDP address.
func (c *StreamConn) LocalAddr() net.Addr { return c.qc.LocalAddr() }

// RemoteAddr is the connection's remote UDP address.
func (c *StreamConn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// ConnectionState is the TLS state of the stream's connection: a verified
// client certificate, for one (tlsconf.PeerIdentity reads it).
func (c *StreamConn) ConnectionState() tls.ConnectionState { return c.qc.ConnectionState().TLS }

// CloseWrite sends FIN: the peer reads what was written, then EOF.
func (c *StreamConn) CloseWrite() error { return c.Stream.Close() }

// Close ends both directions: what was written is still delivered (FIN),
// and the peer is told to stop sending (STOP_SENDING). Like closing a TCP
// connection, it does not wait.
func (c *StreamConn) Close() error {
	c.Stream.CancelRead(StreamCodeClosed)
	return c.Stream.Close()
}

// Abort resets both directions at once: unsent bytes are dropped and the
// peer's reads and writes fail. Tests use it to cut a stream mid-request.
func (c *StreamConn) Abort() {
	c.Stream.CancelWrite(StreamCodeAborted)
	c.Stream.CancelRead(StreamCodeAborted)
}
