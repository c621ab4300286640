package meta

import (
	"github.com/sensehq/sense/security"
)

// ACLs. acl.create adds ACLs (those present already are kept once),
// acl.delete removes ACLs named exactly (the proposer resolves a filter
// to the ACLs it matches). The state keeps them, so that every node
// authorizes from what it applied.

// Ops of ACLs.
const (
	OpACLCreate = "acl.create"
	OpACLDelete = "acl.delete"
)

func (c *Command) checkACL() error {
	if len(c.ACLs) == 0 {
		return invalid("%s names no ACL", c.Op)
	}
	for i := range c.ACLs {
		a := c.ACLs[i]
		a.Normalize()
		if !a.Equal(c.ACLs[i]) {
			return invalid("%s: ACL %d is not normalized: %s", c.Op, i, c.ACLs[i])
		}
		if err := a.Validate(); err != nil {
			return invalid("%s: %v", c.Op, err)
		}
	}
	return nil
}

func (s *State) applyACL(c *Command) bool {
	var changed bool
	switch c.Op {
	case OpACLCreate:
		s.ACLs, changed = security.AddACLs(s.ACLs, c.ACLs)
	case OpACLDelete:
		s.ACLs, changed = security.RemoveACLs(s.ACLs, c.ACLs)
	}
	return changed
}

// ACLs returns the ACLs as applied here, sorted (the slice is never
// changed in place: a change makes a new one).
func (s *Store) ACLs() []security.ACL {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.ACLs
}
