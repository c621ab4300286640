// Package tlsconf turns certificate files into the TLS configurations of
// Sense's listeners and of its cluster transport, and says who is on the
// other end of a TLS connection.
//
//   - A Source holds a certificate, its key and optionally a pool of CA
//     certificates, read from PEM files. Reload reads the files again and
//     swaps them in atomically; a file that does not load leaves the
//     previous ones in place. Every tls.Config made from a Source reads it
//     at each handshake, so a reload reaches new connections at once and
//     leaves established ones alone.
//   - ServerConfig makes a listener's tls.Config, with mutual TLS when a
//     client CA pool is given; NewListener wraps a net.Listener so that
//     each connection's handshake runs in the connection's own goroutine,
//     bounded by a timeout, and a failed handshake is logged with what to
//     fix.
//   - PeerIdentity returns the subject and SANs of a connection's verified
//     client certificate: the hook an authenticator maps to a user.
//   - NamesNode says whether a certificate names a cluster node:
//     URI SAN sense://node/<id>, or a DNS SAN equal to the id.
//
// docs/security.md describes the settings built on this package.
package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Files names the PEM files of one TLS endpoint. CertFile and KeyFile go
// together: both or neither.
type Files struct {
	// CertFile holds the certificate chain, leaf first.
	CertFile string
	// KeyFile holds the leaf's private key (PKCS #8, PKCS #1 or EC).
	KeyFile string
	// CAFile holds the CA certificates that verify the other end: client
	// certificates for a listener, every peer for the cluster transport.
	CAFile string
}

// Source is a certificate and a CA pool read from Files, replaced as a
// whole by Reload. Its methods are safe for concurrent use.
type Source struct {
	files Files
	cur   atomic.Pointer[material]
}

// material is one loading of a Source's files.
type material struct {
	cert *tls.Certificate // nil without CertFile
	pool *x509.CertPool   // nil without CAFile
}

// Load reads f's files. The error names the file at fault and what is
// wrong with it.
func Load(f Files) (*Source, error) {
	m, err := load(f)
	if err != nil {
		return nil, err
	}
	s := &Source{files: f}
	s.cur.Store(m)
	return s, nil
}

// Reload reads the files again. On success new handshakes use what it
// read; on failure the previous certificate and pool stay in use and the
// error says which file is wrong and that the old one is still served.
func (s *Source) Reload() error {
	m, err := load(s.files)
	if err != nil {
		old := s.cur.Load()
		still := "the previous certificate stays in use"
		if old.cert != nil && old.cert.Leaf != nil {
			still += fmt.Sprintf(" (subject %q, expires %s)", old.cert.Leaf.Subject.String(), old.cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		return fmt.Errorf("%w; %s: fix the file and reload again", err, still)
	}
	s.cur.Store(m)
	return nil
}

// Files returns the files the Source reads.
func (s *Source) Files() Files { return s.files }

// Certificate returns the current certificate, nil without a CertFile.
func (s *Source) Certificate() *tls.Certificate { return s.cur.Load().cert }

// CAs returns the current CA pool, nil without a CAFile.
func (s *Source) CAs() *x509.CertPool { return s.cur.Load().pool }

// Fingerprint returns the SHA-256 of the current leaf certificate, in hex;
// "" without one.
func (s *Source) Fingerprint() string {
	c := s.Certificate()
	if c == nil || len(c.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(c.Certificate[0])
	return hex.EncodeToString(sum[:])
}

// GetCertificate is a tls.Config.GetCertificate that serves the current
// certificate.
func (s *Source) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.Certificate(); c != nil {
		return c, nil
	}
	return nil, errors.New("tlsconf: no certificate configured")
}

// GetClientCertificate is a tls.Config.GetClientCertificate that presents
// the current certificate (none without a CertFile).
func (s *Source) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := s.Certificate(); c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil
}

func load(f Files) (*material, error) {
	m := new(material)
	switch {
	case f.CertFile != "" && f.KeyFile != "":
		cert, err := LoadKeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, err
		}
		m.cert = &cert
	case f.CertFile != "" || f.KeyFile != "":
		return nil, fmt.Errorf("tlsconf: a certificate needs both files: cert file %q, key file %q", f.CertFile, f.KeyFile)
	}
	if f.CAFile != "" {
		pool, err := LoadCAs(f.CAFile)
		if err != nil {
			return nil, err
		}
		m.pool = pool
	}
	return m, nil
}

// LoadKeyPair reads a PEM certificate chain and its key. Unlike
// tls.LoadX509KeyPair, its errors say which file is at fault.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: read certificate file: %w", err)
	}
	if !HasPEM(certPEM, "CERTIFICATE") {
		return tls.Certificate{}, fmt.Errorf("tlsconf: certificate file %s holds no PEM CERTIFICATE block (-----BEGIN CERTIFICATE-----)", certFile)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: read key file: %w", err)
	}
	if !HasPEM(keyPEM, "PRIVATE KEY") {
		return tls.Certificate{}, fmt.Errorf("tlsconf: key file %s holds no PEM PRIVATE KEY block (-----BEGIN PRIVATE KEY-----)", keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: key file %s does not go with certificate file %s: %w", keyFile, certFile, err)
	}
	return cert, nil
}

// LoadCAs reads a PEM file of CA certificates into a pool.
func LoadCAs(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("tlsconf: CA file %s holds no PEM CERTIFICATE block (-----BEGIN CERTIFICATE-----)", file)
	}
	return pool, nil
}

// HasPEM reports whether data holds a PEM block whose type ends with kind
// ("PRIVATE KEY" matches RSA, EC and PKCS #8 keys).
func HasPEM(data []byte, kind string) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if strings.HasSuffix(b.Type, kind) {
			return true
		}
	}
}
