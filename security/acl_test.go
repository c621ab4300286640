package security

import (
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sensehq/sense/internal/tlsconf"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/vfs"
)

// testRegistry has codes MA (bit 0) and SN (bit 1).
func testResolve(s string) (jurisdiction.Mask, error) {
	switch s {
	case "MA":
		return 1, nil
	case "SN":
		return 2, nil
	}
	return 0, fmt.Errorf("unknown jurisdiction %q", s)
}

func acl(principal string, t ResourceType, pat PatternType, name string, op Action, perm Permission, js ...string) ACL {
	a := ACL{Principal: principal, ResourceType: t, Pattern: pat, Name: name, Operation: op, Permission: perm, Jurisdictions: js}
	a.Normalize()
	return a
}

func user(name string) Principal { return Principal{User: name, Mechanism: ScramSHA256} }

func TestACLAuthorizer(t *testing.T) {
	z := NewACLAuthorizer(testResolve, nil)
	z.Set([]ACL{
		acl("User:alice", Pipeline, Literal, "payments", Write, Allow),
		acl("User:alice", Pipeline, Prefixed, "pay", Read, Allow),
		acl("User:alice", Pipeline, Literal, "payroll", Read, Deny),
		acl("User:alice", Group, Prefixed, "billing-", Read, Allow),
		acl("User:bob", Pipeline, Literal, "*", All, Allow),
		acl("User:bob", Pipeline, Prefixed, "secret", All, Deny),
		acl("User:*", Pipeline, Literal, "public", Read, Allow),
		acl("User:*", Pipeline, Literal, "closed", Write, Deny),
		acl("User:carol", Cluster, Literal, "", Alter, Allow),
		acl("User:carol", Pipeline, Literal, "closed", Write, Allow),
		acl("User:dave", Cluster, Literal, "", AlterConfigs, Allow),
		acl("User:erin", TransactionalID, Literal, "tx1", Write, Allow),
	})
	cases := []struct {
		p    Principal
		a    Action
		r    Resource
		want bool
	}{
		{user("alice"), Write, PipelineResource("payments"), true},
		{user("alice"), Read, PipelineResource("payments"), true},    // prefix pay
		{user("alice"), Read, PipelineResource("paying"), true},      // prefix pay
		{user("alice"), Read, PipelineResource("pa"), false},         // shorter than the prefix
		{user("alice"), Read, PipelineResource("payroll"), false},    // deny wins
		{user("alice"), Describe, PipelineResource("payroll"), true}, // a deny of read does not deny describe
		{user("alice"), Write, PipelineResource("paying"), false},
		{user("alice"), Describe, PipelineResource("payments"), true}, // implied by write and read
		{user("alice"), Delete, PipelineResource("payments"), false},
		{user("alice"), Read, GroupResource("billing-1"), true},
		{user("alice"), Describe, GroupResource("billing-1"), true},
		{user("alice"), Read, GroupResource("other"), false},
		{user("alice"), Read, PipelineResource("public"), true}, // User:*
		{user("alice"), IdempotentWrite, ClusterResource, true}, // KIP-679: writes payments
		{user("alice"), Alter, ClusterResource, false},
		{user("bob"), Delete, PipelineResource("anything"), true},
		{user("bob"), Read, PipelineResource("secrets"), false},   // deny all by prefix
		{user("bob"), Write, PipelineResource("closed"), false},   // User:* deny
		{user("carol"), Write, PipelineResource("closed"), false}, // User:* deny beats carol's allow
		{user("carol"), Alter, ClusterResource, true},
		{user("carol"), Describe, ClusterResource, true},
		{user("carol"), AlterConfigs, ClusterResource, false},
		{user("dave"), DescribeConfigs, ClusterResource, true}, // implied by alter_configs
		{user("dave"), Describe, ClusterResource, false},
		{user("dave"), IdempotentWrite, ClusterResource, false},
		{user("erin"), Write, TransactionalIDResource("tx1"), true},
		{user("erin"), Describe, TransactionalIDResource("tx1"), true},
		{user("erin"), Write, TransactionalIDResource("tx2"), false},
		{user("nobody"), Read, PipelineResource("payments"), false},
		{user("nobody"), Read, PipelineResource("public"), true},
		{Principal{User: "root", Superuser: true}, Alter, ClusterResource, true},
		{Anonymous, Read, PipelineResource("public"), false},
	}
	for _, c := range cases {
		err := z.Authorize(c.p, c.a, c.r)
		if (err == nil) != c.want {
			t.Errorf("%s %s %s: allowed %v, want %v (%v)", c.p.User, c.a, c.r, err == nil, c.want, err)
		}
		if err != nil && !errors.Is(err, result.ErrUnauthorized) {
			t.Errorf("%s %s %s: %v does not match ErrUnauthorized", c.p.User, c.a, c.r, err)
		}
	}
	err := z.Authorize(user("alice"), Delete, PipelineResource("payments"))
	if err == nil || !strings.Contains(err.Error(), "sense acl add --user alice --pipeline payments --operation delete") {
		t.Errorf("denial: %v", err)
	}
	if err := z.Authorize(user("alice"), Read, PipelineResource("payroll")); err == nil || !strings.Contains(err.Error(), "deny ACL") {
		t.Errorf("denial by a deny ACL: %v", err)
	}
	// Set replaces the ACLs.
	z.Set(nil)
	if z.Authorize(user("alice"), Write, PipelineResource("payments")) == nil || z.Len() != 0 {
		t.Error("allowed after every ACL was removed")
	}
}

