package security

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sensehq/sense/internal/tlsconf"
	"github.com/sensehq/sense/result"
)

// Directory is where an Authenticator finds users and the token key: the
// cluster metadata, or a node alone's FileStore. Its methods are called on
// every authentication and must be safe for concurrent use.
type Directory interface {
	// User returns the user of that name.
	User(name string) (User, bool)
	// TokenKey returns the key tokens are signed with, or nil while there
	// is none (no token was ever created).
	TokenKey() []byte
}

// emptyDirectory knows no user.
type emptyDirectory struct{}

func (emptyDirectory) User(string) (User, bool) { return User{}, false }
func (emptyDirectory) TokenKey() []byte         { return nil }

// Options configure an Authenticator.
type Options struct {
	// Enabled says whether the edges require authentication
	// (security.enabled). When off, a client may still authenticate; it
	// is not required to.
	Enabled bool
	// Directory holds the users and the token key; nil knows nobody.
	Directory Directory
	// Bootstrap is the bootstrap token: presented as a token, it
	// authenticates as BootstrapUser, a superuser. Empty: none.
	Bootstrap string
	// Superusers are users the Authorizer lets do anything.
	Superusers []string
	// CertificateUser maps a verified TLS client certificate to a user
	// (security.certificate_user): CertificateCN its subject's common
	// name, CertificateEmail its first email address (SAN); "" none.
	CertificateUser string
	// Audit keeps the events; nil makes one of DefaultAuditSize.
	Audit  *AuditLog
	Logger *slog.Logger
	// Now is the clock tokens are checked with; default time.Now.
	Now func() time.Time
}

// Authenticator checks credentials and tokens for every edge of a node,
// and records each outcome. It is safe for concurrent use.
type Authenticator struct {
	opts    Options
	log     *slog.Logger
	audit   *AuditLog
	fakeKey []byte
}

// NewAuthenticator returns an Authenticator.
func NewAuthenticator(o Options) *Authenticator {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Audit == nil {
		o.Audit = NewAuditLog(DefaultAuditSize)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	k := make([]byte, 32)
	rand.Read(k)
	return &Authenticator{opts: o, log: o.Logger, audit: o.Audit, fakeKey: k}
}

// Enabled reports whether authentication is required.
func (a *Authenticator) Enabled() bool { return a != nil && a.opts.Enabled }

// Audit returns the audit log.
func (a *Authenticator) Audit() *AuditLog { return a.audit }

func (a *Authenticator) dir() Directory {
	if a.opts.Directory == nil {
		return emptyDirectory{}
	}
	return a.opts.Directory
}

// principal returns the principal of an authenticated user.
func (a *Authenticator) principal(user, mech string) Principal {
	return Principal{User: user, Mechanism: mech, Superuser: slices.Contains(a.opts.Superusers, user)}
}

// fakeCredential is the challenge an unknown user gets: a salt derived
// from the user's name with a key of this process, so that asking twice
// gives the same salt, as for a real user.
func (a *Authenticator) fakeCredential(mech, user string) Credential {
	h, _ := hashOf(mech)
	salt := hmacOf(sha256.New, a.fakeKey, []byte(mech+"\x00"+user))[:SaltLen]
	n := h().Size()
	return Credential{Mechanism: mech, Salt: salt, Iterations: DefaultIterations, StoredKey: make([]byte, n), ServerKey: make([]byte, n)}
}

// AuthError is a refused authentication. Error is the message for the
// client; Reason, for the audit log and the server's log, may say more
// (whether the user exists). errors.Is matches it with
// result.ErrAuthenticationFailed.
type AuthError struct {
	Mechanism string
	User      string
	Reason    string
	Public    string
}

func (e *AuthError) Error() string {
	who := ""
	if e.User != "" {
		who = fmt.Sprintf(" of user %q", e.User)
	}
	return fmt.Sprintf("%s authentication%s failed: %s", e.Mechanism, who, e.Public)
}

// Is matches result.ErrAuthenticationFailed.
func (e *AuthError) Is(target error) bool { return target == result.ErrAuthenticationFailed }

// AsResult returns e as a *result.Error of code AUTHENTICATION_FAILED.
func (e *AuthError) AsResult() *result.Error {
	return result.New(result.AuthenticationFailed, e.Error())
}

func authFailed(mech, user, reason, public string) *AuthError {
	if public == "" {
		public = "unknown user or wrong password"
	}
	return &AuthError{Mechanism: mech, User: user, Reason: reason, Public: public}
}

// Session is one authentication exchange: the client's messages go to
// Step in turn until it returns done (the principal is then Principal) or
// an error (a *AuthError).
type Session interface {
	Step(in []byte) (out []byte, done bool, err error)
	Principal() Principal
	Mechanism() string
	// User is the user the client claims, once known ("" before).
	User() string
}

// Mechanisms returns the mechanisms a client may authenticate with.
func (a *Authenticator) Mechanisms() []string {
	return []string{ScramSHA512, ScramSHA256, Plain, Token}
}

// NewSession starts an exchange of mech (SCRAM-SHA-256, SCRAM-SHA-512,
// PLAIN or TOKEN). An unknown mechanism is a *AuthError naming the known
// ones.
func (a *Authenticator) NewSession(mech string) (Session, error) {
	switch mech {
	case ScramSHA256, ScramSHA512:
		h, _ := hashOf(mech)
		return &scramServer{a: a, mech: mech, h: h}, nil
	case Plain:
		return &oneStep{mech: Plain, f: a.Plain}, nil
	case Token:
		return &oneStep{mech: Token, f: func(b []byte) (Principal, error) { return a.Token(string(b)) }}, nil
	}
	return nil, authFailed(truncate(mech), "", "unknown mechanism",
		fmt.Sprintf("mechanism %q is not supported; use one of %s", truncate(mech), strings.Join(a.Mechanisms(), ", ")))
}

// oneStep is a mechanism of one message: PLAIN, TOKEN.
type oneStep struct {
	mech string
	f    func([]byte) (Principal, error)
	p    Principal
	user string
	done bool
}

func (o *oneStep) Step(in []byte) ([]byte, bool, error) {
	if o.done {
		return nil, false, authFailed(o.mech, o.user, "message after the exchange ended", "the exchange is over; no more messages are expected")
	}
	o.done = true
	p, err := o.f(in)
	if err != nil {
		var ae *AuthError
		if errors.As(err, &ae) {
			o.user = ae.User
		}
		return nil, false, err
	}
	o.p, o.user = p, p.User
	return nil, true, nil
}

func (o *oneStep) Principal() Principal { return o.p }
func (o *oneStep) Mechanism() string    { return o.mech }
func (o *oneStep) User() string         { return o.user }

// ParsePlain decodes a PLAIN message (RFC 4616): authzid NUL authcid NUL
// passwd, each at most 255 bytes, authcid and passwd not empty.
func ParsePlain(msg []byte) (authzid, user, password string, err error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("a PLAIN message is authzid NUL user NUL password; this one has %d NUL separators", len(parts)-1)
	}
	for i, p := range parts {
		if len(p) > 255 {
			return "", "", "", fmt.Errorf("PLAIN field %d is %d bytes, more than 255", i+1, len(p))
		}
	}
	if len(parts[1]) == 0 || len(parts[2]) == 0 {
		return "", "", "", errors.New("PLAIN message with an empty user or password")
	}
	return string(parts[0]), string(parts[1]), string(parts[2]), nil
}

