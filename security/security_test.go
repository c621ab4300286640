package security

import (
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/vfs"
)

// mapDir is a Directory for tests.
type mapDir struct {
	mu    sync.Mutex
	users map[string]User
	key   []byte
}

func (d *mapDir) User(n string) (User, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[n]
	return u, ok
}
func (d *mapDir) TokenKey() []byte { return d.key }

func newDir(t testing.TB, users ...User) *mapDir {
	d := &mapDir{users: map[string]User{}, key: NewTokenKey()}
	for _, u := range users {
		d.users[u.Name] = u
	}
	return d
}

func mustUser(t testing.TB, name, pw string, mechs ...string) User {
	t.Helper()
	u, err := UserWithPassword(name, pw, MinIterations, mechs...)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestScramRFC7677 replays the SCRAM-SHA-256 example of RFC 7677 section 3.
func TestScramRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	salted, err := saltedPassword(ScramSHA256, "pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := CredentialFromSalted(ScramSHA256, salted, salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuthenticator(Options{Directory: newDir(t, User{Name: "user", Credentials: []Credential{cred}})})
	old := newNonce
	newNonce = func() string { return "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }
	defer func() { newNonce = old }()
	s, _ := a.NewSession(ScramSHA256)
	out, done, err := s.Step([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if err != nil || done {
		t.Fatal(err, done)
	}
	if want := "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"; string(out) != want {
		t.Fatalf("server-first %q, want %q", out, want)
	}
	out, done, err = s.Step([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if err != nil || !done {
		t.Fatal(err, done)
	}
	if want := "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; string(out) != want {
		t.Fatalf("server-final %q, want %q", out, want)
	}
	if p := s.Principal(); p.User != "user" || p.Mechanism != ScramSHA256 {
		t.Fatalf("principal %+v", p)
	}
	// The client side computes the same proof.
	c, _ := NewScramClient(ScramSHA256, "user", "pencil")
	c.nonce = "rOprNGfwEbeRWgbNEkqO"
	if got := string(c.First()); got != "n,,n=user,r=rOprNGfwEbeRWgbNEkqO" {
		t.Fatal(got)
	}
	fin, err := c.Final([]byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
	if err != nil || !strings.HasSuffix(string(fin), "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=") {
		t.Fatal(string(fin), err)
	}
	if err := c.Verify(out); err != nil {
		t.Fatal(err)
	}
}

// exchange runs a SCRAM exchange between ScramClient and the server.
func exchange(a *Authenticator, mech, user, pw string) (Principal, error) {
	s, err := a.NewSession(mech)
	if err != nil {
		return Anonymous, err
	}
	c, err := NewScramClient(mech, user, pw)
	if err != nil {
		return Anonymous, err
	}
	sf, _, err := s.Step(c.First())
	if err != nil {
		return Anonymous, err
	}
	cf, err := c.Final(sf)
	if err != nil {
		return Anonymous, err
	}
	fin, done, err := s.Step(cf)
	if err != nil {
		return Anonymous, err
	}
	if !done {
		return Anonymous, errors.New("not done")
	}
	return s.Principal(), c.Verify(fin)
}

func TestScramExchanges(t *testing.T) {
	a := NewAuthenticator(Options{Directory: newDir(t, mustUser(t, "alice", "s3cret"), mustUser(t, "bob", "pw", ScramSHA256)),
		Superusers: []string{"alice"}})
	for _, mech := range ScramMechanisms {
		p, err := exchange(a, mech, "alice", "s3cret")
		if err != nil || p.User != "alice" || !p.Superuser || p.Mechanism != mech {
			t.Fatalf("%s: %+v %v", mech, p, err)
		}
		for _, c := range []struct{ user, pw, reason string }{
			{"alice", "wrong", "wrong password"},
			{"nobody", "x", "unknown user"},
		} {
			_, err := exchange(a, mech, c.user, c.pw)
			var ae *AuthError
			if !errors.As(err, &ae) || !strings.Contains(ae.Reason, c.reason) || !errors.Is(err, result.ErrAuthenticationFailed) {
				t.Fatalf("%s %s: %v", mech, c.user, err)
			}
			if !strings.Contains(err.Error(), "unknown user or wrong password") || !strings.Contains(err.Error(), c.user) {
				t.Fatalf("message %q", err)
			}
		}
	}
	// bob has no SCRAM-SHA-512 credential.
	if _, err := exchange(a, ScramSHA512, "bob", "pw"); err == nil {
		t.Fatal("bob authenticated with a mechanism he has no credential for")
	}
	if _, err := exchange(a, ScramSHA256, "bob", "pw"); err != nil {
		t.Fatal(err)
	}
}

func TestPlainAndTokens(t *testing.T) {
	d := newDir(t, mustUser(t, "alice", "s3cret"))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := NewAuthenticator(Options{Directory: d, Bootstrap: "senseboot.0123456789abcdef0123456789abcdef", Now: func() time.Time { return now }})
	if p, err := a.Plain([]byte("\x00alice\x00s3cret")); err != nil || p.User != "alice" || p.Mechanism != Plain {
		t.Fatal(p, err)
	}
	for _, msg := range []string{"\x00alice\x00nope", "\x00eve\x00s3cret", "alice\x00s3cret", "bob\x00alice\x00s3cret"} {
		if _, err := a.Plain([]byte(msg)); !errors.Is(err, result.ErrAuthenticationFailed) {
			t.Fatalf("%q: %v", msg, err)
		}
	}
	tok, claims, err := SignToken(d.key, "alice", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := a.Token(tok); err != nil || p.User != "alice" || p.Mechanism != Token {
		t.Fatal(p, err)
	}
	// Through PLAIN with the user "token".
	if p, err := a.Plain([]byte("\x00token\x00" + tok)); err != nil || p.User != "alice" {
		t.Fatal(p, err)
	}
	if p, err := a.Token("senseboot.0123456789abcdef0123456789abcdef"); err != nil || !p.Superuser || p.User != BootstrapUser {
		t.Fatal(p, err)
	}
	// Expired.
	later := NewAuthenticator(Options{Directory: d, Now: func() time.Time { return claims.Expires.Add(time.Minute) }})
	if _, err := later.Token(tok); !errors.Is(err, result.ErrAuthenticationFailed) || !strings.Contains(err.Error(), "expired at") {
		t.Fatalf("expired token: %v", err)
	}
	// Tampered: another user's name in the payload, same signature.
	c, signed, sig, _ := ParseToken(tok)
	_ = c
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(signed, tokenPrefix))
	raw[len(raw)-1] ^= 1 // "alicd"
	forged := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw) + "." + base64.RawURLEncoding.EncodeToString(sig)
	if _, err := a.Token(forged); !errors.Is(err, result.ErrAuthenticationFailed) || !strings.Contains(err.Error(), "signature does not match") {
		t.Fatalf("tampered token: %v", err)
	}
	// Signed by another cluster.
	other, _, _ := SignToken(NewTokenKey(), "alice", now, time.Hour)
	if _, err := a.Token(other); !strings.Contains(fmtErr(err), "signature does not match") {
		t.Fatalf("foreign token: %v", err)
	}
	// Garbage.
	if _, err := a.Token("hello"); !strings.Contains(fmtErr(err), "malformed") {
		t.Fatalf("garbage token: %v", err)
	}
	// The user was deleted.
	d.mu.Lock()
	delete(d.users, "alice")
	d.mu.Unlock()
	if _, err := a.Token(tok); !strings.Contains(fmtErr(err), "no longer exists") {
		t.Fatalf("token of a deleted user: %v", err)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestFileStore(t *testing.T) {
	fs := vfs.NewMem()
	path := filepath.Join("/d", FileName)
	fs.MkdirAll("/d")
	s, err := OpenFileStore(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutUser(mustUser(t, "alice", "pw")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutUser(mustUser(t, "bob", "pw")); err != nil {
		t.Fatal(err)
	}
	key, err := s.EnsureTokenKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser("bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser("bob"); !errors.Is(err, ErrUnknownUser) {
		t.Fatal(err)
	}
	s2, err := OpenFileStore(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	if us := s2.Users(); len(us) != 1 || us[0].Name != "alice" || string(s2.TokenKey()) != string(key) {
		t.Fatalf("reopened: %+v", us)
	}
	if u, _ := s2.User("alice"); !u.Credentials[0].CheckPassword("pw") {
		t.Fatal("the credential does not check after a reopen")
	}
	// Damage is refused with the file named.
	raw, _ := vfs.ReadFile(fs, path)
	raw[len(raw)/2] ^= 0x20
	f, _ := fs.Create(path)
	f.WriteAt(raw, 0)
	f.Close()
	if _, err := OpenFileStore(fs, path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("damaged file: %v", err)
	}
}

func TestAuditLogBounded(t *testing.T) {
	l := NewAuditLog(3)
	for i := range 5 {
		l.Add(Event{User: string(rune('a' + i))})
	}
	ev, total := l.Events()
	if total != 5 || len(ev) != 3 || ev[0].User != "c" || ev[2].User != "e" {
		t.Fatalf("%+v %d", ev, total)
	}
}

func TestDefaultAuthorizer(t *testing.T) {
	off := DefaultAuthorizer{}
	on := DefaultAuthorizer{Enabled: true}
	r := PipelineResource("payments")
	if off.Authorize(Anonymous, Write, r) != nil {
		t.Fatal("security off denied")
	}
	if on.Authorize(Principal{User: "a", Mechanism: Plain}, Write, r) != nil || on.Authorize(Principal{User: BootstrapUser, Superuser: true}, Alter, ClusterResource) != nil {
		t.Fatal("an authenticated principal was denied")
	}
	err := on.Authorize(Anonymous, Write, r)
	if !errors.Is(err, result.ErrUnauthorized) || !strings.Contains(err.Error(), "anonymous may not write pipeline payments") {
		t.Fatalf("anonymous: %v", err)
	}
}

func TestClientFirstParsing(t *testing.T) {
	cf, err := ParseClientFirst([]byte("n,a=we=2Cird,n=we=2Cird,r=abc,ext=1"))
	if err != nil || cf.User != "we,ird" || cf.AuthzID != "we,ird" || cf.GS2Header != "n,a=we=2Cird," || len(cf.Extensions) != 1 {
		t.Fatalf("%+v %v", cf, err)
	}
	for _, bad := range []string{"", "p=tls-unique,,n=u,r=x", "n,,n=u", "n,,r=x,n=u", "n,,n=u=x,r=y", "n,,n=,r=x", "n,,n=u,r=", "x,,n=u,r=x", "n,,m=x,n=u,r=y"} {
		if _, err := ParseClientFirst([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
