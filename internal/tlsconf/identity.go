package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// Identity is what a verified client certificate says of its holder: the
// input an authenticator maps to a user (by subject, or by a SAN).
type Identity struct {
	// Subject is the certificate's subject; Subject.CommonName its CN.
	Subject pkix.Name
	// The certificate's subject alternative names.
	DNSNames       []string
	EmailAddresses []string
	URIs           []*url.URL
	IPAddresses    []net.IP
	// Certificate is the verified leaf itself.
	Certificate *x509.Certificate
}

// String returns the subject as an RFC 2253 distinguished name.
func (id Identity) String() string { return id.Subject.String() }

// stater is a connection that can report its TLS state: *tls.Conn and
// *Conn.
type stater interface {
	ConnectionState() tls.ConnectionState
}

// PeerIdentity returns the identity of c's client certificate when c is a
// TLS connection whose handshake is done and whose client presented a
// certificate the server verified (client_auth verify_if_given or
// require); false otherwise.
func PeerIdentity(c net.Conn) (Identity, bool) {
	s, ok := c.(stater)
	if !ok {
		return Identity{}, false
	}
	cs := s.ConnectionState()
	return IdentityOf(&cs)
}

// IdentityOf is PeerIdentity for a connection state, such as an
// http.Request's TLS field (nil for a plain request).
func IdentityOf(cs *tls.ConnectionState) (Identity, bool) {
	if cs == nil || !cs.HandshakeComplete || len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return Identity{}, false
	}
	leaf := cs.PeerCertificates[0]
	return Identity{
		Subject:        leaf.Subject,
		DNSNames:       leaf.DNSNames,
		EmailAddresses: leaf.EmailAddresses,
		URIs:           leaf.URIs,
		IPAddresses:    leaf.IPAddresses,
		Certificate:    leaf,
	}, true
}

// NodeURIPrefix starts the URI SAN that names a cluster node:
// sense://node/<id>.
const NodeURIPrefix = "sense://node/"

// NodeIDs returns the node ids cert names: the <id> of each URI SAN
// sense://node/<id>, and each DNS SAN (a DNS SAN names the node whose id
// it equals).
func NodeIDs(cert *x509.Certificate) []string {
	var ids []string
	for _, u := range cert.URIs {
		if id, ok := strings.CutPrefix(u.String(), NodeURIPrefix); ok && id != "" {
			ids = append(ids, id)
		}
	}
	return append(ids, cert.DNSNames...)
}

// NamesNode reports whether cert names node id (see NodeIDs).
func NamesNode(cert *x509.Certificate, id string) bool {
	return slices.Contains(NodeIDs(cert), id)
}

// ErrWrongNode is the error of a peer certificate that does not name the
// node it should.
var ErrWrongNode = errors.New("tlsconf: the certificate does not name the expected node")

// VerifyNode checks a cluster peer's certificate chain: the leaf must be
// signed by a CA in roots, be valid now, allow usage, and name one of the
// ids in want (see NamesNode). usage is x509.ExtKeyUsageServerAuth for the
// server a node dialed, x509.ExtKeyUsageClientAuth for the client a node
// accepted. It returns the ids of want that the certificate names.
func VerifyNode(cs tls.ConnectionState, roots *x509.CertPool, usage x509.ExtKeyUsage, want []string) ([]string, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, errors.New("tlsconf: the peer presented no certificate; give every node a certificate (cluster.tls.cert_file)")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, fmt.Errorf("tlsconf: the peer's certificate (subject %q) does not verify against cluster.tls.ca_file: %w", leaf.Subject.String(), err)
	}
	var named []string
	for _, id := range want {
		if NamesNode(leaf, id) {
			named = append(named, id)
		}
	}
	if len(named) == 0 {
		names := NodeIDs(leaf)
		if len(names) == 0 {
			names = []string{"none"}
		}
		return nil, fmt.Errorf("%w: the certificate (subject %q) names node(s) %s, want %s; issue the node a certificate with the URI SAN %s<id> of its node.id",
			ErrWrongNode, leaf.Subject.String(), strings.Join(names, ", "), strings.Join(want, " or "), NodeURIPrefix)
	}
	return named, nil
}
