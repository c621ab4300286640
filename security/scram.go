package security

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// MaxScramMessage bounds a SCRAM message a server or client accepts.
const MaxScramMessage = 4096

// errScram is wrapped by every SCRAM message decoding error.
var errScram = errors.New("security: malformed SCRAM message")

func scramErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errScram, fmt.Sprintf(format, args...))
}

// ClientFirst is a decoded client-first-message (RFC 5802 section 7):
//
//	gs2-header  = ("n" / "y") "," [ "a=" authzid ] ","
//	client-first-bare = "n=" saslname "," "r=" c-nonce ["," extensions]
type ClientFirst struct {
	GS2Header string // including its final comma
	AuthzID   string
	User      string
	Nonce     string
	Bare      string // client-first-message-bare, for the AuthMessage
	// Extensions are attributes after the nonce ("tokenauth=true" from a
	// Kafka client using delegation tokens).
	Extensions []string
}

// ParseClientFirst decodes a client-first-message. Channel binding ("p=")
// is refused: Sense does not offer SCRAM-*-PLUS.
func ParseClientFirst(msg []byte) (ClientFirst, error) {
	var cf ClientFirst
	if len(msg) > MaxScramMessage {
		return cf, scramErr("client-first-message of %d bytes, more than %d", len(msg), MaxScramMessage)
	}
	s := string(msg)
	switch {
	case strings.HasPrefix(s, "n,"), strings.HasPrefix(s, "y,"):
	case strings.HasPrefix(s, "p="):
		return cf, scramErr("channel binding (p=) is not supported; use SCRAM without -PLUS")
	default:
		return cf, scramErr("client-first-message does not start with a gs2 header (n, y or p=)")
	}
	rest := s[2:]
	i := strings.IndexByte(rest, ',')
	if i < 0 {
		return cf, scramErr("gs2 header is not terminated by a comma")
	}
	if az := rest[:i]; az != "" {
		if !strings.HasPrefix(az, "a=") {
			return cf, scramErr("gs2 header has %q where the authorization identity (a=) or nothing belongs", az)
		}
		name, err := decodeSaslName(az[2:])
		if err != nil {
			return cf, err
		}
		cf.AuthzID = name
	}
	cf.GS2Header = s[:2+i+1]
	cf.Bare = rest[i+1:]
	attrs := strings.Split(cf.Bare, ",")
	if len(attrs) < 2 {
		return cf, scramErr("client-first-message-bare needs n= and r=")
	}
	if strings.HasPrefix(attrs[0], "m=") {
		return cf, scramErr("mandatory extension m= is not supported")
	}
	if !strings.HasPrefix(attrs[0], "n=") {
		return cf, scramErr("client-first-message-bare starts with %q, want n=", truncate(attrs[0]))
	}
	name, err := decodeSaslName(attrs[0][2:])
	if err != nil {
		return cf, err
	}
	if name == "" {
		return cf, scramErr("empty user name")
	}
	cf.User = name
	if !strings.HasPrefix(attrs[1], "r=") || len(attrs[1]) == 2 {
		return cf, scramErr("client-first-message-bare has no nonce (r=)")
	}
	cf.Nonce = attrs[1][2:]
	if err := checkPrintable(cf.Nonce, "nonce"); err != nil {
		return cf, err
	}
	for _, e := range attrs[2:] {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return cf, scramErr("extension %q is not an attribute=value", truncate(e))
		}
		cf.Extensions = append(cf.Extensions, e)
	}
	return cf, nil
}

// ClientFinal is a decoded client-final-message:
//
//	channel-binding "," nonce ["," extensions] "," proof
type ClientFinal struct {
	ChannelBinding string // c=, base64 of the gs2 header
	Nonce          string
	Proof          []byte
	WithoutProof   string // client-final-message-without-proof, for the AuthMessage
}

// ParseClientFinal decodes a client-final-message.
func ParseClientFinal(msg []byte) (ClientFinal, error) {
	var cf ClientFinal
	if len(msg) > MaxScramMessage {
		return cf, scramErr("client-final-message of %d bytes, more than %d", len(msg), MaxScramMessage)
	}
	s := string(msg)
	i := strings.LastIndex(s, ",p=")
	if i < 0 {
		return cf, scramErr("client-final-message has no proof (p=) at its end")
	}
	cf.WithoutProof = s[:i]
	proof, err := base64.StdEncoding.Strict().DecodeString(s[i+3:])
	if err != nil {
		return cf, scramErr("proof is not base64: %v", err)
	}
	cf.Proof = proof
	attrs := strings.Split(cf.WithoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return cf, scramErr("client-final-message must start with c= and r=")
	}
	cf.ChannelBinding = attrs[0][2:]
	cf.Nonce = attrs[1][2:]
	return cf, nil
}

