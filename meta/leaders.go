package meta

import (
	"maps"
	"strings"
)

// The buffers' leaders. Each buffer is a raft group of its own; the node
// that leads one reports it (server/leaders.go), so that every node knows,
// for every buffer, the leader and raft term last reported, including for
// buffers it holds no replica of. A report is a leaders command that names
// a set of buffers; applying it keeps, per buffer, the entry of the highest
// term: a report whose term is not above the one known changes nothing,
// so a late or repeated report never moves a buffer back to an older
// leader. The entries of a pipeline go when it is deleted (and when one of
// its name is created, in case a late report slipped in between).

// MaxLeaders bounds the buffers one leaders command names; a node that
// leads more reports them in several commands.
const MaxLeaders = 512

// BufferLeader is one buffer's leader as reported: the node that led it
// and the raft term it led in.
type BufferLeader struct {
	Buffer string `json:"buffer"` // the raft group's key: pipeline/hub/partition
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
}

// pipelineOf returns the pipeline of a buffer key, "" when the key does
// not have the form pipeline/...
func pipelineOf(buffer string) string {
	i := strings.IndexByte(buffer, '/')
	if i <= 0 || i == len(buffer)-1 {
		return ""
	}
	return buffer[:i]
}

// checkLeaders checks the form of a leaders command. Whether an entry is
// newer than the one known is Apply's to decide, entry by entry.
func (c *Command) checkLeaders() error {
	if len(c.Leaders) == 0 || len(c.Leaders) > MaxLeaders {
		return invalid("leaders names %d buffers, want 1 to %d", len(c.Leaders), MaxLeaders)
	}
	for _, l := range c.Leaders {
		if pipelineOf(l.Buffer) == "" || l.Leader == "" || l.Term == 0 {
			return invalid("leaders entry %+v needs a buffer key pipeline/hub/partition, a node and a term above 0", l)
		}
	}
	return nil
}

// applyLeaders records each entry of c whose term is above the one known
// for its buffer, and reports whether any was.
func (s *State) applyLeaders(c *Command) bool {
	changed := false
	for _, l := range c.Leaders {
		if cur, ok := s.Leaders[l.Buffer]; ok && l.Term <= cur.Term {
			continue
		}
		if s.Leaders == nil {
			s.Leaders = map[string]BufferLeader{}
		}
		s.Leaders[l.Buffer] = l
		changed = true
	}
	return changed
}

// dropLeaders forgets the leaders of a pipeline's buffers.
func (s *State) dropLeaders(pipeline string) {
	for k := range s.Leaders {
		if pipelineOf(k) == pipeline {
			delete(s.Leaders, k)
		}
	}
}

// NewerLeaders returns the entries of ls that applying them would record:
// those whose term is above the one known for their buffer (or whose
// buffer has none). It keeps ls's order and does not modify ls.
func (s *State) NewerLeaders(ls []BufferLeader) []BufferLeader {
	var out []BufferLeader
	for _, l := range ls {
		if cur, ok := s.Leaders[l.Buffer]; !ok || l.Term > cur.Term {
			out = append(out, l)
		}
	}
	return out
}

// Leader returns a buffer's leader as last reported and applied here,
// without copying the whole state.
func (s *Store) Leader(buffer string) (BufferLeader, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.st.Leaders[buffer]
	return l, ok
}

// NewerLeaders is State.NewerLeaders on the state applied here.
func (s *Store) NewerLeaders(ls []BufferLeader) []BufferLeader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.NewerLeaders(ls)
}

// Leaders returns every buffer's leader as last reported and applied
// here, by buffer key.
func (s *Store) Leaders() map[string]BufferLeader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.st.Leaders)
}
