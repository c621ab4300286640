package quicedge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// loadCertificate loads the configured key pair, or generates a
// self-signed one when both files are empty.
func loadCertificate(addr, certFile, keyFile, devDir string) (tls.Certificate, bool, error) {
	switch {
	case certFile == "" && keyFile == "" && devDir != "":
		cert, err := keptSelfSigned(devDir, addr)
		return cert, true, err
	case certFile == "" && keyFile == "":
		cert, err := newSelfSigned(addr)
		return cert, true, err
	case certFile == "" || keyFile == "":
		return tls.Certificate{}, false, errors.New("quicedge: a certificate needs both its cert_file and its key_file")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("quicedge: load certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return cert, false, nil
}

// Names of the kept dev certificate's files.
const (
	devCertName = "dev-quic-cert.pem"
	devKeyName  = "dev-quic-key.pem"
)

// keptSelfSigned returns the self-signed certificate kept in dir, or makes
// one and keeps it there when there is none usable.
func keptSelfSigned(dir, addr string) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, devCertName), filepath.Join(dir, devKeyName)
	if cert, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && usableFor(cert, addr) {
		return cert, nil
	}
	cert, err := newSelfSigned(addr)
	if err != nil {
		return cert, err
	}
	keyDER, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		return cert, fmt.Errorf("quicedge: encode the dev key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cert, fmt.Errorf("quicedge: keep the dev certificate in %s: %w", dir, err)
	}
	// Key first: a certificate without its key is never left behind.
	if err := writeAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return cert, err
	}
	if err := writeAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		return cert, err
	}
	return cert, nil
}

// usableFor reports whether a kept certificate has 30 days left and
// covers the listen host of addr.
func usableFor(cert tls.Certificate, addr string) bool {
	if len(cert.Certificate) == 0 {
		return false
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil || time.Until(leaf.NotAfter) < 30*24*time.Hour {
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return true
	}
	return leaf.VerifyHostname(host) == nil
}

// writeAtomic writes data to path through a temporary file and a rename.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("quicedge: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("quicedge: rename %s to %s: %w", tmp, path, err)
	}
	return nil
}

// newSelfSigned generates an ECDSA P-256 certificate valid for a year for
// 127.0.0.1, ::1, localhost, and the host of addr when it is a name or a
// specific IP.
func newSelfSigned(addr string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("quicedge: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("quicedge: serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Sense dev mode"}, CommonName: "localhost"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" && host != "localhost" {
		if ip := net.ParseIP(host); ip == nil {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		} else if !ip.IsUnspecified() && !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("quicedge: self-sign certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