// decodeSaslName undoes the escaping of a saslname: "=2C" is ',' and
// "=3D" is '='; any other '=' is an error.
func decodeSaslName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", scramErr("user name has a bare '=' (escape it as =3D)")
		}
		i += 2
	}
	return b.String(), nil
}

func encodeSaslName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

func checkPrintable(s, what string) error {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return scramErr("%s holds byte %#x; it must be printable ASCII without commas", what, s[i])
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// newNonce makes the server's part of a nonce (tests replace it).
var newNonce = randomNonce

// randomNonce returns a printable nonce of 24 random bytes.
func randomNonce() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}

// scramServer is the server's side of one SCRAM exchange.
type scramServer struct {
	a    *Authenticator
	mech string
	h    func() hash.Hash

	step        int
	first       ClientFirst
	serverFirst string
	nonce       string
	cred        Credential
	known       bool
	p           Principal
}

// Step takes the client's next message and returns the server's answer.
// done is set with the server-final-message, once the proof was checked.
func (s *scramServer) Step(in []byte) ([]byte, bool, error) {
	switch s.step {
	case 0:
		s.step = 1
		cf, err := ParseClientFirst(in)
		if err != nil {
			return nil, false, s.fail("", "malformed client-first-message: "+err.Error(), err.Error())
		}
		s.first = cf
		if cf.AuthzID != "" && cf.AuthzID != cf.User {
			return nil, false, s.fail(cf.User, "authorization identity differs", fmt.Sprintf("authorization identity %q differs from the user %q; Sense does not let one user act as another", cf.AuthzID, cf.User))
		}
		for _, e := range cf.Extensions {
			if strings.HasPrefix(e, "tokenauth=") {
				return nil, false, s.fail(cf.User, "delegation token requested", "Kafka delegation tokens are not supported; authenticate with a password, or with a Sense token through PLAIN (user \"token\", the token as password)")
			}
		}
		u, ok := s.a.dir().User(cf.User)
		if ok {
			s.cred, s.known = u.Credential(s.mech)
		}
		if !s.known {
			// An unknown user (or one without this mechanism) gets a
			// challenge that looks like a real one, so that a client
			// cannot tell which users exist; the proof then fails.
			s.cred = s.a.fakeCredential(s.mech, cf.User)
		}
		s.nonce = cf.Nonce + newNonce()
		s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.cred.Salt) + ",i=" + strconv.Itoa(s.cred.Iterations)
		return []byte(s.serverFirst), false, nil
	case 1:
		s.step = 2
		user := s.first.User
		cf, err := ParseClientFinal(in)
		if err != nil {
			return nil, false, s.fail(user, "malformed client-final-message: "+err.Error(), err.Error())
		}
		if cf.ChannelBinding != base64.StdEncoding.EncodeToString([]byte(s.first.GS2Header)) {
			return nil, false, s.fail(user, "channel binding does not match the gs2 header", "the channel binding (c=) does not match the gs2 header of the client-first-message")
		}
		// librdkafka (before 2.3) puts its own nonce before the whole
		// nonce the server sent; Kafka brokers accept that, and so does
		// Sense, in that exact form only. The AuthMessage is built from
		// the message as sent, so the proof covers it either way.
		if cf.Nonce != s.nonce && cf.Nonce != s.first.Nonce+s.nonce {
			return nil, false, s.fail(user, "nonce does not match", "the nonce of the client-final-message is not the one the server sent")
		}
		authMsg := s.first.Bare + "," + s.serverFirst + "," + cf.WithoutProof
		sig := hmacOf(s.h, s.cred.StoredKey, []byte(authMsg))
		if len(cf.Proof) != len(sig) {
			return nil, false, s.fail(user, "proof of the wrong length", fmt.Sprintf("the proof is %d bytes, want %d", len(cf.Proof), len(sig)))
		}
		clientKey := make([]byte, len(sig))
		for i := range sig {
			clientKey[i] = cf.Proof[i] ^ sig[i]
		}
		hk := s.h()
		hk.Write(clientKey)
		if !hmac.Equal(hk.Sum(nil), s.cred.StoredKey) || !s.known {
			reason := "wrong password"
			if !s.known {
				reason = "unknown user or no " + s.mech + " credential"
			}
			return nil, false, s.fail(user, reason, "")
		}
		s.p = s.a.principal(user, s.mech)
		return []byte("v=" + base64.StdEncoding.EncodeToString(hmacOf(s.h, s.cred.ServerKey, []byte(authMsg)))), true, nil
	}
	return nil, false, s.fail(s.first.User, "message after the exchange ended", "the SCRAM exchange is over; no more messages are expected")
}

