package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The group coordinator: Kafka's classic consumer-group protocol
// (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), with client-side
// assignment. This node coordinates every group. Membership lives in
// memory: after a restart, members get UNKNOWN_MEMBER_ID and rejoin, as
// they do when a Kafka coordinator moves. Committed offsets are stored
// durably by the node (group.Store.Commit).
//
// A group moves between these states:
//
//	Empty               no members
//	PreparingRebalance  waiting for every member to (re)join, until the
//	                    longest rebalance timeout of the members; members
//	                    that have not rejoined by then are removed
//	CompletingRebalance the generation is formed; waiting for the leader's
//	                    SyncGroup with the assignment
//	Stable              assignments handed out; heartbeats keep members in
//
// A rebalance starts when a member joins, rejoins with other protocols,
// leaves, or misses its session timeout. The first join of an empty group
// waits InitialRebalanceDelay for others, so a group that starts together
// forms in one generation.
type groupState int8

const (
	groupEmpty groupState = iota
	groupPreparingRebalance
	groupCompletingRebalance
	groupStable
)

func (s groupState) String() string {
	switch s {
	case groupEmpty:
		return "Empty"
	case groupPreparingRebalance:
		return "PreparingRebalance"
	case groupCompletingRebalance:
		return "CompletingRebalance"
	case groupStable:
		return "Stable"
	}
	return "Dead"
}

// Session timeouts a member may ask for (Kafka's group.min/max.session.timeout.ms
// are 6 s and 30 min; the floor is lower here so tests and impatient
// clients may go lower).
const (
	minSessionTimeout = time.Second
	maxSessionTimeout = 30 * time.Minute
)

type coordinator struct {
	delay time.Duration // initial rebalance delay

	mu     sync.Mutex
	groups map[string]*consumerGroup
	// ticker: session and rebalance deadlines, checked every tick.
	ticking bool
	stop    chan struct{}
	stopped bool
}

type consumerGroup struct {
	name         string
	state        groupState
	protocolType string
	protocol     string // chosen for the current generation
	generation   int32
	leader       string
	members      map[string]*member
	// pending are member ids handed out with MEMBER_ID_REQUIRED (JoinGroup
	// v4+) that have not joined yet, with when they expire.
	pending map[string]time.Time
	// deadline ends PreparingRebalance: members not rejoined by then are
	// removed. notBefore delays completion of a first rebalance.
	deadline  time.Time
	notBefore time.Time
}

type member struct {
	id, instanceID     string
	clientID, host     string
	protocolType       string
	protocols          []kmsg.JoinGroupRequestProtocol
	session, rebalance time.Duration
	lastSeen           time.Time
	assignment         []byte
	join               chan *kmsg.JoinGroupResponse // waiting in JoinGroup
	joinVersion        int16
	sync               chan syncResult // waiting in SyncGroup
}

type syncResult struct {
	code       int16
	assignment []byte
}

func newCoordinator(delay time.Duration) *coordinator {
	return &coordinator{delay: delay, groups: map[string]*consumerGroup{}, stop: make(chan struct{})}
}

// close stops the ticker; waiting members are answered by their
// connections' contexts ending.
func (co *coordinator) close() {
	co.mu.Lock()
	defer co.mu.Unlock()
	if !co.stopped {
		co.stopped = true
		close(co.stop)
	}
}

func (co *coordinator) startTickerLocked() {
	if co.ticking || co.stopped {
		return
	}
	co.ticking = true
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-co.stop:
				return
			case now := <-t.C:
				co.tick(now)
			}
		}
	}()
}

