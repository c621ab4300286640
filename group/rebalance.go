package group

import (
	"maps"
	"slices"
	"time"
)

// State is where a group is in the rebalance protocol:
//
//	Empty               no members
//	PreparingRebalance  waiting for every member to (re)join, until the
//	                    longest rebalance timeout of the members; members
//	                    that have not rejoined by then are removed
//	CompletingRebalance the generation is formed; waiting for the leader's
//	                    Sync with the assignment
//	Stable              assignments handed out; heartbeats keep members in
//
// A rebalance starts when a member joins, rejoins with other protocols,
// leaves, or misses its session timeout. The first join of an empty group
// waits Config.InitialRebalanceDelay for others, so a group that starts
// together forms in one generation. Dead is the state Describe gives a
// group the coordinator does not know.
type State int8

// The states of a group.
const (
	StateEmpty State = iota
	StatePreparingRebalance
	StateCompletingRebalance
	StateStable
	StateDead
)

// String returns the state's name as Kafka's DescribeGroups gives it.
func (s State) String() string {
	switch s {
	case StateEmpty:
		return "Empty"
	case StatePreparingRebalance:
		return "PreparingRebalance"
	case StateCompletingRebalance:
		return "CompletingRebalance"
	case StateStable:
		return "Stable"
	}
	return "Dead"
}

// consumerGroup is one group's state, guarded by the coordinator's mutex.
type consumerGroup struct {
	name         string
	state        State
	protocolType string
	protocol     string // chosen for the current generation
	generation   int32
	leader       string
	members      map[string]*member
	// pending are member ids handed out with ErrMemberIDRequired that have
	// not joined yet, with when they expire.
	pending map[string]time.Time
	// deadline ends PreparingRebalance: members not rejoined by then are
	// removed. notBefore delays completion of a first rebalance.
	deadline  time.Time
	notBefore time.Time
}

type member struct {
	id, instanceID     string
	clientID, host     string
	protocols          []Protocol
	session, rebalance time.Duration
	lastSeen           time.Time
	assignment         []byte
	join               chan joinAnswer // waiting in Join
	sync               chan syncAnswer // waiting in Sync
}

type joinAnswer struct {
	result JoinResult
	err    error
}

type syncAnswer struct {
	assignment []byte
	err        error
}

// tick expires pending member ids and sessions and ends a rebalance whose
// deadline passed.
func (g *consumerGroup) tick(now time.Time) {
	for id, exp := range g.pending {
		if now.After(exp) {
			delete(g.pending, id)
		}
	}
	switch g.state {
	case StatePreparingRebalance:
		g.maybeComplete(now)
	case StateCompletingRebalance, StateStable:
		var expired []string
		for id, m := range g.members {
			if m.join == nil && m.sync == nil && now.Sub(m.lastSeen) > m.session {
				expired = append(expired, id)
			}
		}
		if len(expired) > 0 {
			for _, id := range expired {
				g.remove(id)
			}
			g.rebalance(now)
		}
	}
}

