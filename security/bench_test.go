package security

import (
	"testing"
	"time"
)

// The cost of authentication (once per connection) and of authorization
// (once per request): run with
//
//	go test -run XXX -bench . -benchmem ./security/

func BenchmarkScramSHA256(b *testing.B) { benchScram(b, ScramSHA256) }
func BenchmarkScramSHA512(b *testing.B) { benchScram(b, ScramSHA512) }

func benchScram(b *testing.B, mech string) {
	u, err := UserWithPassword("alice", "pw", DefaultIterations, mech)
	if err != nil {
		b.Fatal(err)
	}
	a := NewAuthenticator(Options{Directory: newDir(b, u)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := exchange(a, mech, "alice", "pw"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlain(b *testing.B) {
	u, err := UserWithPassword("alice", "pw", DefaultIterations, ScramSHA256)
	if err != nil {
		b.Fatal(err)
	}
	a := NewAuthenticator(Options{Directory: newDir(b, u)})
	msg := []byte("\x00alice\x00pw")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Plain(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkToken(b *testing.B) {
	d := newDir(b, User{Name: "alice"})
	a := NewAuthenticator(Options{Directory: d})
	tok, _, err := SignToken(d.key, "alice", time.Now(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Token(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthorize(b *testing.B) {
	var az Authorizer = DefaultAuthorizer{Enabled: true}
	p := Principal{User: "alice", Mechanism: ScramSHA256}
	r := PipelineResource("payments")
	b.ReportAllocs()
	for b.Loop() {
		if err := az.Authorize(p, Write, r); err != nil {
			b.Fatal(err)
		}
	}
}
