package security

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"slices"
)

// Iteration bounds of a SCRAM credential. RFC 7677 asks for at least
// 4096; the upper bound keeps one authentication (and a client checking a
// server's challenge) from taking seconds.
const (
	MinIterations     = 4096
	MaxIterations     = 1 << 20
	DefaultIterations = 8192
	// SaltLen is the length of the salts NewCredential draws.
	SaltLen = 24
	minSalt = 8
	maxSalt = 256
)

// ScramMechanisms lists the SCRAM mechanisms, strongest first.
var ScramMechanisms = []string{ScramSHA512, ScramSHA256}

// hashOf returns the hash of a SCRAM mechanism.
func hashOf(mech string) (func() hash.Hash, bool) {
	switch mech {
	case ScramSHA256:
		return sha256.New, true
	case ScramSHA512:
		return sha512.New, true
	}
	return nil, false
}

// Credential is what the server keeps of a user's password for one SCRAM
// mechanism (RFC 5802 section 3): enough to check a proof or a PLAIN
// password, not enough to recover the password or to log in with.
type Credential struct {
	Mechanism  string `json:"mechanism"`
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// User is a user as the server keeps it: a name and one credential per
// SCRAM mechanism it may use (PLAIN is checked against either).
type User struct {
	Name        string       `json:"name"`
	Credentials []Credential `json:"credentials"`
}

// Credential returns u's credential for mech.
func (u User) Credential(mech string) (Credential, bool) {
	for _, c := range u.Credentials {
		if c.Mechanism == mech {
			return c, true
		}
	}
	return Credential{}, false
}

// Mechanisms returns the mechanisms of u's credentials.
func (u User) Mechanisms() []string {
	out := make([]string, len(u.Credentials))
	for i, c := range u.Credentials {
		out[i] = c.Mechanism
	}
	return out
}

// Validate checks u's name and credentials, naming what is wrong.
func (u User) Validate() error {
	if err := ValidUserName(u.Name); err != nil {
		return err
	}
	if len(u.Credentials) == 0 {
		return fmt.Errorf("user %s has no credential", u.Name)
	}
	seen := map[string]bool{}
	for _, c := range u.Credentials {
		if seen[c.Mechanism] {
			return fmt.Errorf("user %s has two %s credentials", u.Name, c.Mechanism)
		}
		seen[c.Mechanism] = true
		if err := c.Validate(); err != nil {
			return fmt.Errorf("user %s: %w", u.Name, err)
		}
	}
	return nil
}

// Validate checks a credential's mechanism, iteration count, salt and key
// lengths.
func (c Credential) Validate() error {
	h, ok := hashOf(c.Mechanism)
	if !ok {
		return fmt.Errorf("mechanism %q is not %s or %s", c.Mechanism, ScramSHA256, ScramSHA512)
	}
	if c.Iterations < MinIterations || c.Iterations > MaxIterations {
		return fmt.Errorf("%s credential has %d iterations; give %d to %d", c.Mechanism, c.Iterations, MinIterations, MaxIterations)
	}
	if len(c.Salt) < minSalt || len(c.Salt) > maxSalt {
		return fmt.Errorf("%s credential has a salt of %d bytes; give %d to %d", c.Mechanism, len(c.Salt), minSalt, maxSalt)
	}
	if n := h().Size(); len(c.StoredKey) != n || len(c.ServerKey) != n {
		return fmt.Errorf("%s credential's keys are %d and %d bytes, want %d", c.Mechanism, len(c.StoredKey), len(c.ServerKey), n)
	}
	return nil
}

// ParseMechanisms reads the mechanisms a user is created with: "" means
// both SCRAM mechanisms.
func ParseMechanisms(mechs ...string) ([]string, error) {
	var out []string
	for _, m := range mechs {
		if m == "" {
			continue
		}
		if _, ok := hashOf(m); !ok {
			return nil, fmt.Errorf("mechanism %q is not %s or %s", m, ScramSHA256, ScramSHA512)
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return slices.Clone(ScramMechanisms), nil
	}
	return out, nil
}

// NewCredential derives the credential of password for mech with a fresh
// random salt; iterations 0 means DefaultIterations.
func NewCredential(mech, password string, iterations int) (Credential, error) {
	if iterations == 0 {
		iterations = DefaultIterations
	}
	if _, ok := hashOf(mech); !ok {
		return Credential{}, fmt.Errorf("mechanism %q is not %s or %s", mech, ScramSHA256, ScramSHA512)
	}
	if iterations < MinIterations || iterations > MaxIterations {
		return Credential{}, fmt.Errorf("%d iterations; give %d to %d", iterations, MinIterations, MaxIterations)
	}
	if password == "" {
		return Credential{}, fmt.Errorf("the password is empty")
	}
	salt := make([]byte, SaltLen)
	rand.Read(salt)
	salted, err := saltedPassword(mech, password, salt, iterations)
	if err != nil {
		return Credential{}, err
	}
	return CredentialFromSalted(mech, salted, salt, iterations)
}

// CredentialFromSalted derives a credential from a salted password (what
// Kafka's AlterUserScramCredentials carries).
func CredentialFromSalted(mech string, salted, salt []byte, iterations int) (Credential, error) {
	h, ok := hashOf(mech)
	if !ok {
		return Credential{}, fmt.Errorf("mechanism %q is not %s or %s", mech, ScramSHA256, ScramSHA512)
	}
	if len(salted) != h().Size() {
		return Credential{}, fmt.Errorf("%s salted password of %d bytes, want %d", mech, len(salted), h().Size())
	}
	clientKey := hmacOf(h, salted, []byte("Client Key"))
	stored := h()
	stored.Write(clientKey)
	c := Credential{Mechanism: mech, Salt: slices.Clone(salt), Iterations: iterations,
		StoredKey: stored.Sum(nil), ServerKey: hmacOf(h, salted, []byte("Server Key"))}
	return c, c.Validate()
}

// UserWithPassword returns a user whose credentials, one per mechanism of
// mechs (both SCRAM mechanisms when empty), are derived from password.
func UserWithPassword(name, password string, iterations int, mechs ...string) (User, error) {
	if err := ValidUserName(name); err != nil {
		return User{}, err
	}
	ms, err := ParseMechanisms(mechs...)
	if err != nil {
		return User{}, err
	}
	u := User{Name: name}
	for _, m := range ms {
		c, err := NewCredential(m, password, iterations)
		if err != nil {
			return User{}, err
		}
		u.Credentials = append(u.Credentials, c)
	}
	return u, nil
}

// CheckPassword reports whether password matches c.
func (c Credential) CheckPassword(password string) bool {
	h, ok := hashOf(c.Mechanism)
	if !ok {
		return false
	}
	salted, err := saltedPassword(c.Mechanism, password, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	stored := h()
	stored.Write(hmacOf(h, salted, []byte("Client Key")))
	return hmac.Equal(stored.Sum(nil), c.StoredKey)
}

func saltedPassword(mech, password string, salt []byte, iterations int) ([]byte, error) {
	h, _ := hashOf(mech)
	return pbkdf2.Key(h, password, salt, iterations, h().Size())
}

func hmacOf(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}
