// Package quicwire is the mapping of Sense's native protocol
// (docs/protocol.md) onto QUIC (docs/quic.md), shared by the server
// (package quicedge) and the Go client (package client). It holds what
// both ends must agree on and nothing of either: no listener, no engine.
//
//   - TLS 1.3 with ALPN "sense/1" (ALPN). A client trusts a server either
//     through the usual certificate verification or by pinning the SHA-256
//     of its leaf certificate (Fingerprint, ParseFingerprint, ClientTLS,
//     FingerprintError), which is how a dev server's self-signed
//     certificate is trusted.
//   - Every bidirectional stream the client opens is one native-protocol
//     connection, HELLO handshake and all. StreamConn presents a stream as
//     a net.Conn, so the same native code serves and speaks it as over TCP.
//   - Application error codes: StreamCodeClosed, StreamCodeRefused and
//     StreamCodeAborted on RESET_STREAM and STOP_SENDING; ConnCodeClosed on
//     CONNECTION_CLOSE.
//   - Both ends close a connection idle for DefaultIdleTimeout and send
//     keep-alives at a third of it.
//   - ListenUDP opens the UDP socket under a QUIC transport with its
//     buffers raised to UDPBufferBytes.
package quicwire