// TokenUser is the user name a PLAIN client gives to authenticate with a
// token as its password (Kafka clients, which know no token mechanism).
const TokenUser = "token"

// Plain checks a PLAIN message: the password against the user's SCRAM
// credential (the strongest it has). With the user "token", the password
// is a token (see Token).
func (a *Authenticator) Plain(msg []byte) (Principal, error) {
	authz, user, password, err := ParsePlain(msg)
	if err != nil {
		return Anonymous, authFailed(Plain, "", "malformed message: "+err.Error(), err.Error())
	}
	if authz != "" && authz != user {
		return Anonymous, authFailed(Plain, user, "authorization identity differs", fmt.Sprintf("authorization identity %q differs from the user %q; Sense does not let one user act as another", authz, user))
	}
	if user == TokenUser {
		return a.Token(password)
	}
	u, ok := a.dir().User(user)
	if !ok || len(u.Credentials) == 0 {
		// As long as a real check, so that timing does not tell who exists.
		a.fakeCredential(ScramSHA256, user).CheckPassword(password)
		return Anonymous, authFailed(Plain, user, "unknown user", "")
	}
	c := u.Credentials[0]
	for _, m := range ScramMechanisms {
		if cc, ok := u.Credential(m); ok {
			c = cc
			break
		}
	}
	if !c.CheckPassword(password) {
		return Anonymous, authFailed(Plain, user, "wrong password", "")
	}
	return a.principal(user, Plain), nil
}

// Token checks a token: the bootstrap token, or a signed token whose
// signature, expiry and user (it must still exist) are checked.
func (a *Authenticator) Token(tok string) (Principal, error) {
	tok = strings.TrimSpace(tok)
	if b := a.opts.Bootstrap; b != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(b)) == 1 {
		return Principal{User: BootstrapUser, Mechanism: Token, Superuser: true}, nil
	}
	if tok == "" {
		return Anonymous, authFailed(Token, "", "empty token", "the token is empty")
	}
	key := a.dir().TokenKey()
	if key == nil {
		c, _, _, err := ParseToken(tok)
		if err != nil {
			return Anonymous, authFailed(Token, "", err.Error(), err.Error())
		}
		return Anonymous, authFailed(Token, c.User, "no token key", "this cluster has never made a token, so it did not make this one")
	}
	c, err := VerifyToken(key, tok, a.opts.Now())
	if err != nil {
		return Anonymous, authFailed(Token, c.User, err.Error(), strings.TrimPrefix(err.Error(), "security: "))
	}
	if _, ok := a.dir().User(c.User); !ok {
		return Anonymous, authFailed(Token, c.User, "the token's user was deleted", fmt.Sprintf("user %q of token %s no longer exists", c.User, c.ID))
	}
	return a.principal(c.User, Token), nil
}

