package quicwire

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Fingerprint returns the SHA-256 of a DER certificate in lower-case hex.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ParseFingerprint accepts a SHA-256 fingerprint in hex, upper or lower
// case, with or without ':' between bytes (as openssl prints it), and
// returns it in the form Fingerprint uses.
func ParseFingerprint(s string) (string, error) {
	h := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("quicwire: fingerprint %q is not a SHA-256 in hex (64 hex digits)", s)
	}
	return h, nil
}

// ClientTLS returns the TLS configuration of a client dialing a Sense QUIC
// listener at serverName. base (may be nil) is cloned and given TLS 1.3
// and the ALPN. With a fingerprint, the server's leaf certificate must
// have that SHA-256 and nothing else is checked (neither chain nor name):
// this is how a client trusts a dev server's self-signed certificate.
// With insecure, nothing is checked at all. Otherwise the usual
// verification against base.RootCAs (or the system roots) applies.
func ClientTLS(base *tls.Config, serverName, fingerprint string, insecure bool) (*tls.Config, error) {
	var c *tls.Config
	if base != nil {
		c = base.Clone()
	} else {
		c = &tls.Config{}
	}
	c.MinVersion = tls.VersionTLS13
	c.NextProtos = []string{ALPN}
	if c.ServerName == "" {
		c.ServerName = serverName
	}
	switch {
	case fingerprint != "":
		want, err := ParseFingerprint(fingerprint)
		if err != nil {
			return nil, err
		}
		c.InsecureSkipVerify = true // replaced by the pin below
		c.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the server sent no certificate")
			}
			if got := Fingerprint(raw[0]); got != want {
				return &FingerprintError{Want: want, Got: got}
			}
			return nil
		}
	case insecure:
		c.InsecureSkipVerify = true
	}
	return c, nil
}

// FingerprintError is a server certificate whose fingerprint is not the
// pinned one.
type FingerprintError struct {
	Want, Got string
}

func (e *FingerprintError) Error() string {
	return fmt.Sprintf("the server's certificate has SHA-256 fingerprint %s, not the pinned %s (a dev server makes a new certificate at each start: take the fingerprint from its banner or log)", e.Got, e.Want)
}