// accepts reports whether a join fits the group's members: the same
// protocol type, and a protocol every other member supports.
func (g *consumerGroup) accepts(req JoinRequest) bool {
	if req.ProtocolType != g.protocolType {
		return false
	}
	for _, p := range req.Protocols {
		ok := true
		for id, m := range g.members {
			if id != req.MemberID && !m.supports(p.Name) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// remove drops a member, answering anything it waits for.
func (g *consumerGroup) remove(id string) {
	m := g.members[id]
	if m == nil {
		return
	}
	if m.join != nil {
		m.join <- joinAnswer{JoinResult{Generation: -1}, ErrUnknownMemberID}
		m.join = nil
	}
	if m.sync != nil {
		m.sync <- syncAnswer{err: ErrUnknownMemberID}
		m.sync = nil
	}
	delete(g.members, id)
	if g.leader == id {
		g.leader = ""
	}
}

// rebalance starts a rebalance (or ends the group's generation when no
// member is left). Members waiting in Sync are told
// ErrRebalanceInProgress and rejoin.
func (g *consumerGroup) rebalance(now time.Time) {
	for _, m := range g.members {
		if m.sync != nil {
			m.sync <- syncAnswer{err: ErrRebalanceInProgress}
			m.sync = nil
		}
	}
	if len(g.members) == 0 {
		// The protocol type stays, for ListGroups and DescribeGroups (an
		// empty consumer group is still a "consumer" group, as in Kafka);
		// the next member to join an empty group sets it anew.
		g.state = StateEmpty
		g.generation++
		g.protocol, g.leader = "", ""
		return
	}
	if g.state != StatePreparingRebalance {
		g.state = StatePreparingRebalance
		var longest time.Duration
		for _, m := range g.members {
			longest = max(longest, m.rebalance)
		}
		g.deadline = now.Add(longest)
	}
	g.maybeComplete(now)
}

// maybeComplete forms the next generation once every member has rejoined,
// or at the deadline without those that have not.
func (g *consumerGroup) maybeComplete(now time.Time) {
	if g.state != StatePreparingRebalance || now.Before(g.notBefore) {
		return
	}
	all := true
	for _, m := range g.members {
		if m.join == nil {
			all = false
			break
		}
	}
	if !all {
		if now.Before(g.deadline) {
			return
		}
		for id, m := range g.members {
			if m.join == nil {
				delete(g.members, id)
				if g.leader == id {
					g.leader = ""
				}
			}
		}
	}
	if len(g.members) == 0 {
		g.rebalance(now)
		return
	}
	g.generation++
	g.state = StateCompletingRebalance
	g.protocol = g.chooseProtocol()
	ids := slices.Sorted(maps.Keys(g.members))
	if g.leader == "" {
		g.leader = ids[0]
	}
	for _, m := range g.members {
		m.lastSeen = now
		m.assignment = nil
		r := JoinResult{Generation: g.generation, Protocol: g.protocol, LeaderID: g.leader, MemberID: m.id}
		if m.id == g.leader {
			for _, id := range ids {
				o := g.members[id]
				r.Members = append(r.Members, MemberMetadata{MemberID: o.id, InstanceID: o.instanceID, Metadata: o.metadata(g.protocol)})
			}
		}
		m.join <- joinAnswer{result: r}
		m.join = nil
	}
}

// assign takes the leader's assignments: the group is Stable, and members
// waiting in Sync get theirs.
func (g *consumerGroup) assign(assignments []MemberAssignment, now time.Time) {
	for _, a := range assignments {
		if o := g.members[a.MemberID]; o != nil {
			o.assignment = a.Assignment
		}
	}
	g.state = StateStable
	for _, o := range g.members {
		o.lastSeen = now
		if o.sync != nil {
			o.sync <- syncAnswer{assignment: o.assignment}
			o.sync = nil
		}
	}
}

// chooseProtocol picks the protocol every member supports that most
// members prefer (each votes for its first supported choice); ties go to
// the leader's or the first member's order.
func (g *consumerGroup) chooseProtocol() string {
	candidates := g.commonProtocols()
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

// commonProtocols returns the protocols every member supports, in the
// order of some member's preference (stable: the leader, else the member
// with the smallest id).
func (g *consumerGroup) commonProtocols() []string {
	ids := slices.Sorted(maps.Keys(g.members))
	if g.leader != "" && g.members[g.leader] != nil {
		ids = append([]string{g.leader}, ids...)
	}
	var out []string
	for _, p := range g.members[ids[0]].protocols {
		ok := true
		for _, m := range g.members {
			if !m.supports(p.Name) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, p.Name)
		}
	}
	return out
}

// checkMember validates a member id, generation and instance id in g.
func (g *consumerGroup) checkMember(ref MemberRef) error {
	m := g.members[ref.MemberID]
	if m == nil {
		if ref.InstanceID != nil {
			for _, o := range g.members {
				if o.instanceID == *ref.InstanceID {
					return ErrFencedInstanceID
				}
			}
		}
		return ErrUnknownMemberID
	}
	if ref.InstanceID != nil && m.instanceID != *ref.InstanceID {
		return ErrFencedInstanceID
	}
	if ref.Generation != g.generation {
		return ErrIllegalGeneration
	}
	return nil
}

// info is the group's snapshot for Describe.
func (g *consumerGroup) info() GroupInfo {
	gi := GroupInfo{Name: g.name, State: g.state, ProtocolType: g.protocolType, Protocol: g.protocol}
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[id]
		mi := MemberInfo{MemberID: id, InstanceID: m.instanceID, ClientID: m.clientID, Host: m.host}
		if g.state == StateStable || g.state == StateCompletingRebalance {
			mi.Metadata = m.metadata(g.protocol)
		}
		if g.state == StateStable {
			mi.Assignment = m.assignment
		}
		gi.Members = append(gi.Members, mi)
	}
	return gi
}

func (m *member) supports(name string) bool {
	for _, p := range m.protocols {
		if p.Name == name {
			return true
		}
	}
	return false
}

func (m *member) metadata(name string) []byte {
	for _, p := range m.protocols {
		if p.Name == name {
			return p.Metadata
		}
	}
	return nil
}