func TestReadLimit(t *testing.T) {
	z := NewACLAuthorizer(testResolve, nil)
	z.Set([]ACL{
		acl("User:sn", Pipeline, Literal, "events", Read, Allow, "SN"),
		acl("User:both", Pipeline, Literal, "events", Read, Allow, "SN", "MA"),
		acl("User:either", Pipeline, Literal, "events", Read, Allow, "SN"),
		acl("User:either", Pipeline, Prefixed, "ev", Read, Allow, "MA"),
		acl("User:mixed", Pipeline, Literal, "events", Read, Allow, "SN"),
		acl("User:mixed", Pipeline, Literal, "*", Read, Allow),
		acl("User:bad", Pipeline, Literal, "events", Read, Allow, "XX"), // not in the registry: grants nothing
	})
	const ma, sn = jurisdiction.Mask(1), jurisdiction.Mask(2)
	cases := []struct {
		user    string
		limited bool
		allows  map[jurisdiction.Mask]bool
	}{
		{"sn", true, map[jurisdiction.Mask]bool{sn: true, ma | sn: true, ma: false, 0: false}},
		{"both", true, map[jurisdiction.Mask]bool{sn: false, ma | sn: true, ma: false}},
		{"either", true, map[jurisdiction.Mask]bool{sn: true, ma: true, ma | sn: true, 4: false}},
		{"mixed", false, map[jurisdiction.Mask]bool{sn: true, ma: true, 0: true}},
		{"nobody", true, map[jurisdiction.Mask]bool{sn: false, ma: false}},
	}
	for _, c := range cases {
		l := z.ReadLimit(user(c.user), "events")
		if l.Limited() != c.limited {
			t.Errorf("%s: limited %v, want %v", c.user, l.Limited(), c.limited)
		}
		for m, want := range c.allows {
			if l.Allows(m) != want {
				t.Errorf("%s: mask %b allowed %v, want %v", c.user, m, !want, want)
			}
		}
	}
	if z.Authorize(user("bad"), Read, PipelineResource("events")) == nil {
		t.Error("an ACL with an unknown jurisdiction allowed a read")
	}
	if l := z.ReadLimit(Principal{User: "root", Superuser: true}, "events"); l.Limited() {
		t.Error("a superuser is limited")
	}
	if l := ReadLimitOf(DefaultAuthorizer{Enabled: true}, user("sn"), "events"); l.Limited() {
		t.Error("the default authorizer limits")
	}
}

