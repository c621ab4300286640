package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Session timeouts a member may ask for (Kafka's group.min/max.session.timeout.ms
// are 6 s and 30 min; the floor is lower here so tests and impatient
// clients may go lower).
const (
	MinSessionTimeout = time.Second
	MaxSessionTimeout = 30 * time.Minute
)

// tickInterval is how often the coordinator checks sessions and
// rebalance deadlines.
const tickInterval = 100 * time.Millisecond

// Config configures a Coordinator; the zero value is valid.
type Config struct {
	// InitialRebalanceDelay is how long the first join of an empty group
	// waits for more members before the first generation forms (Kafka's
	// group.initial.rebalance.delay.ms). Zero or negative: no delay.
	InitialRebalanceDelay time.Duration
	// Clock tells the time and when to check deadlines; nil means the
	// wall clock.
	Clock Clock
}

// Clock is the coordinator's time source.
type Clock interface {
	Now() time.Time
	// Ticker returns a channel that delivers the time every d, and a
	// function that stops it.
	Ticker(d time.Duration) (<-chan time.Time, func())
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) Ticker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Protocol is one assignment protocol a member supports, with its
// metadata (for Kafka consumers: the topics subscribed, encoded by the
// client; opaque here).
type Protocol struct {
	Name     string
	Metadata []byte
}

// JoinRequest is a member's request to join a group (JoinGroup).
type JoinRequest struct {
	Group string
	// MemberID is empty on a member's first join.
	MemberID string
	// InstanceID names a static member (KIP-345); nil or empty: dynamic.
	InstanceID       *string
	ClientID, Host   string // shown by Describe; the client id prefixes new member ids
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration // zero or negative: the session timeout
	ProtocolType     string
	Protocols        []Protocol // in the member's order of preference
	// RequireMemberID: a join without a member id is given one, with
	// ErrMemberIDRequired, and must join again with it (KIP-394).
	RequireMemberID bool
}

// JoinResult is what a join returns: the generation formed, or with
// ErrMemberIDRequired the id to join with. Generation is -1 with any
// error.
type JoinResult struct {
	Generation int32
	Protocol   string // chosen for the generation
	LeaderID   string
	MemberID   string
	// Members is every member's metadata for the chosen protocol, sorted
	// by member id; given to the leader only, which assigns.
	Members []MemberMetadata
}

// MemberMetadata is one member's metadata for the generation's protocol.
type MemberMetadata struct {
	MemberID   string
	InstanceID string // empty for a dynamic member
	Metadata   []byte
}

// MemberRef names a member in a generation of its group, as SyncGroup,
// Heartbeat and OffsetCommit do. A non-nil InstanceID must match the
// member's.
type MemberRef struct {
	Group      string
	MemberID   string
	Generation int32
	InstanceID *string
}

// MemberAssignment is the leader's assignment for one member.
type MemberAssignment struct {
	MemberID   string
	Assignment []byte
}

// LeavingMember names a member leaving its group: by member id, or, with
// an empty one, by instance id.
type LeavingMember struct {
	MemberID   string
	InstanceID *string
}

// GroupInfo is a snapshot of a group, as DescribeGroups shows it.
type GroupInfo struct {
	Name         string
	State        State
	ProtocolType string
	Protocol     string
	Members      []MemberInfo // sorted by member id
}

// MemberInfo is a snapshot of a member. Metadata is for the generation's
// protocol, once it is chosen; Assignment is set once the group is
// Stable.
type MemberInfo struct {
	MemberID, InstanceID, ClientID, Host string
	Metadata, Assignment                 []byte
}

// Coordinator runs consumer groups: membership, rebalances and the checks
// on commits. It is safe for concurrent use. Join and Sync block; every
// other method returns at once. Close stops its ticker.
type Coordinator struct {
	delay time.Duration
	clock Clock

	mu     sync.Mutex
	groups map[string]*consumerGroup
	// ticker: session and rebalance deadlines, checked every tick; it
	// starts with the first group and is stopped and waited for by Close.
	ticking bool
	stopped bool
	stop    chan struct{}
	done    chan struct{} // closed when the ticker has returned
}

// NewCoordinator returns a coordinator with no groups.
func NewCoordinator(cfg Config) *Coordinator {
	if cfg.Clock == nil {
		cfg.Clock = wallClock{}
	}
	return &Coordinator{
		delay:  max(cfg.InitialRebalanceDelay, 0),
		clock:  cfg.Clock,
		groups: map[string]*consumerGroup{},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
}

// Close stops the ticker and waits for it to return. Members waiting in
// Join or Sync are answered when their contexts end; the coordinator
// still answers calls, but no longer expires sessions or ends
// rebalances at their deadline.
func (co *Coordinator) Close() {
	co.mu.Lock()
	if !co.stopped {
		co.stopped = true
		close(co.stop)
	}
	ticking := co.ticking
	co.mu.Unlock()
	if ticking {
		<-co.done
	}
}

func (co *Coordinator) startTickerLocked() {
	if co.ticking || co.stopped {
		return
	}
	co.ticking = true
	ticks, stop := co.clock.Ticker(tickInterval)
	go func() {
		defer close(co.done)
		defer stop()
		for {
			select {
			case <-co.stop:
				return
			case now := <-ticks:
				co.tick(now)
			}
		}
	}()
}

// tick expires sessions and pending member ids and ends rebalances whose
// deadline passed.
func (co *Coordinator) tick(now time.Time) {
	co.mu.Lock()
	defer co.mu.Unlock()
	for _, g := range co.groups {
		g.tick(now)
	}
}

func (co *Coordinator) group(name string, create bool) *consumerGroup {
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

// Join adds a member to a group, or takes a member's rejoin; it blocks
// until the generation forms, the member is removed, or ctx ends (then
// the error is ErrRebalanceInProgress wrapping ctx.Err(): the member
// stays until its session or the rebalance deadline expires).
func (co *Coordinator) Join(ctx context.Context, req JoinRequest) (JoinResult, error) {
	fail := JoinResult{Generation: -1}
	if req.Group == "" {
		return fail, ErrInvalidGroupID
	}
	session := req.SessionTimeout
	if session < MinSessionTimeout || session > MaxSessionTimeout {
		return fail, ErrInvalidSessionTimeout
	}
	rebalance := req.RebalanceTimeout
	if rebalance <= 0 {
		rebalance = session
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return fail, ErrInconsistentProtocol
	}

	co.mu.Lock()
	now := co.clock.Now()
	g := co.group(req.Group, true)
	if len(g.members) > 0 && !g.accepts(req) {
		co.mu.Unlock()
		return fail, ErrInconsistentProtocol
	}
	instance := ""
	if req.InstanceID != nil {
		instance = *req.InstanceID
	}
	id := req.MemberID
	m := g.members[id]
	switch {
	case id == "" && req.RequireMemberID:
		id = newMemberID(req.ClientID)
		g.pending[id] = now.Add(session)
		co.mu.Unlock()
		fail.MemberID = id
		return fail, ErrMemberIDRequired
	case id == "":
		id = newMemberID(req.ClientID)
	case m == nil:
		if _, ok := g.pending[id]; !ok {
			co.mu.Unlock()
			return fail, ErrUnknownMemberID
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
	if len(g.members) == 1 { // the group was empty: any protocol type may join it
		g.protocolType = req.ProtocolType
	}
	changed := !slices.EqualFunc(m.protocols, req.Protocols, func(a, b Protocol) bool {
		return a.Name == b.Name && string(a.Metadata) == string(b.Metadata)
	})
	m.instanceID, m.clientID, m.host = instance, req.ClientID, req.Host
	m.protocols = slices.Clone(req.Protocols)
	m.session, m.rebalance, m.lastSeen = session, rebalance, now
	if m.join != nil {
		// A second join of the same member replaces the first.
		m.join <- joinAnswer{JoinResult{Generation: -1}, ErrRebalanceInProgress}
	}
	ch := make(chan joinAnswer, 1)
	m.join = ch

	if g.state == StateStable && !changed && id != g.leader {
		// A follower rejoining with nothing new gets the current
		// generation back without a rebalance.
		m.join = nil
		r := JoinResult{Generation: g.generation, Protocol: g.protocol, LeaderID: g.leader, MemberID: id}
		co.mu.Unlock()
		return r, nil
	}
	if g.state == StateEmpty {
		g.notBefore = now.Add(co.delay)
	}
	g.rebalance(now)
	co.mu.Unlock()

	select {
	case a := <-ch:
		return a.result, a.err
	case <-ctx.Done():
		return fail, fmt.Errorf("%w: %w", ErrRebalanceInProgress, ctx.Err())
	}
}

// Sync hands the leader's assignment to every member of the generation
// (SyncGroup) and returns the member's own: the leader's call gives the
// assignments, a follower's blocks until they arrive, a rebalance starts
// (ErrRebalanceInProgress), or ctx ends (ErrRebalanceInProgress wrapping
// ctx.Err()). A call in a Stable generation returns the member's
// assignment; assignments is used only from the leader.
func (co *Coordinator) Sync(ctx context.Context, ref MemberRef, assignments []MemberAssignment) ([]byte, error) {
	co.mu.Lock()
	g := co.group(ref.Group, false)
	if g == nil {
		co.mu.Unlock()
		return nil, ErrUnknownMemberID
	}
	if err := g.checkMember(ref); err != nil {
		co.mu.Unlock()
		return nil, err
	}
	m := g.members[ref.MemberID]
	m.lastSeen = co.clock.Now()
	switch g.state {
	case StatePreparingRebalance:
		co.mu.Unlock()
		return nil, ErrRebalanceInProgress
	case StateStable:
		a := m.assignment
		co.mu.Unlock()
		return a, nil
	}
	// CompletingRebalance.
	if ref.MemberID == g.leader {
		g.assign(assignments, co.clock.Now())
		a := m.assignment
		co.mu.Unlock()
		return a, nil
	}
	ch := make(chan syncAnswer, 1)
	if m.sync != nil {
		m.sync <- syncAnswer{err: ErrRebalanceInProgress}
	}
	m.sync = ch
	co.mu.Unlock()
	select {
	case a := <-ch:
		return a.assignment, a.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrRebalanceInProgress, ctx.Err())
	}
}

// Heartbeat keeps a member's session. ErrRebalanceInProgress tells the
// member to join again.
func (co *Coordinator) Heartbeat(ref MemberRef) error {
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.group(ref.Group, false)
	if g == nil {
		return ErrUnknownMemberID
	}
	if err := g.checkMember(ref); err != nil {
		return err
	}
	g.members[ref.MemberID].lastSeen = co.clock.Now()
	if g.state == StatePreparingRebalance {
		return ErrRebalanceInProgress
	}
	return nil
}

// Leave removes members from a group, which rebalances without them; it
// returns one error (or nil) per member given.
func (co *Coordinator) Leave(group string, members []LeavingMember) []error {
	co.mu.Lock()
	defer co.mu.Unlock()
	errs := make([]error, len(members))
	g := co.group(group, false)
	left := false
	for i, lm := range members {
		if g == nil {
			errs[i] = ErrUnknownMemberID
			continue
		}
		id := lm.MemberID
		if id == "" && lm.InstanceID != nil {
			for oid, o := range g.members {
				if o.instanceID == *lm.InstanceID {
					id = oid
				}
			}
		}
		m := g.members[id]
		switch {
		case m == nil:
			errs[i] = ErrUnknownMemberID
		case lm.InstanceID != nil && m.instanceID != *lm.InstanceID:
			errs[i] = ErrFencedInstanceID
		default:
			g.remove(id)
			left = true
		}
	}
	if left {
		g.rebalance(co.clock.Now())
	}
	return errs
}

// CheckCommit decides whether a member may commit offsets for its group,
// and keeps its session if so. A commit with a negative generation and no
// member id comes from a consumer that assigns partitions itself; it is
// accepted while the group has no members.
func (co *Coordinator) CheckCommit(ref MemberRef) error {
	if ref.Group == "" {
		return ErrInvalidGroupID
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.group(ref.Group, false)
	if ref.Generation < 0 && ref.MemberID == "" {
		if g != nil && len(g.members) > 0 {
			return ErrUnknownMemberID
		}
		return nil
	}
	if g == nil {
		return ErrUnknownMemberID
	}
	if err := g.checkMember(ref); err != nil {
		return err
	}
	if g.state == StateCompletingRebalance {
		return ErrRebalanceInProgress
	}
	g.members[ref.MemberID].lastSeen = co.clock.Now()
	return nil
}

// CheckTxnCommit decides whether a member may commit offsets for its group
// in a transaction (TxnOffsetCommit v3+, KIP-447), with Kafka's checks for
// it, which are looser than CheckCommit's: an instance id held by another
// member is ErrFencedInstanceID; a member id, when not empty, must be a
// member's (ErrUnknownMemberID); a generation, when not negative, must be
// the group's (ErrIllegalGeneration; a group the coordinator does not know
// is at generation 0). An empty member id and a negative generation skip
// the checks, as a transactional producer that is no group member (or
// speaks an older version) commits. A rebalance in progress does not
// refuse the commit: the transaction's fencing protects it.
func (co *Coordinator) CheckTxnCommit(ref MemberRef) error {
	if ref.Group == "" {
		return ErrInvalidGroupID
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.group(ref.Group, false)
	generation := int32(0)
	if g != nil {
		generation = g.generation
		if ref.InstanceID != nil && *ref.InstanceID != "" {
			for id, m := range g.members {
				if m.instanceID == *ref.InstanceID && id != ref.MemberID {
					return ErrFencedInstanceID
				}
			}
		}
	}
	switch {
	case ref.MemberID != "" && (g == nil || g.members[ref.MemberID] == nil):
		return ErrUnknownMemberID
	case ref.Generation >= 0 && ref.Generation != generation:
		return ErrIllegalGeneration
	}
	return nil
}

// Describe returns a snapshot of a group; ok is false (and the state
// Dead) for a group the coordinator does not know.
func (co *Coordinator) Describe(name string) (info GroupInfo, ok bool) {
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.groups[name]
	if g == nil {
		return GroupInfo{Name: name, State: StateDead}, false
	}
	return g.info(), true
}

// Names returns the groups the coordinator knows, sorted.
func (co *Coordinator) Names() []string {
	co.mu.Lock()
	defer co.mu.Unlock()
	return slices.Sorted(maps.Keys(co.groups))
}

// Forget drops a group that has no members: ErrGroupIDNotFound if the
// coordinator does not know it, ErrNonEmptyGroup (and kept) if it has
// members. Committed offsets are the Store's (Store.DeleteGroup).
func (co *Coordinator) Forget(name string) error {
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.groups[name]
	if g == nil {
		return ErrGroupIDNotFound
	}
	if len(g.members) > 0 {
		return ErrNonEmptyGroup
	}
	delete(co.groups, name)
	return nil
}
