package security

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A token is a user's name, an id and an expiry, signed with the
// cluster's token key (HMAC-SHA256), so that any node of the cluster can
// check it without asking another:
//
//	"sense1." base64url(payload) "." base64url(HMAC-SHA256(key, "sense1." base64url(payload)))
//
// payload (big-endian):
//
//	u8      version (1)
//	i64     issued at, Unix milliseconds
//	i64     expires at, Unix milliseconds
//	[16]u8  id
//	u8      user name length n (1 to MaxUserLen)
//	n bytes user name
//
// base64url is without padding. A token is at most MaxTokenLen bytes.
const (
	tokenPrefix  = "sense1."
	tokenVersion = 1
	// MaxTokenLen bounds a token's text.
	MaxTokenLen = 512
	// TokenKeyLen is the length of a token key.
	TokenKeyLen = 32
	tokenFixed  = 1 + 8 + 8 + 16 + 1
)

// TokenClaims is what a token says.
type TokenClaims struct {
	User     string
	ID       string // 32 hex digits
	IssuedAt time.Time
	Expires  time.Time
}

// Token errors, matched with errors.Is; the errors returned carry
// details.
var (
	ErrTokenMalformed = errors.New("security: token is malformed")
	ErrTokenSignature = errors.New("security: token signature does not match")
	ErrTokenExpired   = errors.New("security: token expired")
)

// NewTokenKey returns a fresh random token key.
func NewTokenKey() []byte {
	k := make([]byte, TokenKeyLen)
	rand.Read(k)
	return k
}

// SignToken returns a token for user valid from now for ttl, signed with
// key, and its claims.
func SignToken(key []byte, user string, now time.Time, ttl time.Duration) (string, TokenClaims, error) {
	if err := ValidUserName(user); err != nil {
		return "", TokenClaims{}, err
	}
	if ttl <= 0 {
		return "", TokenClaims{}, fmt.Errorf("token lifetime %s is not positive", ttl)
	}
	if len(key) < 16 {
		return "", TokenClaims{}, errors.New("security: token key too short")
	}
	var id [16]byte
	rand.Read(id[:])
	c := TokenClaims{User: user, ID: hex.EncodeToString(id[:]), IssuedAt: now.Truncate(time.Millisecond), Expires: now.Add(ttl).Truncate(time.Millisecond)}
	p := make([]byte, 0, tokenFixed+len(user))
	p = append(p, tokenVersion)
	p = binary.BigEndian.AppendUint64(p, uint64(c.IssuedAt.UnixMilli()))
	p = binary.BigEndian.AppendUint64(p, uint64(c.Expires.UnixMilli()))
	p = append(p, id[:]...)
	p = append(p, byte(len(user)))
	p = append(p, user...)
	signed := tokenPrefix + base64.RawURLEncoding.EncodeToString(p)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), c, nil
}

// IsToken reports whether s has the shape of a signed token (it may still
// be malformed).
func IsToken(s string) bool { return strings.HasPrefix(s, tokenPrefix) }

// ParseToken decodes a token without checking its signature or expiry:
// the claims, the signed part and the signature.
func ParseToken(s string) (TokenClaims, string, []byte, error) {
	var c TokenClaims
	if len(s) > MaxTokenLen {
		return c, "", nil, fmt.Errorf("%w: %d bytes, more than %d", ErrTokenMalformed, len(s), MaxTokenLen)
	}
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return c, "", nil, fmt.Errorf("%w: it does not start with %q (is it a token made by `sense token create`?)", ErrTokenMalformed, tokenPrefix)
	}
	body, sig64, ok := strings.Cut(rest, ".")
	if !ok {
		return c, "", nil, fmt.Errorf("%w: no signature", ErrTokenMalformed)
	}
	p, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return c, "", nil, fmt.Errorf("%w: payload is not base64url: %v", ErrTokenMalformed, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(sig64)
	if err != nil || len(sig) != sha256.Size {
		return c, "", nil, fmt.Errorf("%w: signature is not %d bytes of base64url", ErrTokenMalformed, sha256.Size)
	}
	if len(p) < tokenFixed || p[0] != tokenVersion {
		return c, "", nil, fmt.Errorf("%w: payload of %d bytes or an unknown version", ErrTokenMalformed, len(p))
	}
	c.IssuedAt = time.UnixMilli(int64(binary.BigEndian.Uint64(p[1:])))
	c.Expires = time.UnixMilli(int64(binary.BigEndian.Uint64(p[9:])))
	c.ID = hex.EncodeToString(p[17:33])
	n := int(p[33])
	if len(p) != tokenFixed+n {
		return c, "", nil, fmt.Errorf("%w: user name length %d does not match the payload", ErrTokenMalformed, n)
	}
	c.User = string(p[tokenFixed:])
	if err := ValidUserName(c.User); err != nil {
		return c, "", nil, fmt.Errorf("%w: %v", ErrTokenMalformed, err)
	}
	return c, tokenPrefix + body, sig, nil
}

// VerifyToken checks a token's signature against key and its expiry
// against now, and returns its claims.
func VerifyToken(key []byte, s string, now time.Time) (TokenClaims, error) {
	c, signed, sig, err := ParseToken(s)
	if err != nil {
		return c, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signed))
	if len(key) == 0 || !hmac.Equal(mac.Sum(nil), sig) {
		return c, fmt.Errorf("%w: the token was altered, or signed by another cluster", ErrTokenSignature)
	}
	if !now.Before(c.Expires) {
		return c, fmt.Errorf("%w at %s (%s ago); create a new one with `sense token create --user %s --ttl 24h`",
			ErrTokenExpired, c.Expires.UTC().Format(time.RFC3339), now.Sub(c.Expires).Round(time.Second), c.User)
	}
	return c, nil
}