func TestACLValidate(t *testing.T) {
	bad := map[string]ACL{
		"principal":         {Principal: "alice", ResourceType: Pipeline, Name: "p", Operation: Read, Permission: Allow},
		"principal \"User:": {Principal: "User:a b", ResourceType: Pipeline, Name: "p", Operation: Read, Permission: Allow},
		"does not apply":    {Principal: "User:a", ResourceType: Group, Name: "g", Operation: Write, Permission: Allow},
		"host":              {Principal: "User:a", ResourceType: Pipeline, Name: "p", Operation: Read, Permission: Allow, Host: "10.0.0.1"},
		"jurisdictions limit": {Principal: "User:a", ResourceType: Pipeline, Name: "p", Operation: Write, Permission: Allow,
			Jurisdictions: []string{"SN"}},
		"deny read":     {Principal: "User:a", ResourceType: Pipeline, Name: "p", Operation: Read, Permission: Deny, Jurisdictions: []string{"SN"}},
		"prefixed":      {Principal: "User:a", ResourceType: Pipeline, Pattern: Prefixed, Name: "*", Operation: Read, Permission: Allow},
		"resource name": {Principal: "User:a", ResourceType: Pipeline, Operation: Read, Permission: Allow},
		"kafka-cluster": {Principal: "User:a", ResourceType: Cluster, Name: "x", Operation: Alter, Permission: Allow},
		"permission":    {Principal: "User:a", ResourceType: Pipeline, Name: "p", Operation: Read},
		"resource type": {Principal: "User:a", Name: "p", Operation: Read, Permission: Allow},
	}
	for want, a := range bad {
		a.Normalize()
		err := a.Validate()
		if err == nil || !errors.Is(err, ErrInvalidACL) || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want an error about %q", a, err, want)
		}
	}
	good := acl("User:*", Pipeline, Literal, "p", Read, Allow, "sn", "MA", "SN")
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(good.Jurisdictions, ",") != "MA,SN" || good.KafkaHost() != "*;jurisdictions=MA,SN" {
		t.Errorf("normalized: %+v, host %q", good, good.KafkaHost())
	}
	b, err := json.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"principal":"User:*","resource_type":"pipeline","pattern":"literal","name":"p","operation":"read","permission":"allow","host":"*","jurisdictions":["MA","SN"]}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
	var back ACL
	if err := json.Unmarshal(b, &back); err != nil || !back.Equal(good) {
		t.Errorf("round trip: %+v %v", back, err)
	}
	for s, want := range map[string]Action{"produce": Write, "consume": Read, "Describe-Configs": DescribeConfigs, "ALL": All} {
		if a, err := ParseOperation(s); err != nil || a != want {
			t.Errorf("ParseOperation(%q) = %v, %v", s, a, err)
		}
	}
	if _, err := ParseOperation("fly"); err == nil || !strings.Contains(err.Error(), "produce, consume") {
		t.Errorf("ParseOperation(fly): %v", err)
	}
}

