package meta

import (
	"maps"
	"slices"

	"github.com/sensehq/sense/security"
)

// Users and tokens. user.put creates or replaces a user (its SCRAM
// credentials, never a password), user.delete removes one, token.key sets
// the key tokens are signed with, once: every node then checks any
// node's tokens. The state keeps them, so that a node authenticates from
// what it applied, without asking another.

// Ops of users and tokens.
const (
	OpUserPut    = "user.put"
	OpUserDelete = "user.delete"
	OpTokenKey   = "token.key"
)

func (c *Command) checkUser(s *State) error {
	switch c.Op {
	case OpUserPut:
		if c.User == nil {
			return invalid("user.put without a user")
		}
		if err := c.User.Validate(); err != nil {
			return invalid("%v", err)
		}
	case OpUserDelete:
		if _, ok := s.Users[c.Name]; !ok {
			return invalid("unknown user %q", c.Name)
		}
	case OpTokenKey:
		if len(c.TokenKey) != security.TokenKeyLen {
			return invalid("token.key of %d bytes, want %d", len(c.TokenKey), security.TokenKeyLen)
		}
		if s.TokenKey != nil {
			return invalid("the cluster has a token key already")
		}
	}
	return nil
}

func (s *State) applyUser(c *Command) bool {
	switch c.Op {
	case OpUserPut:
		// A fresh map: clones of the state share the old one.
		users := maps.Clone(s.Users)
		if users == nil {
			users = map[string]security.User{}
		}
		u := *c.User
		u.Credentials = slices.Clone(u.Credentials)
		users[u.Name] = u
		s.Users = users
	case OpUserDelete:
		users := maps.Clone(s.Users)
		delete(users, c.Name)
		s.Users = users
	case OpTokenKey:
		s.TokenKey = slices.Clone(c.TokenKey)
	}
	return true
}

// User returns a user as applied here.
func (s *Store) User(name string) (security.User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.st.Users[name]
	return u, ok
}

// Users returns every user as applied here, sorted by name.
func (s *Store) Users() []security.User {
	s.mu.Lock()
	users := s.st.Users
	s.mu.Unlock()
	out := slices.Collect(maps.Values(users))
	slices.SortFunc(out, func(a, b security.User) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// TokenKey returns the cluster's token key as applied here (nil before
// the first token.key).
func (s *Store) TokenKey() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.TokenKey
}
