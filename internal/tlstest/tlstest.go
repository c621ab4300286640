// Package tlstest makes throwaway certificate authorities and the
// certificates they sign, for tests of TLS and mutual TLS: ECDSA P-256
// keys, written as PEM files in a directory the caller owns (usually
// t.TempDir()), valid from an hour ago for a day.
//
//	ca := tlstest.NewCA(t, dir, "sense test CA")
//	srv := ca.Server(t, "server")               // SANs 127.0.0.1, ::1, localhost
//	cli := ca.Client(t, "alice", tlstest.URI("sense://user/alice"))
//	node := ca.Node(t, "n1")                    // URI SAN sense://node/n1, both usages
//	// srv.CertFile, srv.KeyFile, ca.CertFile are paths; srv.TLS() a tls.Certificate.
//
// Every certificate is a leaf signed directly by its CA; the files hold
// the leaf alone (cert) and the PKCS #8 key (key).
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// serial numbers certificates across every CA of the test binary.
var serial atomic.Int64

// CA is a certificate authority that signs test certificates.
type CA struct {
	// Cert is the CA's certificate; CertFile is it in PEM.
	Cert     *x509.Certificate
	CertFile string
	key      *ecdsa.PrivateKey
	dir      string
}

// Cert is a leaf certificate and its key, in memory and as PEM files.
type Cert struct {
	Leaf     *x509.Certificate
	Key      *ecdsa.PrivateKey
	CertFile string // PEM CERTIFICATE: the leaf
	KeyFile  string // PEM PRIVATE KEY: PKCS #8
	CertPEM  []byte
	KeyPEM   []byte
}

// TLS returns the certificate as crypto/tls takes it.
func (c *Cert) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.Leaf.Raw}, PrivateKey: c.Key, Leaf: c.Leaf}
}

// Option changes a certificate's template before it is signed.
type Option func(*x509.Certificate)

// URI adds a URI SAN, such as "sense://node/n1".
func URI(s string) Option {
	return func(c *x509.Certificate) {
		u, err := url.Parse(s)
		if err != nil {
			panic("tlstest: URI " + s + ": " + err.Error())
		}
		c.URIs = append(c.URIs, u)
	}
}

// DNS adds DNS SANs.
func DNS(names ...string) Option {
	return func(c *x509.Certificate) { c.DNSNames = append(c.DNSNames, names...) }
}

// IP adds IP SANs.
func IP(ips ...net.IP) Option {
	return func(c *x509.Certificate) { c.IPAddresses = append(c.IPAddresses, ips...) }
}

// Email adds an email SAN.
func Email(addr string) Option {
	return func(c *x509.Certificate) { c.EmailAddresses = append(c.EmailAddresses, addr) }
}

// Organization sets the subject's O.
func Organization(o string) Option {
	return func(c *x509.Certificate) { c.Subject.Organization = []string{o} }
}

// Expired makes a certificate that expired an hour ago.
func Expired() Option {
	return func(c *x509.Certificate) {
		c.NotBefore = time.Now().Add(-48 * time.Hour)
		c.NotAfter = time.Now().Add(-time.Hour)
	}
}

// Usage sets the extended key usages (default: as the constructor says).
func Usage(u ...x509.ExtKeyUsage) Option {
	return func(c *x509.Certificate) { c.ExtKeyUsage = u }
}

// NewCA makes a CA named cn and writes its certificate to dir/<cn>.crt
// (characters that are unsafe in a file name written as '_').
func NewCA(t testing.TB, dir, cn string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("tlstest: make CA %s: %v", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Cert: cert, key: key, dir: dir, CertFile: filepath.Join(dir, fileName(cn)+".crt")}
	writeFile(t, ca.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return ca
}

// Pool returns a pool holding the CA's certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Server makes a server certificate named cn for 127.0.0.1, ::1 and
// localhost (plus opts), with the server-auth usage.
func (ca *CA) Server(t testing.TB, cn string, opts ...Option) *Cert {
	t.Helper()
	base := []Option{IP(net.IPv4(127, 0, 0, 1), net.IPv6loopback), DNS("localhost"), Usage(x509.ExtKeyUsageServerAuth)}
	return ca.Issue(t, cn, append(base, opts...)...)
}

// Client makes a client certificate whose subject CN is cn, with the
// client-auth usage.
func (ca *CA) Client(t testing.TB, cn string, opts ...Option) *Cert {
	t.Helper()
	return ca.Issue(t, cn, append([]Option{Usage(x509.ExtKeyUsageClientAuth)}, opts...)...)
}

// Node makes a cluster node's certificate: CN and URI SAN
// sense://node/<id>, the loopback SANs, and both usages, since a node is
// the server of the connections it accepts and the client of those it
// dials.
func (ca *CA) Node(t testing.TB, id string, opts ...Option) *Cert {
	t.Helper()
	base := []Option{URI("sense://node/" + id), IP(net.IPv4(127, 0, 0, 1), net.IPv6loopback), DNS("localhost"),
		Usage(x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)}
	return ca.Issue(t, id, append(base, opts...)...)
}

// Issue makes a certificate with subject CN cn and opts, signed by ca, and
// writes it to dir/<cn>-<serial>.crt and .key.
func (ca *CA) Issue(t testing.TB, cn string, opts ...Option) *Cert {
	t.Helper()
	key := newKey(t)
	n := serial.Add(1)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(n),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	for _, o := range opts {
		o(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("tlstest: issue %s: %v", cn, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(ca.dir, fileName(cn)+"-"+big.NewInt(n).String())
	c := &Cert{Leaf: leaf, Key: key, CertFile: base + ".crt", KeyFile: base + ".key",
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}
	writeFile(t, c.CertFile, c.CertPEM)
	writeFile(t, c.KeyFile, c.KeyPEM)
	return c
}

// WriteTo writes the certificate and key to certFile and keyFile, each
// replaced atomically (write, then rename), as a certificate rotation
// would.
func (c *Cert) WriteTo(t testing.TB, certFile, keyFile string) {
	t.Helper()
	writeFile(t, certFile, c.CertPEM)
	writeFile(t, keyFile, c.KeyPEM)
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// fileName keeps the characters of s that are safe in a file name.
func fileName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}

// writeFile writes data to path through a temporary file and a rename, so
// a reader sees the old content or the new, never a mix.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