func TestACLFilter(t *testing.T) {
	lit := acl("User:alice", Pipeline, Literal, "payments", Read, Allow)
	pre := acl("User:alice", Pipeline, Prefixed, "pay", Read, Allow)
	star := acl("User:bob", Pipeline, Literal, "*", Write, Deny)
	grp := acl("User:alice", Group, Literal, "payments", Read, Allow)
	lim := acl("User:carol", Pipeline, Literal, "payments", Read, Allow, "SN")
	all := []ACL{lit, pre, star, grp, lim}
	cases := []struct {
		f    ACLFilter
		want []ACL
	}{
		{ACLFilter{}, all},
		{ACLFilter{ResourceType: Pipeline, Pattern: Match, Name: "payments"}, []ACL{lit, pre, star, lim}},
		{ACLFilter{ResourceType: Pipeline, Pattern: Match, Name: "other"}, []ACL{star}},
		{ACLFilter{Pattern: Literal, Name: "payments"}, []ACL{lit, grp, lim}},
		{ACLFilter{Pattern: Prefixed}, []ACL{pre}},
		{ACLFilter{Name: "pay"}, []ACL{pre}},
		{ACLFilter{Principal: "User:bob"}, []ACL{star}},
		{ACLFilter{Permission: Deny}, []ACL{star}},
		{ACLFilter{Operation: Write}, []ACL{star}},
		{ACLFilter{Host: "*;jurisdictions=SN"}, []ACL{lim}},
		{ACLFilter{Host: "*"}, all},
	}
	for _, c := range cases {
		var got []ACL
		for _, a := range all {
			if c.f.Matches(a) {
				got = append(got, a)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%+v: got %v, want %v", c.f, got, c.want)
		}
	}
}

func TestFileStoreACLs(t *testing.T) {
	fs := vfs.NewMem()
	fs.MkdirAll("/d")
	path := filepath.Join("/d", FileName)
	s, err := OpenFileStore(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	a := acl("User:alice", Pipeline, Literal, "p", Read, Allow, "SN")
	b := acl("User:*", Group, Prefixed, "g", Read, Allow)
	if _, err := s.CreateACLs([]ACL{a, b, a}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutUser(mustUser(t, "alice", "pw")); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenFileStore(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.ACLs(); len(got) != 2 || !got[0].Equal(a) || !got[1].Equal(b) {
		t.Fatalf("reopened: %v", got)
	}
	if left, err := s2.DeleteACLs([]ACL{a}); err != nil || len(left) != 1 {
		t.Fatalf("delete: %v %v", left, err)
	}
	s3, _ := OpenFileStore(fs, path)
	if got := s3.ACLs(); len(got) != 1 || !got[0].Equal(b) {
		t.Fatalf("after delete: %v", got)
	}
	if _, ok := s3.User("alice"); !ok {
		t.Fatal("the user was lost")
	}
}

// referenceAllowed is Kafka's decision written plainly over the list.
func referenceAllowed(acls []ACL, p Principal, a Action, r Resource) bool {
	if p.Superuser {
		return true
	}
	matches := func(x ACL) bool {
		if x.Principal != "User:"+p.User && x.Principal != WildcardPrincipal || x.ResourceType != r.Type {
			return false
		}
		if r.Type == Cluster {
			return true
		}
		if x.Pattern == Prefixed {
			return strings.HasPrefix(r.Name, x.Name)
		}
		return x.Name == r.Name || x.Name == "*"
	}
	allowOps := map[Action][]Action{Describe: {Describe, Read, Write, Delete, Alter}, DescribeConfigs: {DescribeConfigs, AlterConfigs}}
	ops := allowOps[a]
	if ops == nil {
		ops = []Action{a}
	}
	allowed := false
	for _, x := range acls {
		if !matches(x) {
			continue
		}
		if x.Permission == Deny && (x.Operation == a || x.Operation == All) {
			return false
		}
		if x.Permission == Allow && (x.Operation == All || slicesContains(ops, x.Operation)) {
			allowed = true
		}
	}
	return allowed
}

func slicesContains(s []Action, a Action) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}

// TestACLAuthorizerAgainstReference checks the index against the plain
// decision over random ACLs and names of a small alphabet (so that
// prefixes nest and collide), over many seeds.
func TestACLAuthorizerAgainstReference(t *testing.T) {
	for seed := int64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewPCG(uint64(seed), 0))
		word := func() string {
			b := make([]byte, 1+rng.IntN(5))
			for i := range b {
				b[i] = "ab"[rng.IntN(2)]
			}
			return string(b)
		}
		users := []string{"User:u1", "User:u2", WildcardPrincipal}
		ops := []Action{Read, Write, Describe, Delete, Alter, All}
		var acls []ACL
		for range 1 + rng.IntN(40) {
			a := ACL{Principal: users[rng.IntN(len(users))], ResourceType: Pipeline, Pattern: Literal, Name: word(),
				Operation: ops[rng.IntN(len(ops))], Permission: Allow}
			if rng.IntN(2) == 0 {
				a.Pattern = Prefixed
			}
			if rng.IntN(20) == 0 {
				a.Name, a.Pattern = "*", Literal
			}
			if rng.IntN(5) == 0 {
				a.Permission = Deny
			}
			a.Normalize()
			acls = append(acls, a)
		}
		z := NewACLAuthorizer(nil, nil)
		z.Set(acls)
		for range 200 {
			p := user([]string{"u1", "u2", "u3"}[rng.IntN(3)])
			r := PipelineResource(word())
			op := ops[rng.IntN(len(ops)-1)]
			got := z.Authorize(p, op, r) == nil
			if want := referenceAllowed(acls, p, op, r); got != want && !(op == IdempotentWrite) {
				t.Fatalf("seed %d: %s %s %s: allowed %v, reference %v; ACLs %v", seed, p.User, op, r, got, want, acls)
			}
		}
	}
}

func TestCertificateUser(t *testing.T) {
	id := tlsconf.Identity{Subject: pkix.Name{CommonName: "alice"}, EmailAddresses: []string{"ops@example.com"}}
	for _, c := range []struct {
		mapping, want string
		id            tlsconf.Identity
		verified, ok  bool
		fails         bool
	}{
		{"cn", "alice", id, true, true, false},
		{"email", "ops@example.com", id, true, true, false},
		{"", "", id, true, false, false},
		{"cn", "", id, false, false, false},
		{"cn", "", tlsconf.Identity{Subject: pkix.Name{CommonName: "Alice Smith"}}, true, false, true},
		{"email", "", tlsconf.Identity{}, true, false, true},
	} {
		a := NewAuthenticator(Options{Enabled: true, CertificateUser: c.mapping, Superusers: []string{"ops@example.com"}})
		p, ok, err := a.Certificate(c.id, c.verified)
		if ok != c.ok || p.User != c.want || (err != nil) != c.fails {
			t.Errorf("%q %+v: %+v %v %v", c.mapping, c.id.Subject, p, ok, err)
		}
		if ok && (p.Mechanism != Certificate || p.Superuser != (p.User == "ops@example.com")) {
			t.Errorf("%+v", p)
		}
	}
}
