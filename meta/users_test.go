package meta

import (
	"errors"
	"testing"

	"github.com/sensehq/sense/security"
)

func TestUserCommands(t *testing.T) {
	var s State
	u, err := security.UserWithPassword("alice", "pw", security.MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Clone()
	if !s.Apply(&Command{Op: OpUserPut, User: &u}) {
		t.Fatal("user.put not applied")
	}
	if _, ok := before.Users["alice"]; ok {
		t.Fatal("a clone taken before saw the change")
	}
	if got, ok := s.Users["alice"]; !ok || !got.Credentials[0].CheckPassword("pw") {
		t.Fatal("alice missing")
	}
	bad := security.User{Name: "bob"}
	if err := (&Command{Op: OpUserPut, User: &bad}).Check(&s); !errors.Is(err, ErrInvalid) {
		t.Fatalf("user without credentials: %v", err)
	}
	if err := (&Command{Op: OpUserDelete, Name: "bob"}).Check(&s); !errors.Is(err, ErrInvalid) {
		t.Fatalf("delete of an unknown user: %v", err)
	}
	key := security.NewTokenKey()
	if !s.Apply(&Command{Op: OpTokenKey, TokenKey: key}) || s.TokenKey == nil {
		t.Fatal("token.key not applied")
	}
	if s.Apply(&Command{Op: OpTokenKey, TokenKey: security.NewTokenKey()}) || string(s.TokenKey) != string(key) {
		t.Fatal("a second token.key replaced the first")
	}
	// Through JSON, as the log carries it.
	b, _ := EncodeCommand(&Command{Op: OpUserPut, User: &u})
	c, err := DecodeCommand(b)
	if err != nil || c.User == nil || c.User.Credentials[0].CheckPassword("pw") == false {
		t.Fatalf("round trip: %+v %v", c, err)
	}
	if !s.Apply(&Command{Op: OpUserDelete, Name: "alice"}) || len(s.Users) != 0 {
		t.Fatal("user.delete not applied")
	}
}