func (s *scramServer) fail(user, reason, public string) error {
	return authFailed(s.mech, user, reason, public)
}

func (s *scramServer) Principal() Principal { return s.p }
func (s *scramServer) Mechanism() string    { return s.mech }
func (s *scramServer) User() string         { return s.first.User }

// ScramClient is the client's side of a SCRAM exchange: First, then
// Final with the server-first-message, then Verify with the
// server-final-message.
type ScramClient struct {
	mech, user, password string
	h                    func() hash.Hash
	nonce, bare          string
	serverSig            []byte
}

// NewScramClient starts a SCRAM exchange for user with password.
func NewScramClient(mech, user, password string) (*ScramClient, error) {
	h, ok := hashOf(mech)
	if !ok {
		return nil, fmt.Errorf("mechanism %q is not %s or %s", mech, ScramSHA256, ScramSHA512)
	}
	return &ScramClient{mech: mech, user: user, password: password, h: h, nonce: randomNonce()}, nil
}

// First returns the client-first-message.
func (c *ScramClient) First() []byte {
	c.bare = "n=" + encodeSaslName(c.user) + ",r=" + c.nonce
	return []byte("n,," + c.bare)
}

// Final answers the server-first-message with the client-final-message.
// It refuses a server nonce that does not extend the client's and an
// iteration count outside [MinIterations, MaxIterations].
func (c *ScramClient) Final(serverFirst []byte) ([]byte, error) {
	if len(serverFirst) > MaxScramMessage {
		return nil, scramErr("server-first-message of %d bytes", len(serverFirst))
	}
	attrs := strings.Split(string(serverFirst), ",")
	if len(attrs) < 3 || !strings.HasPrefix(attrs[0], "r=") || !strings.HasPrefix(attrs[1], "s=") || !strings.HasPrefix(attrs[2], "i=") {
		return nil, scramErr("server-first-message is not r=,s=,i=")
	}
	nonce := attrs[0][2:]
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return nil, scramErr("the server's nonce does not extend the client's")
	}
	salt, err := base64.StdEncoding.DecodeString(attrs[1][2:])
	if err != nil || len(salt) == 0 {
		return nil, scramErr("the server's salt is not base64")
	}
	iters, err := strconv.Atoi(attrs[2][2:])
	if err != nil || iters < MinIterations || iters > MaxIterations {
		return nil, scramErr("the server asks for %q iterations; a client accepts %d to %d", attrs[2][2:], MinIterations, MaxIterations)
	}
	salted, err := saltedPassword(c.mech, c.password, salt, iters)
	if err != nil {
		return nil, err
	}
	withoutProof := "c=biws,r=" + nonce // biws: base64 of "n,,"
	authMsg := c.bare + "," + string(serverFirst) + "," + withoutProof
	clientKey := hmacOf(c.h, salted, []byte("Client Key"))
	stored := c.h()
	stored.Write(clientKey)
	sig := hmacOf(c.h, stored.Sum(nil), []byte(authMsg))
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = clientKey[i] ^ sig[i]
	}
	c.serverSig = hmacOf(c.h, hmacOf(c.h, salted, []byte("Server Key")), []byte(authMsg))
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// Verify checks the server-final-message: the server proves it holds the
// user's ServerKey.
func (c *ScramClient) Verify(serverFinal []byte) error {
	s := string(serverFinal)
	if e, ok := strings.CutPrefix(s, "e="); ok {
		return fmt.Errorf("security: the server refused the proof: %s", truncate(e))
	}
	v, ok := strings.CutPrefix(s, "v=")
	if !ok {
		return scramErr("server-final-message has no verifier (v=)")
	}
	sig, err := base64.StdEncoding.DecodeString(v)
	if err != nil || !hmac.Equal(sig, c.serverSig) || c.serverSig == nil {
		return errors.New("security: the server's signature does not match: it does not know this user's credential (is it the server you meant?)")
	}
	return nil
}
