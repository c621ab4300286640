package security

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/event"
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

// aclSet is n ACLs over n/10 users: literal and prefixed ACLs on
// pipelines and groups, some deny, some for User:*.
func aclSet(n int) []ACL {
	acls := make([]ACL, 0, n)
	ops := []Action{Read, Write, Describe, Delete, Alter}
	for i := 0; len(acls) < n; i++ {
		u := fmt.Sprintf("User:user%d", i%(n/10))
		if i%50 == 0 {
			u = WildcardPrincipal
		}
		pat, t := Literal, Pipeline
		if i%3 == 0 {
			pat = Prefixed
		}
		if i%7 == 0 {
			t = Group
		}
		op := ops[i%len(ops)]
		if t == Group && op != Read {
			op = Describe
		}
		perm := Allow
		if i%11 == 0 {
			perm = Deny
		}
		a := ACL{Principal: u, ResourceType: t, Pattern: pat, Name: fmt.Sprintf("pipe-%d-%d", i%17, i), Operation: op, Permission: perm}
		a.Normalize()
		acls = append(acls, a)
	}
	return acls
}

// BenchmarkAuthorizeACLs is the cost of authorizing a produce request
// with 1,000 ACLs: a user with ten ACLs of its own (literal and
// prefixed), User:* ACLs, and the one that allows.
func BenchmarkAuthorizeACLs(b *testing.B) {
	z := NewACLAuthorizer(nil, nil)
	acls := append(aclSet(999), ACL{Principal: "User:user7", ResourceType: Pipeline, Pattern: Literal, Name: "payments", Operation: Write, Permission: Allow, Host: "*"})
	z.Set(acls)
	var az Authorizer = z
	p := Principal{User: "user7", Mechanism: ScramSHA256}
	r := PipelineResource("payments")
	b.ReportAllocs()
	for b.Loop() {
		if err := az.Authorize(p, Write, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorizeACLsPrefixes is the worst case: one user with 1,000
// prefixed ACLs of every length a pipeline name may have, asked about a
// pipeline name of the greatest length.
func BenchmarkAuthorizeACLsPrefixes(b *testing.B) {
	z := NewACLAuthorizer(nil, nil)
	name := strings.Repeat("p", event.MaxPipelineLen)
	var acls []ACL
	for i := 0; i < 1000; i++ {
		n := 1 + i%event.MaxPipelineLen
		acls = append(acls, ACL{Principal: "User:alice", ResourceType: Pipeline, Pattern: Prefixed, Name: fmt.Sprintf("%0*d", n, i), Operation: Write, Permission: Allow, Host: "*"})
	}
	acls = append(acls, ACL{Principal: "User:alice", ResourceType: Pipeline, Pattern: Literal, Name: name, Operation: Write, Permission: Allow, Host: "*"})
	z.Set(acls)
	p := Principal{User: "alice", Mechanism: ScramSHA256}
	r := PipelineResource(name)
	b.ReportAllocs()
	for b.Loop() {
		if err := z.Authorize(p, Write, r); err != nil {
			b.Fatal(err)
		}
	}
}
