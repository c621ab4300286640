package security

import (
	"context"
	"fmt"
	"regexp"
)

// Mechanisms: how a principal proved who it is.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	Plain       = "PLAIN"
	// Token is a token made by `sense token create`, or the bootstrap
	// token.
	Token = "TOKEN"
)

// BootstrapUser is the name of the principal of the bootstrap token. It
// is not a valid user name, so no user can take it.
const BootstrapUser = "sense:bootstrap"

// Principal is who a connection or request acts as. The zero value is the
// anonymous principal: nobody authenticated.
type Principal struct {
	// User is the authenticated user's name; empty when anonymous.
	User string
	// Mechanism is how the user authenticated: ScramSHA256, ScramSHA512,
	// Plain or Token.
	Mechanism string
	// Superuser is set for the bootstrap token and the users named in
	// security.superusers: the Authorizer lets them do anything.
	Superuser bool
}

// Anonymous is the principal of a connection that has not authenticated.
var Anonymous = Principal{}

// Authenticated reports whether p is a user, not anonymous.
func (p Principal) Authenticated() bool { return p.User != "" }

// String names p for logs and messages: "alice (SCRAM-SHA-256)",
// "anonymous".
func (p Principal) String() string {
	if !p.Authenticated() {
		return "anonymous"
	}
	if p.Superuser {
		return fmt.Sprintf("%s (%s, superuser)", p.User, p.Mechanism)
	}
	return fmt.Sprintf("%s (%s)", p.User, p.Mechanism)
}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal ctx carries, or Anonymous.
func FromContext(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// MaxUserLen is the longest user name.
const MaxUserLen = 128

var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]*$`)

// ValidUserName checks a user name: 1 to 128 of A-Z a-z 0-9 . _ @ -,
// starting with a letter or digit.
func ValidUserName(name string) error {
	if name == "" || len(name) > MaxUserLen || !userName.MatchString(name) {
		return fmt.Errorf("user name %q is not valid: 1 to %d of A-Z a-z 0-9 . _ @ -, starting with a letter or digit", name, MaxUserLen)
	}
	return nil
}