// tick expires sessions and pending member ids and ends rebalances whose
// deadline passed.
func (co *coordinator) tick(now time.Time) {
	co.mu.Lock()
	defer co.mu.Unlock()
	for _, g := range co.groups {
		for id, exp := range g.pending {
			if now.After(exp) {
				delete(g.pending, id)
			}
		}
		switch g.state {
		case groupPreparingRebalance:
			g.maybeComplete(now)
		case groupCompletingRebalance, groupStable:
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
}

func (co *coordinator) group(name string, create bool) *consumerGroup {
	g := co.groups[name]
	if g == nil && create {
		g = &consumerGroup{name: name, members: map[string]*member{}, pending: map[string]time.Time{}}
		co.groups[name] = g
		co.startTickerLocked()
	}
	return g
}

func newMemberID(clientID string) string {
	var b [16]byte
	rand.Read(b[:])
	if clientID == "" {
		clientID = "member"
	}
	return clientID + "-" + hex.EncodeToString(b[:])
}

// remove drops a member, answering anything it waits for.
func (g *consumerGroup) remove(id string) {
	m := g.members[id]
	if m == nil {
		return
	}
	if m.join != nil {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.SetVersion(m.joinVersion)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		resp.Generation = -1
		m.join <- resp
		m.join = nil
	}
	if m.sync != nil {
		m.sync <- syncResult{code: kerr.UnknownMemberID.Code}
		m.sync = nil
	}
	delete(g.members, id)
	if g.leader == id {
		g.leader = ""
	}
}

// rebalance starts a rebalance (or ends the group's generation when no
// member is left). Members waiting in SyncGroup are told
// REBALANCE_IN_PROGRESS and rejoin.
func (g *consumerGroup) rebalance(now time.Time) {
	for _, m := range g.members {
		if m.sync != nil {
			m.sync <- syncResult{code: kerr.RebalanceInProgress.Code}
			m.sync = nil
		}
	}
	if len(g.members) == 0 {
		g.state = groupEmpty
		g.generation++
		g.protocol, g.leader, g.protocolType = "", "", ""
		return
	}
	if g.state != groupPreparingRebalance {
		g.state = groupPreparingRebalance
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
	if g.state != groupPreparingRebalance || now.Before(g.notBefore) {
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
	g.state = groupCompletingRebalance
	g.protocol = g.chooseProtocol()
	if g.leader == "" {
		ids := slices.Sorted(maps.Keys(g.members))
		g.leader = ids[0]
	}
	for _, m := range g.members {
		m.protocolType = g.protocolType
		m.lastSeen = now
		m.assignment = nil
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.SetVersion(m.joinVersion)
		resp.Generation = g.generation
		proto := g.protocol
		resp.Protocol = &proto
		resp.LeaderID = g.leader
		resp.MemberID = m.id
		if m.id == g.leader {
			for _, o := range g.members {
				jm := kmsg.NewJoinGroupResponseMember()
				jm.MemberID = o.id
				if o.instanceID != "" {
					iid := o.instanceID
					jm.InstanceID = &iid
				}
				jm.ProtocolMetadata = o.metadata(g.protocol)
				resp.Members = append(resp.Members, jm)
			}
		}
		m.join <- resp
		m.join = nil
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
// order of some member's preference (stable: the member with the smallest
// id).
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

// join handles JoinGroup; it blocks until the generation forms, the
// member is removed, or ctx ends.
func (co *coordinator) join(ctx context.Context, req *kmsg.JoinGroupRequest, clientID, host string) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.SetVersion(req.Version)
	resp.Generation = -1
	fail := func(code int16) *kmsg.JoinGroupResponse {
		resp.ErrorCode = code
		return resp
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID.Code)
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if session < minSessionTimeout || session > maxSessionTimeout {
		return fail(kerr.InvalidSessionTimeout.Code)
	}
	rebalance := session
	if req.Version >= 1 {
		rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
		if rebalance <= 0 {
			rebalance = session
		}
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}

	co.mu.Lock()
	now := time.Now()
	g := co.group(req.Group, true)
	if len(g.members) > 0 && req.ProtocolType != g.protocolType {
		co.mu.Unlock()
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	if len(g.members) > 0 {
		// The new protocols must share one with every other member.
		shared := false
		for _, p := range req.Protocols {
			ok := true
			for id, m := range g.members {
				if id != req.MemberID && !m.supports(p.Name) {
					ok = false
					break
				}
			}
			if ok {
				shared = true
				break
			}
		}
		if !shared {
			co.mu.Unlock()
			return fail(kerr.InconsistentGroupProtocol.Code)
		}
	}
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	id := req.MemberID
	m := g.members[id]
	switch {
	case id == "" && req.Version >= 4:
		// KIP-394: hand out an id; the client joins again with it.
		id = newMemberID(clientID)
		g.pending[id] = now.Add(session)
		co.mu.Unlock()
		resp.MemberID = id
		return fail(kerr.MemberIDRequired.Code)
	case id == "":
		id = newMemberID(clientID)
	case m == nil:
		if _, ok := g.pending[id]; !ok {
			co.mu.Unlock()
			return fail(kerr.UnknownMemberID.Code)
		}
	}
	delete(g.pending, id)
	if instance != "" {
		// A static member's instance id may be held by one member: a
		// newer join with it replaces the older member.
		for oid, o := range g.members {
			if oid != id && o.instanceID == instance {
				g.remove(oid)
			}
		}
	}
	if m == nil {
		m = &member{id: id}
		g.members[id] = m
	}
	if g.protocolType == "" {
		g.protocolType = req.ProtocolType
	}
	changed := !slices.EqualFunc(m.protocols, req.Protocols, func(a, b kmsg.JoinGroupRequestProtocol) bool {
		return a.Name == b.Name && string(a.Metadata) == string(b.Metadata)
	})
	m.instanceID, m.clientID, m.host = instance, clientID, host
	m.protocols = slices.Clone(req.Protocols)
	m.session, m.rebalance, m.lastSeen = session, rebalance, now
	if m.join != nil {
		// A second join of the same member replaces the first.
		old := kmsg.NewPtrJoinGroupResponse()
		old.SetVersion(m.joinVersion)
		old.ErrorCode = kerr.RebalanceInProgress.Code
		old.Generation = -1
		m.join <- old
	}
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	m.join, m.joinVersion = ch, req.Version

	if g.state == groupStable && !changed && id != g.leader {
		// A follower rejoining with nothing new gets the current
		// generation back without a rebalance.
		m.join = nil
		resp.Generation = g.generation
		proto := g.protocol
		resp.Protocol = &proto
		resp.LeaderID = g.leader
		resp.MemberID = id
		co.mu.Unlock()
		return resp
	}
	if g.state == groupEmpty {
		g.notBefore = now.Add(co.delay)
	}
	g.rebalance(now)
	co.mu.Unlock()

	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		// The connection is going away; the member stays until its
		// session or the rebalance deadline expires.
		return fail(kerr.RebalanceInProgress.Code)
	}
}

// checkMember validates a member id, generation and instance id in g;
// it returns 0 or an error code.
func (g *consumerGroup) checkMember(id string, generation int32, instance *string) int16 {
	m := g.members[id]
	if m == nil {
		if instance != nil {
			for _, o := range g.members {
				if o.instanceID == *instance {
					return kerr.FencedInstanceID.Code
				}
			}
		}
		return kerr.UnknownMemberID.Code
	}
	if instance != nil && m.instanceID != *instance {
		return kerr.FencedInstanceID.Code
	}
	if generation != g.generation {
		return kerr.IllegalGeneration.Code
	}
	return 0
}

// sync handles SyncGroup; a follower blocks until the leader's assignment
// arrives, a rebalance starts, or ctx ends.
func (co *coordinator) sync(ctx context.Context, req *kmsg.SyncGroupRequest) syncResult {
	co.mu.Lock()
	g := co.group(req.Group, false)
	if g == nil {
		co.mu.Unlock()
		return syncResult{code: kerr.UnknownMemberID.Code}
	}
	if code := g.checkMember(req.MemberID, req.Generation, req.InstanceID); code != 0 {
		co.mu.Unlock()
		return syncResult{code: code}
	}
	m := g.members[req.MemberID]
	m.lastSeen = time.Now()
	switch g.state {
	case groupPreparingRebalance:
		co.mu.Unlock()
		return syncResult{code: kerr.RebalanceInProgress.Code}
	case groupStable:
		a := m.assignment
		co.mu.Unlock()
		return syncResult{assignment: a}
	}
	// CompletingRebalance.
	if req.MemberID == g.leader {
		for _, a := range req.GroupAssignment {
			if o := g.members[a.MemberID]; o != nil {
				o.assignment = a.MemberAssignment
			}
		}
		g.state = groupStable
		now := time.Now()
		for _, o := range g.members {
			o.lastSeen = now
			if o.sync != nil {
				o.sync <- syncResult{assignment: o.assignment}
				o.sync = nil
			}
		}
		a := m.assignment
		co.mu.Unlock()
		return syncResult{assignment: a}
	}
	ch := make(chan syncResult, 1)
	if m.sync != nil {
		m.sync <- syncResult{code: kerr.RebalanceInProgress.Code}
	}
	m.sync = ch
	co.mu.Unlock()
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		return syncResult{code: kerr.RebalanceInProgress.Code}
	}
}

// heartbeat handles Heartbeat.
func (co *coordinator) heartbeat(req *kmsg.HeartbeatRequest) int16 {
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.group(req.Group, false)
	if g == nil {
		return kerr.UnknownMemberID.Code
	}
	if code := g.checkMember(req.MemberID, req.Generation, req.InstanceID); code != 0 {
		return code
	}
	g.members[req.MemberID].lastSeen = time.Now()
	if g.state == groupPreparingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

// leave removes members; it returns one code per member given.
func (co *coordinator) leave(group string, ids []string, instances []*string) []int16 {
	co.mu.Lock()
	defer co.mu.Unlock()
	codes := make([]int16, len(ids))
	g := co.group(group, false)
	left := false
	for i, id := range ids {
		if g == nil {
			codes[i] = kerr.UnknownMemberID.Code
			continue
		}
		if id == "" && instances[i] != nil {
			for oid, o := range g.members {
				if o.instanceID == *instances[i] {
					id = oid
				}
			}
		}
		m := g.members[id]
		switch {
		case m == nil:
			codes[i] = kerr.UnknownMemberID.Code
		case instances[i] != nil && m.instanceID != *instances[i]:
			codes[i] = kerr.FencedInstanceID.Code
		default:
			g.remove(id)
			left = true
		}
	}
	if left {
		g.rebalance(time.Now())
	}
	return codes
}

// checkCommit decides whether a member may commit offsets for a group: 0,
// or the error code for every partition of the request. A commit with
// generation -1 and no member id comes from a consumer that assigns
// partitions itself; it is accepted while the group has no members.
func (co *coordinator) checkCommit(group string, generation int32, memberID string, instance *string) int16 {
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.group(group, false)
	if generation < 0 && memberID == "" {
		if g != nil && len(g.members) > 0 {
			return kerr.UnknownMemberID.Code
		}
		return 0
	}
	if g == nil {
		return kerr.UnknownMemberID.Code
	}
	if code := g.checkMember(memberID, generation, instance); code != 0 {
		return code
	}
	if g.state == groupCompletingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	g.members[memberID].lastSeen = time.Now()
	return 0
}

// groupInfo is a snapshot of a group for DescribeGroups and ListGroups.
type groupInfo struct {
	name, state, protocolType, protocol string
	members                             []memberInfo
}

type memberInfo struct {
	id, instanceID, clientID, host string
	metadata, assignment           []byte
}

// describe returns a group's snapshot; ok is false for a group the
// coordinator does not know.
func (co *coordinator) describe(name string) (groupInfo, bool) {
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.groups[name]
	if g == nil {
		return groupInfo{name: name}, false
	}
	gi := groupInfo{name: name, state: g.state.String(), protocolType: g.protocolType, protocol: g.protocol}
	ids := slices.Sorted(maps.Keys(g.members))
	for _, id := range ids {
		m := g.members[id]
		mi := memberInfo{id: id, instanceID: m.instanceID, clientID: m.clientID, host: m.host}
		if g.state == groupStable || g.state == groupCompletingRebalance {
			mi.metadata = m.metadata(g.protocol)
		}
		if g.state == groupStable {
			mi.assignment = m.assignment
		}
		gi.members = append(gi.members, mi)
	}
	return gi, true
}

// names returns the groups the coordinator knows, sorted.
func (co *coordinator) names() []string {
	co.mu.Lock()
	defer co.mu.Unlock()
	return slices.Sorted(maps.Keys(co.groups))
}

// forget drops a group that has no members. known reports whether the
// coordinator knew the group, empty whether it had no members (and so
// was dropped).
func (co *coordinator) forget(name string) (known, empty bool) {
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.groups[name]
	if g == nil {
		return false, true
	}
	if len(g.members) > 0 {
		return true, false
	}
	delete(co.groups, name)
	return true, true
}
