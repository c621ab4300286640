package config

import (
	"fmt"
	"regexp"
	"time"
)

// Security configures authentication (docs/security.md).
type Security struct {
	// Enabled makes every edge require authentication: SASL on Kafka, an
	// AUTHENTICATE exchange on the native protocol and QUIC, a bearer
	// token on HTTP (but /healthz and /readyz). Default false: nothing is
	// required, as before.
	Enabled bool `yaml:"enabled"`
	// BootstrapTokenFile holds a token that acts as a superuser, for the
	// first `sense user create`; Sense writes a new random one there
	// (mode 0600) when the file does not exist.
	BootstrapTokenFile string `yaml:"bootstrap_token_file"`
	// Superusers are users the authorizer lets do anything.
	Superusers []string `yaml:"superusers"`
	// CertificateUser makes a verified TLS client certificate (mutual
	// TLS on the native, Kafka or HTTP listener) authenticate its
	// connection as a user, without SASL or a token: "cn", the
	// certificate subject's common name; "email", its first email
	// address (SAN); "" or "none" (default), no user. The user need not
	// exist as a SCRAM user: ACLs name it.
	CertificateUser string `yaml:"certificate_user"`
	// AuthTimeout bounds the handshake and authentication of a new
	// connection; 0 means 10s; else 100ms to 5m.
	AuthTimeout Duration `yaml:"auth_timeout"`
}

// DefaultAuthTimeout is security.auth_timeout's default.
const DefaultAuthTimeout = Duration(10 * time.Second)

// Timeout returns AuthTimeout, or its default when zero.
func (s Security) Timeout() time.Duration {
	if s.AuthTimeout == 0 {
		return time.Duration(DefaultAuthTimeout)
	}
	return time.Duration(s.AuthTimeout)
}

var securityUser = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

func (v *checker) security() {
	s := v.c.Security
	if d := time.Duration(s.AuthTimeout); d != 0 && (d < 100*time.Millisecond || d > 5*time.Minute) {
		v.fail("security.auth_timeout", s.AuthTimeout.String(), "must be 100ms to 5m")
	}
	switch s.CertificateUser {
	case "", "none", "cn", "email":
	default:
		v.fail("security.certificate_user", s.CertificateUser, "must be cn (the certificate subject's common name), email (its first email SAN) or none")
	}
	for i, u := range s.Superusers {
		if !securityUser.MatchString(u) {
			v.fail(fmt.Sprintf("security.superusers[%d]", i), u, "is not a user name: 1 to 128 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit")
		}
	}
}
