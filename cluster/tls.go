package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"

	"github.com/sensehq/sense/internal/tlsconf"
)

// alpn names the transport's protocol in the TLS handshake, so that a
// node never mistakes another TLS service for a peer.
const alpn = "sense-cluster/1"

// clientTLS is the configuration of a connection dialed to peer id: the
// server must present a certificate of the cluster's CA that names id.
func (t *Transport) clientTLS(id string) *tls.Config {
	src := t.cfg.TLS
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		NextProtos:           []string{alpn},
		GetClientCertificate: src.GetClientCertificate,
		// The chain and the name are checked by VerifyConnection, against
		// the node id rather than a host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := tlsconf.VerifyNode(cs, src.CAs(), x509.ExtKeyUsageServerAuth, []string{id})
			return err
		},
	}
}

// serverTLS is the configuration of accepted connections: the client must
// present a certificate of the cluster's CA that names a configured peer;
// which one it must name is known from its hello (checkPeerCert).
func (t *Transport) serverTLS() *tls.Config {
	src := t.cfg.TLS
	ids := t.peerIDs()
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		NextProtos:     []string{alpn},
		GetCertificate: src.GetCertificate,
		ClientAuth:     tls.RequireAnyClientCert, // verified below, against the current CA pool
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := tlsconf.VerifyNode(cs, src.CAs(), x509.ExtKeyUsageClientAuth, ids)
			return err
		},
	}
}

// handshake runs the TLS handshake of an accepted (server) or dialed
// (client) connection within the time a dialer has to connect and write
// its hello, or until Close.
func (t *Transport) handshake(tc *tls.Conn) error {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout+t.cfg.WriteTimeout)
	defer cancel()
	return tc.HandshakeContext(ctx)
}

// checkPeerCert checks that the certificate of an accepted TLS connection
// names the node its hello says it is from.
func checkPeerCert(c net.Conn, from string) error {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) == 0 || !tlsconf.NamesNode(cs.PeerCertificates[0], from) {
		var names []string
		if len(cs.PeerCertificates) > 0 {
			names = tlsconf.NodeIDs(cs.PeerCertificates[0])
		}
		return fmt.Errorf("%w: its hello says it is node %q, but its TLS certificate names %q; a node must present its own certificate (URI SAN %s%s)",
			tlsconf.ErrWrongNode, from, names, tlsconf.NodeURIPrefix, from)
	}
	return nil
}