// Record logs an authentication's outcome and keeps it in the audit log:
// edge ("kafka", "native", "quic", "http"), the client's address, the
// mechanism, the user the client claimed, and err (nil on success).
func (a *Authenticator) Record(edge, remote, mech, user string, err error) {
	ev := Event{Time: time.Now().UTC(), Edge: edge, Remote: remote, Mechanism: mech, User: user, Success: err == nil}
	if err != nil {
		var ae *AuthError
		if errors.As(err, &ae) {
			ev.Reason = ae.Reason
			if ev.User == "" {
				ev.User = ae.User
			}
		} else {
			ev.Reason = err.Error()
		}
		a.log.Warn("authentication failed", "edge", edge, "remote", remote, "mechanism", mech, "principal", ev.User, "reason", ev.Reason)
	} else {
		// HTTP authenticates every request: its successes are logged at
		// debug level (the audit log keeps them all the same).
		level := slog.LevelInfo
		if edge == "http" {
			level = slog.LevelDebug
		}
		a.log.Log(context.Background(), level, "authenticated", "edge", edge, "remote", remote, "mechanism", mech, "principal", user)
	}
	a.audit.Add(ev)
}

// Ways of mapping a client certificate to a user (Options.CertificateUser).
const (
	CertificateCN    = "cn"
	CertificateEmail = "email"
)

// Certificate is the mechanism of a principal authenticated by its TLS
// client certificate.
const Certificate = "MTLS"

// Certificate returns the principal a verified client certificate maps
// to, with CertificateUser: ok is false when no mapping is configured or
// the connection has no verified certificate. A certificate whose name is
// not a valid user name is an error that says so (the connection may
// still authenticate otherwise).
func (a *Authenticator) Certificate(id tlsconf.Identity, verified bool) (p Principal, ok bool, err error) {
	if a == nil || !verified || a.opts.CertificateUser == "" {
		return Principal{}, false, nil
	}
	var name string
	switch a.opts.CertificateUser {
	case CertificateCN:
		name = id.Subject.CommonName
	case CertificateEmail:
		if len(id.EmailAddresses) > 0 {
			name = id.EmailAddresses[0]
		}
	}
	if err := ValidUserName(name); err != nil {
		return Principal{}, false, &AuthError{Mechanism: Certificate, User: name,
			Reason: fmt.Sprintf("client certificate %q maps (security.certificate_user: %s) to no valid user: %v", id.String(), a.opts.CertificateUser, err),
			Public: fmt.Sprintf("the client certificate names no valid user (its %s is %q)", a.opts.CertificateUser, name)}
	}
	return a.principal(name, Certificate), true, nil
}

// RecordChange logs a change a principal made to the security settings
// (op "acl.create" or "acl.delete", detail the ACL) and keeps it in the
// audit log.
func (a *Authenticator) RecordChange(p Principal, op, detail string) {
	who := p.User
	if who == "" {
		who = "anonymous"
	}
	a.log.Info("ACL changed", "op", op, "principal", who, "acl", detail)
	a.audit.Add(Event{Time: time.Now().UTC(), Op: op, User: who, Detail: detail, Success: true})
}

// LoadBootstrap reads the bootstrap token from path, or, when the file
// does not exist, makes a new random one and writes it there (mode 0600).
// created says which. A file holding fewer than 32 characters is an
// error: such a token could be guessed.
func LoadBootstrap(path string) (token string, created bool, err error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(b))
		if len(tok) < 32 {
			return "", false, fmt.Errorf("security.bootstrap_token_file %s holds %d characters; a bootstrap token needs at least 32 (delete the file and Sense makes one)", path, len(tok))
		}
		return tok, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", false, fmt.Errorf("security.bootstrap_token_file: %w", err)
	}
	k := make([]byte, 32)
	rand.Read(k)
	tok := "senseboot." + base64.RawURLEncoding.EncodeToString(k)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("security.bootstrap_token_file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("security.bootstrap_token_file: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("security.bootstrap_token_file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", false, fmt.Errorf("security.bootstrap_token_file: %w", err)
	}
	return tok, true, f.Close()
}

// ReadTokenFile reads a token from a file (the CLI's --token-file).
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return tok, nil
}
