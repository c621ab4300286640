package meta

import (
	"errors"
	"testing"

	"github.com/sensehq/sense/security"
)

func TestACLCommands(t *testing.T) {
	var s State
	a := security.ACL{Principal: "User:alice", ResourceType: security.Pipeline, Name: "p", Operation: security.Read, Permission: security.Allow, Jurisdictions: []string{"SN"}}
	a.Normalize()
	b := security.ACL{Principal: "User:*", ResourceType: security.Cluster, Operation: security.Describe, Permission: security.Deny}
	b.Normalize()
	before := s.Clone()
	if !s.Apply(&Command{Op: OpACLCreate, ACLs: []security.ACL{a, b}}) || len(s.ACLs) != 2 {
		t.Fatalf("acl.create not applied: %v", s.ACLs)
	}
	if len(before.ACLs) != 0 {
		t.Fatal("a clone taken before saw the change")
	}
	if s.Apply(&Command{Op: OpACLCreate, ACLs: []security.ACL{a}}) || len(s.ACLs) != 2 {
		t.Fatal("an ACL present already was added again")
	}
	bad := a
	bad.Host = "10.0.0.1"
	if err := (&Command{Op: OpACLCreate, ACLs: []security.ACL{bad}}).Check(&s); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ACL with a host: %v", err)
	}
	if err := (&Command{Op: OpACLDelete}).Check(&s); !errors.Is(err, ErrInvalid) {
		t.Fatalf("acl.delete of nothing: %v", err)
	}
	// Through JSON, as the log carries it.
	enc, _ := EncodeCommand(&Command{Op: OpACLDelete, ACLs: []security.ACL{a}})
	c, err := DecodeCommand(enc)
	if err != nil || len(c.ACLs) != 1 || !c.ACLs[0].Equal(a) {
		t.Fatalf("round trip: %+v %v", c, err)
	}
	if !s.Apply(&c) || len(s.ACLs) != 1 || !s.ACLs[0].Equal(b) {
		t.Fatalf("acl.delete not applied: %v", s.ACLs)
	}
}
