package meta

// Re-designation. A hub's jurisdiction is the config file's until a
// hub.designate command changes it: the hub then takes events of the new
// jurisdiction only, and what it stored under a former one and whose mask
// does not include the new one must leave it (the migrator, package
// server). The former designations are kept, so that an audit can tell a
// record stored lawfully before the change (awaiting migration) from one
// that never belonged there (a violation).

func (c *Command) checkDesignate(s *State) error {
	if _, ok := s.Hub(c.Hub); !ok {
		return invalid("unknown hub %q", c.Hub)
	}
	if c.Jurisdiction == "" {
		return invalid("re-designation of hub %q names no jurisdiction", c.Hub)
	}
	return nil
}

func (s *State) applyDesignate(c *Command) bool {
	h := s.hub(c.Hub)
	cur := h.Jurisdiction
	if cur == "" {
		cur = c.From
	}
	if cur == c.Jurisdiction {
		return false
	}
	if cur != "" {
		h.Former = append(h.Former, cur)
	}
	h.Jurisdiction, h.DesignatedAt = c.Jurisdiction, c.At
	return true
}
