package group

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The coordinator's tests run on a fake clock: time moves only when a
// test advances it, and deadlines are checked when the test ticks. Every
// wait is bounded by the test's context.

type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	started int // tickers handed out
	stopped int // and stopped
	ticks   chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), ticks: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Ticker(time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started++
	return c.ticks, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.stopped++
	}
}

func (c *fakeClock) counts() (started, stopped int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started, c.stopped
}

func (c *fakeClock) add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

type harness struct {
	t   *testing.T
	ctx context.Context
	clk *fakeClock
	co  *Coordinator
}

func newHarness(t *testing.T, delay time.Duration) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	clk := newFakeClock()
	co := NewCoordinator(Config{InitialRebalanceDelay: delay, Clock: clk})
	t.Cleanup(co.Close)
	return &harness{t: t, ctx: ctx, clk: clk, co: co}
}

// advance moves the clock and checks the deadlines, as a tick does.
func (h *harness) advance(d time.Duration) {
	h.co.tick(h.clk.add(d))
}

// waitUntil waits for cond, which the coordinator's goroutines make true.
func (h *harness) waitUntil(what string, cond func() bool) {
	h.t.Helper()
	for !cond() {
		select {
		case <-h.ctx.Done():
			h.t.Fatalf("waiting for %s: %v", what, h.ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// inGroup reports whether the group has n members.
func (h *harness) inGroup(group string, n int) func() bool {
	return func() bool {
		gi, _ := h.co.Describe(group)
		return len(gi.Members) == n
	}
}

// waiting reports whether a member waits in Join (or, with sync, in Sync).
func (h *harness) waiting(group, id string, sync bool) func() bool {
	return func() bool {
		h.co.mu.Lock()
		defer h.co.mu.Unlock()
		g := h.co.groups[group]
		if g == nil || g.members[id] == nil {
			return false
		}
		if sync {
			return g.members[id].sync != nil
		}
		return g.members[id].join != nil
	}
}

// joinChan is the channel a member's join waits on.
func (h *harness) joinChan(group, id string) chan joinAnswer {
	h.co.mu.Lock()
	defer h.co.mu.Unlock()
	return h.co.groups[group].members[id].join
}

func (h *harness) join(req JoinRequest) <-chan joinAnswer {
	ch := make(chan joinAnswer, 1)
	go func() {
		r, err := h.co.Join(h.ctx, req)
		ch <- joinAnswer{r, err}
	}()
	return ch
}

func (h *harness) sync(ref MemberRef, as []MemberAssignment) <-chan syncAnswer {
	ch := make(chan syncAnswer, 1)
	go func() {
		a, err := h.co.Sync(h.ctx, ref, as)
		ch <- syncAnswer{a, err}
	}()
	return ch
}

func await[T any](h *harness, ch <-chan T) T {
	h.t.Helper()
	select {
	case v := <-ch:
		return v
	case <-h.ctx.Done():
		h.t.Fatalf("waiting for an answer: %v", h.ctx.Err())
		panic("unreachable")
	}
}

// answered reports whether ch holds an answer. Answers are sent under the
// coordinator's lock, before the call that caused them returns, so this
// is exact once no goroutine is left to answer.
func answered[T any](ch <-chan T) bool {
	return len(ch) > 0
}

func req(group, client string, protocols ...string) JoinRequest {
	r := JoinRequest{Group: group, ClientID: client, Host: "/10.0.0.1",
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 20 * time.Second, ProtocolType: "consumer"}
	for _, p := range protocols {
		r.Protocols = append(r.Protocols, Protocol{Name: p, Metadata: []byte(client + ":" + p)})
	}
	return r
}

func ref(group string, r JoinResult) MemberRef {
	return MemberRef{Group: group, MemberID: r.MemberID, Generation: r.Generation}
}

// form has the members join an empty group and waits out the initial
// rebalance delay; the leader (the member with the smallest id: clients
// are named in order) assigns each member "for <client id>".
func (h *harness) form(delay time.Duration, reqs ...JoinRequest) []JoinResult {
	h.t.Helper()
	var chs []<-chan joinAnswer
	for _, r := range reqs {
		chs = append(chs, h.join(r))
	}
	h.waitUntil("the members to join", h.inGroup(reqs[0].Group, len(reqs)))
	h.advance(delay)
	out := make([]JoinResult, len(reqs))
	for i, ch := range chs {
		a := await(h, ch)
		if a.err != nil {
			h.t.Fatalf("join of %s: %v", reqs[i].ClientID, a.err)
		}
		out[i] = a.result
	}
	leader := out[0]
	var as []MemberAssignment
	for i, r := range out {
		as = append(as, MemberAssignment{MemberID: r.MemberID, Assignment: []byte("for " + reqs[i].ClientID)})
	}
	var syncs []<-chan syncAnswer
	for _, r := range out[1:] {
		syncs = append(syncs, h.sync(ref(reqs[0].Group, r), nil))
	}
	for _, r := range out[1:] {
		h.waitUntil("the followers to sync", h.waiting(reqs[0].Group, r.MemberID, true))
	}
	if a, err := h.co.Sync(h.ctx, ref(reqs[0].Group, leader), as); err != nil || string(a) != "for "+reqs[0].ClientID {
		h.t.Fatalf("leader's sync: %q, %v", a, err)
	}
	for i, ch := range syncs {
		if a := await(h, ch); a.err != nil || string(a.assignment) != "for "+reqs[i+1].ClientID {
			h.t.Fatalf("sync of %s: %q, %v", reqs[i+1].ClientID, a.assignment, a.err)
		}
	}
	return out
}

// Members that join an empty group within the initial rebalance delay
// form one generation, with the protocol most of them prefer; the leader
// gets everyone's metadata and hands out the assignments.
func TestJoinFormsOneGeneration(t *testing.T) {
	h := newHarness(t, 3*time.Second)
	reqs := []JoinRequest{
		req("g", "c1", "range", "roundrobin"),
		req("g", "c2", "roundrobin", "range"),
		req("g", "c3", "roundrobin", "range"),
	}
	var chs []<-chan joinAnswer
	for _, r := range reqs {
		chs = append(chs, h.join(r))
	}
	h.waitUntil("three members", h.inGroup("g", 3))
	if gi, _ := h.co.Describe("g"); gi.State != StatePreparingRebalance {
		t.Fatalf("state %s, want PreparingRebalance", gi.State)
	}
	h.advance(2 * time.Second)
	for _, ch := range chs {
		if answered(ch) {
			t.Fatal("a join was answered before the initial rebalance delay")
		}
	}
	h.advance(time.Second)
	var rs []JoinResult
	for i, ch := range chs {
		a := await(h, ch)
		if a.err != nil {
			t.Fatalf("join %d: %v", i, a.err)
		}
		rs = append(rs, a.result)
	}
	leader := rs[0] // c1-... sorts first
	for i, r := range rs {
		if r.Generation != 1 || r.Protocol != "roundrobin" || r.LeaderID != leader.MemberID || !strings.HasPrefix(r.MemberID, reqs[i].ClientID+"-") {
			t.Fatalf("join %d: %+v", i, r)
		}
		if i > 0 && r.Members != nil {
			t.Fatalf("follower %d got the members: %+v", i, r.Members)
		}
	}
	if len(leader.Members) != 3 {
		t.Fatalf("leader got %d members", len(leader.Members))
	}
	for i, m := range leader.Members {
		if m.MemberID != rs[i].MemberID || string(m.Metadata) != reqs[i].ClientID+":roundrobin" {
			t.Fatalf("member %d: %+v", i, m)
		}
	}
	if gi, _ := h.co.Describe("g"); gi.State != StateCompletingRebalance || gi.Protocol != "roundrobin" || gi.ProtocolType != "consumer" {
		t.Fatalf("describe: %+v", gi)
	}
	if err := h.co.CheckCommit(ref("g", rs[1])); !errors.Is(err, ErrRebalanceInProgress) {
		t.Fatalf("commit before the assignment: %v", err)
	}

	// The followers wait in Sync for the leader's assignment.
	s1, s2 := h.sync(ref("g", rs[1]), nil), h.sync(ref("g", rs[2]), nil)
	h.waitUntil("the followers to sync", h.waiting("g", rs[1].MemberID, true))
	h.waitUntil("the followers to sync", h.waiting("g", rs[2].MemberID, true))
	as := []MemberAssignment{{rs[0].MemberID, []byte("p0")}, {rs[1].MemberID, []byte("p1")}, {rs[2].MemberID, []byte("p2")}, {"nobody", []byte("px")}}
	if a, err := h.co.Sync(h.ctx, ref("g", leader), as); err != nil || string(a) != "p0" {
		t.Fatalf("leader's sync: %q, %v", a, err)
	}
	for i, ch := range []<-chan syncAnswer{s1, s2} {
		if a := await(h, ch); a.err != nil || string(a.assignment) != fmt.Sprintf("p%d", i+1) {
			t.Fatalf("follower %d's sync: %q, %v", i+1, a.assignment, a.err)
		}
	}
	gi, _ := h.co.Describe("g")
	if gi.State != StateStable || len(gi.Members) != 3 {
		t.Fatalf("describe: %+v", gi)
	}
	for i, m := range gi.Members {
		if m.MemberID != rs[i].MemberID || m.ClientID != reqs[i].ClientID || m.Host != "/10.0.0.1" ||
			string(m.Assignment) != fmt.Sprintf("p%d", i) || string(m.Metadata) != reqs[i].ClientID+":roundrobin" {
			t.Fatalf("describe member %d: %+v", i, m)
		}
	}
	for _, r := range rs {
		if err := h.co.Heartbeat(ref("g", r)); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		if err := h.co.CheckCommit(ref("g", r)); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	stale := ref("g", rs[1])
	stale.Generation = 0
	if err := h.co.CheckCommit(stale); !errors.Is(err, ErrIllegalGeneration) {
		t.Fatalf("commit of a stale generation: %v", err)
	}
	if err := h.co.Heartbeat(stale); !errors.Is(err, ErrIllegalGeneration) {
		t.Fatalf("heartbeat of a stale generation: %v", err)
	}

	// A follower rejoining with nothing new gets the generation back.
	again := reqs[2]
	again.MemberID = rs[2].MemberID
	r, err := h.co.Join(h.ctx, again)
	if err != nil || r.Generation != 1 || r.LeaderID != leader.MemberID || r.Protocol != "roundrobin" {
		t.Fatalf("follower's rejoin: %+v, %v", r, err)
	}
	if gi, _ := h.co.Describe("g"); gi.State != StateStable {
		t.Fatalf("a follower's rejoin rebalanced: %s", gi.State)
	}
	if got := h.co.Names(); !slices.Equal(got, []string{"g"}) {
		t.Fatalf("names: %v", got)
	}
}

// A member that misses its session timeout is removed and the group
// rebalances; the others learn it from their heartbeats and rejoin.
func TestSessionTimeoutRebalances(t *testing.T) {
	h := newHarness(t, time.Second)
	rs := h.form(time.Second, req("g", "a", "range"), req("g", "b", "range"))
	a, b := rs[0], rs[1]

	h.advance(6 * time.Second)
	if err := h.co.Heartbeat(ref("g", b)); err != nil {
		t.Fatalf("b's heartbeat: %v", err)
	}
	h.advance(4 * time.Second) // a: 10 s since it was last seen, not more
	if gi, _ := h.co.Describe("g"); len(gi.Members) != 2 || gi.State != StateStable {
		t.Fatalf("a member left before its session expired: %+v", gi)
	}
	h.advance(time.Second + time.Millisecond)
	gi, _ := h.co.Describe("g")
	if len(gi.Members) != 1 || gi.Members[0].MemberID != b.MemberID || gi.State != StatePreparingRebalance {
		t.Fatalf("after a's session expired: %+v", gi)
	}
	if err := h.co.Heartbeat(ref("g", a)); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("a's heartbeat: %v", err)
	}
	if err := h.co.Heartbeat(ref("g", b)); !errors.Is(err, ErrRebalanceInProgress) {
		t.Fatalf("b's heartbeat: %v", err)
	}
	rejoin := req("g", "b", "range")
	rejoin.MemberID = b.MemberID
	r, err := h.co.Join(h.ctx, rejoin)
	if err != nil || r.Generation != 2 || r.LeaderID != b.MemberID || len(r.Members) != 1 {
		t.Fatalf("b's rejoin: %+v, %v", r, err)
	}
}

// A member that does not rejoin within the rebalance timeout is left out
// of the next generation.
func TestRebalanceDeadlineRemovesLaggards(t *testing.T) {
	h := newHarness(t, time.Second)
	ra, rb := req("g", "a", "range"), req("g", "b", "range")
	ra.RebalanceTimeout, rb.RebalanceTimeout = 5*time.Second, 5*time.Second
	rs := h.form(time.Second, ra, rb)
	a, b := rs[0], rs[1]

	rc := req("g", "c", "range")
	rc.RebalanceTimeout = 5 * time.Second
	c := h.join(rc)
	h.waitUntil("c to join", h.inGroup("g", 3))
	if err := h.co.Heartbeat(ref("g", b)); !errors.Is(err, ErrRebalanceInProgress) {
		t.Fatalf("b's heartbeat: %v", err)
	}
	ra.MemberID = a.MemberID
	aj := h.join(ra)
	h.waitUntil("a to rejoin", h.waiting("g", a.MemberID, false))
	h.advance(4 * time.Second)
	if answered(aj) || answered(c) {
		t.Fatal("the generation formed before the deadline without b")
	}
	h.advance(time.Second)
	ga, gc := await(h, aj), await(h, c)
	if ga.err != nil || gc.err != nil || ga.result.Generation != 2 || gc.result.Generation != 2 {
		t.Fatalf("joins: %+v, %+v", ga, gc)
	}
	if len(ga.result.Members) != 2 || ga.result.LeaderID != a.MemberID {
		t.Fatalf("leader's join: %+v", ga.result)
	}
	if err := h.co.Heartbeat(ref("g", b)); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("b's heartbeat after the deadline: %v", err)
	}
}

// A static member joining again under a new member id replaces the old
// member, which is fenced from then on.
func TestStaticMemberFencing(t *testing.T) {
	h := newHarness(t, time.Second)
	ib := "instance-b"
	ra, rb := req("g", "a", "range"), req("g", "b", "range")
	rb.InstanceID = &ib
	a, b := h.join(ra), h.join(rb)
	h.waitUntil("two members", h.inGroup("g", 2))
	h.advance(time.Second)
	ar, br := await(h, a).result, await(h, b).result
	if ar.Generation != 1 || br.Generation != 1 || ar.LeaderID != ar.MemberID {
		t.Fatalf("joins: %+v, %+v", ar, br)
	}
	if m := ar.Members[1]; m.MemberID != br.MemberID || m.InstanceID != ib {
		t.Fatalf("leader's view of b: %+v", m)
	}
	bref := ref("g", br)
	bref.InstanceID = &ib
	bs := h.sync(bref, nil)
	h.waitUntil("b to sync", h.waiting("g", br.MemberID, true))

	// b restarts: same instance id, no member id.
	b2 := h.join(rb)
	h.waitUntil("b's replacement", func() bool {
		gi, _ := h.co.Describe("g")
		return len(gi.Members) == 2 && !slices.ContainsFunc(gi.Members, func(m MemberInfo) bool { return m.MemberID == br.MemberID })
	})
	if s := await(h, bs); !errors.Is(s.err, ErrUnknownMemberID) {
		t.Fatalf("the replaced member's sync: %v", s.err)
	}
	for name, err := range map[string]error{
		"heartbeat":    h.co.Heartbeat(bref),
		"commit":       h.co.CheckCommit(bref),
		"leave":        h.co.Leave("g", []LeavingMember{{MemberID: br.MemberID, InstanceID: &ib}})[0],
		"dynamic beat": h.co.Heartbeat(ref("g", br)),
	} {
		want := ErrFencedInstanceID
		if name == "leave" || name == "dynamic beat" {
			want = ErrUnknownMemberID
		}
		if !errors.Is(err, want) {
			t.Errorf("replaced member's %s: %v, want %v", name, err, want)
		}
	}
	if _, err := h.co.Sync(h.ctx, bref, nil); !errors.Is(err, ErrFencedInstanceID) {
		t.Fatalf("replaced member's sync: %v", err)
	}

	ra.MemberID = ar.MemberID
	a2 := await(h, h.join(ra))
	nb := await(h, b2)
	if a2.err != nil || nb.err != nil || a2.result.Generation != 2 || nb.result.Generation != 2 || len(a2.result.Members) != 2 {
		t.Fatalf("generation 2: %+v, %+v", a2, nb)
	}
	other := "instance-x"
	nref := ref("g", nb.result)
	nref.InstanceID = &other
	if err := h.co.Heartbeat(nref); !errors.Is(err, ErrFencedInstanceID) {
		t.Fatalf("heartbeat with another instance id: %v", err)
	}
	// A static member may leave by instance id alone.
	if errs := h.co.Leave("g", []LeavingMember{{InstanceID: &ib}}); errs[0] != nil {
		t.Fatalf("leave by instance id: %v", errs[0])
	}
	if gi, _ := h.co.Describe("g"); len(gi.Members) != 1 || gi.Members[0].MemberID != ar.MemberID {
		t.Fatalf("after b left: %+v", gi)
	}
}

// Leaving rebalances the group without the members that left; the last
// one leaving empties it, and an empty group can be forgotten.
func TestLeave(t *testing.T) {
	h := newHarness(t, time.Second)
	rs := h.form(time.Second, req("g", "a", "range"), req("g", "b", "range"), req("g", "c", "range"))
	a, b, c := rs[0], rs[1], rs[2]

	if err := h.co.Forget("g"); !errors.Is(err, ErrNonEmptyGroup) {
		t.Fatalf("forget a group with members: %v", err)
	}
	other := "someone-else"
	errs := h.co.Leave("g", []LeavingMember{{MemberID: c.MemberID}, {MemberID: "nobody"}, {MemberID: b.MemberID, InstanceID: &other}})
	if errs[0] != nil || !errors.Is(errs[1], ErrUnknownMemberID) || !errors.Is(errs[2], ErrFencedInstanceID) {
		t.Fatalf("leave: %v", errs)
	}
	if errs := h.co.Leave("no-such-group", []LeavingMember{{MemberID: a.MemberID}}); !errors.Is(errs[0], ErrUnknownMemberID) {
		t.Fatalf("leave an unknown group: %v", errs)
	}
	for _, r := range []JoinResult{a, b} {
		if err := h.co.Heartbeat(ref("g", r)); !errors.Is(err, ErrRebalanceInProgress) {
			t.Fatalf("heartbeat after c left: %v", err)
		}
	}
	ra, rb := req("g", "a", "range"), req("g", "b", "range")
	ra.MemberID, rb.MemberID = a.MemberID, b.MemberID
	aj, bj := h.join(ra), h.join(rb)
	ga, gb := await(h, aj), await(h, bj)
	if ga.err != nil || gb.err != nil || ga.result.Generation != 2 || len(ga.result.Members) != 2 {
		t.Fatalf("rejoins: %+v, %+v", ga, gb)
	}

	// b waits for the assignment when a leaves: it is told to rejoin.
	bs := h.sync(ref("g", gb.result), nil)
	h.waitUntil("b to sync", h.waiting("g", b.MemberID, true))
	if errs := h.co.Leave("g", []LeavingMember{{MemberID: a.MemberID}}); errs[0] != nil {
		t.Fatalf("a leaves: %v", errs[0])
	}
	if s := await(h, bs); !errors.Is(s.err, ErrRebalanceInProgress) {
		t.Fatalf("b's sync when a left: %v", s.err)
	}
	if errs := h.co.Leave("g", []LeavingMember{{MemberID: b.MemberID}}); errs[0] != nil {
		t.Fatalf("b leaves: %v", errs[0])
	}
	gi, ok := h.co.Describe("g")
	if !ok || gi.State != StateEmpty || len(gi.Members) != 0 || gi.ProtocolType != "consumer" {
		t.Fatalf("empty group: %+v, %v; want Empty, no members, protocol type consumer (its last generation's, as Kafka shows it)", gi, ok)
	}
	// Empty: a consumer that assigns partitions itself may commit.
	if err := h.co.CheckCommit(MemberRef{Group: "g", Generation: -1}); err != nil {
		t.Fatalf("commit without a member: %v", err)
	}
	// An empty group takes a member of any protocol type, which becomes
	// the group's; it leaves, and the group is empty again.
	other2 := req("g", "d", "roundrobin")
	other2.ProtocolType = "connect"
	dj := h.join(other2)
	h.waitUntil("d to join", h.inGroup("g", 1))
	h.advance(time.Second)
	d := await(h, dj)
	if d.err != nil {
		t.Fatalf("a connect member joins the empty consumer group: %v", d.err)
	}
	if gi, _ := h.co.Describe("g"); gi.ProtocolType != "connect" {
		t.Fatalf("protocol type %q after a connect member joined the empty group, want connect", gi.ProtocolType)
	}
	if errs := h.co.Leave("g", []LeavingMember{{MemberID: d.result.MemberID}}); errs[0] != nil {
		t.Fatalf("d leaves: %v", errs[0])
	}
	if err := h.co.Forget("g"); err != nil {
		t.Fatalf("forget an empty group: %v", err)
	}
	if err := h.co.Forget("g"); !errors.Is(err, ErrGroupIDNotFound) {
		t.Fatalf("forget a forgotten group: %v", err)
	}
	if gi, ok := h.co.Describe("g"); ok || gi.State != StateDead || gi.State.String() != "Dead" {
		t.Fatalf("describe a forgotten group: %+v, %v", gi, ok)
	}
	if names := h.co.Names(); len(names) != 0 {
		t.Fatalf("names: %v", names)
	}
}

func TestJoinErrors(t *testing.T) {
	h := newHarness(t, 0)
	r := req("g", "a", "range")
	first, err := h.co.Join(h.ctx, r)
	if err != nil || first.Generation != 1 {
		t.Fatalf("first join: %+v, %v", first, err)
	}
	for _, c := range []struct {
		name string
		edit func(*JoinRequest)
		want error
	}{
		{"no group", func(r *JoinRequest) { r.Group = "" }, ErrInvalidGroupID},
		{"short session", func(r *JoinRequest) { r.SessionTimeout = MinSessionTimeout - 1 }, ErrInvalidSessionTimeout},
		{"long session", func(r *JoinRequest) { r.SessionTimeout = MaxSessionTimeout + 1 }, ErrInvalidSessionTimeout},
		{"no protocol type", func(r *JoinRequest) { r.ProtocolType = "" }, ErrInconsistentProtocol},
		{"no protocols", func(r *JoinRequest) { r.Protocols = nil }, ErrInconsistentProtocol},
		{"another protocol type", func(r *JoinRequest) { r.ProtocolType = "connect" }, ErrInconsistentProtocol},
		{"no shared protocol", func(r *JoinRequest) { r.Protocols = []Protocol{{Name: "sticky"}} }, ErrInconsistentProtocol},
		{"unknown member id", func(r *JoinRequest) { r.MemberID = "made-up" }, ErrUnknownMemberID},
	} {
		r := req("g", "b", "range")
		c.edit(&r)
		got, err := h.co.Join(h.ctx, r)
		if !errors.Is(err, c.want) || got.Generation != -1 || got.MemberID != "" {
			t.Errorf("%s: %+v, %v; want %v", c.name, got, err, c.want)
		}
	}

	for _, ref := range []MemberRef{{Group: "nope", MemberID: "x", Generation: 1}, {Group: "g", MemberID: "x", Generation: 1}} {
		if _, err := h.co.Sync(h.ctx, ref, nil); !errors.Is(err, ErrUnknownMemberID) {
			t.Errorf("sync %+v: %v", ref, err)
		}
		if err := h.co.Heartbeat(ref); !errors.Is(err, ErrUnknownMemberID) {
			t.Errorf("heartbeat %+v: %v", ref, err)
		}
		if err := h.co.CheckCommit(ref); !errors.Is(err, ErrUnknownMemberID) {
			t.Errorf("commit %+v: %v", ref, err)
		}
	}
	if err := h.co.CheckCommit(MemberRef{Generation: 1, MemberID: "x"}); !errors.Is(err, ErrInvalidGroupID) {
		t.Errorf("commit without a group: %v", err)
	}
	if err := h.co.CheckCommit(MemberRef{Group: "g", Generation: -1}); !errors.Is(err, ErrUnknownMemberID) {
		t.Errorf("commit without a member to a group with members: %v", err)
	}
	if err := h.co.CheckCommit(MemberRef{Group: "new", Generation: -1}); err != nil {
		t.Errorf("commit without a member to an unknown group: %v", err)
	}

	// KIP-394: an id first, which expires after a session unused.
	r = req("h", "b", "range")
	r.RequireMemberID = true
	got, err := h.co.Join(h.ctx, r)
	if !errors.Is(err, ErrMemberIDRequired) || !strings.HasPrefix(got.MemberID, "b-") || got.Generation != -1 {
		t.Fatalf("join without an id: %+v, %v", got, err)
	}
	r.MemberID = got.MemberID
	if got, err := h.co.Join(h.ctx, r); err != nil || got.MemberID != r.MemberID || got.Generation != 1 {
		t.Fatalf("join with the id handed out: %+v, %v", got, err)
	}
	r.MemberID = ""
	got, _ = h.co.Join(h.ctx, r)
	h.advance(r.SessionTimeout + time.Millisecond)
	r.MemberID = got.MemberID
	if _, err := h.co.Join(h.ctx, r); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("join with an expired id: %v", err)
	}
}

// A join whose context ends gives up with ErrRebalanceInProgress; a
// second join of the same member replaces the first.
func TestJoinGivesUp(t *testing.T) {
	h := newHarness(t, time.Second)
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() {
		_, err := h.co.Join(ctx, req("g", "a", "range"))
		done <- err
	}()
	h.waitUntil("a to join", h.inGroup("g", 1))
	cancel()
	if err := await(h, done); !errors.Is(err, ErrRebalanceInProgress) || !errors.Is(err, context.Canceled) {
		t.Fatalf("join whose context ended: %v", err)
	}
	gi, _ := h.co.Describe("g")
	r := req("g", "a", "range")
	r.MemberID = gi.Members[0].MemberID
	stale := h.joinChan("g", r.MemberID) // left by the join that gave up
	first := h.join(r)
	h.waitUntil("a to join again", func() bool { return h.joinChan("g", r.MemberID) != stale })
	second := h.join(r)
	if a := await(h, first); !errors.Is(a.err, ErrRebalanceInProgress) || a.result.Generation != -1 {
		t.Fatalf("the replaced join: %+v", a)
	}
	h.advance(time.Second)
	if a := await(h, second); a.err != nil || a.result.Generation != 1 {
		t.Fatalf("the second join: %+v", a)
	}
}

// The ticker starts with the first group, checks sessions on each tick,
// and is stopped and waited for by Close.
func TestCloseStopsTicker(t *testing.T) {
	h := newHarness(t, 0)
	if started, _ := h.clk.counts(); started != 0 {
		t.Fatalf("%d tickers before any group", started)
	}
	r := req("g", "a", "range")
	r.SessionTimeout = time.Second
	a, err := h.co.Join(h.ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.co.Sync(h.ctx, ref("g", a), nil); err != nil {
		t.Fatal(err)
	}
	if started, _ := h.clk.counts(); started != 1 {
		t.Fatalf("%d tickers after the first group", started)
	}
	now := h.clk.add(2 * time.Second)
	for range 2 { // the second tick is taken once the first is done
		select {
		case h.clk.ticks <- now:
		case <-h.ctx.Done():
			t.Fatal(h.ctx.Err())
		}
	}
	if gi, _ := h.co.Describe("g"); gi.State != StateEmpty {
		t.Fatalf("after a's session expired on a tick: %+v", gi)
	}
	h.co.Close()
	select {
	case <-h.co.done:
	default:
		t.Fatal("Close returned before the ticker did")
	}
	if _, stopped := h.clk.counts(); stopped != 1 {
		t.Fatalf("ticker stopped %d times", stopped)
	}
	h.co.Close()
	if _, err := h.co.Join(h.ctx, req("g2", "b", "range")); err != nil {
		t.Fatalf("join after Close: %v", err)
	}
	if started, _ := h.clk.counts(); started != 1 {
		t.Fatal("a ticker started after Close")
	}
}

// On the wall clock too, Close waits for the ticker.
func TestCloseWallClock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	co := NewCoordinator(Config{})
	co.Close() // before any ticker
	co = NewCoordinator(Config{})
	if r, err := co.Join(ctx, req("g", "a", "range")); err != nil || r.Generation != 1 {
		t.Fatalf("join: %+v, %v", r, err)
	}
	co.Close()
	select {
	case <-co.done:
	default:
		t.Fatal("Close returned before the ticker did")
	}
}

// TxnOffsetCommit v3's checks (KIP-447) are Kafka's: a member id, when
// given, must be a member's, a generation, when not negative, the group's;
// neither given passes even while the group has members.
func TestCheckTxnCommit(t *testing.T) {
	h := newHarness(t, 0)
	first, err := h.co.Join(h.ctx, req("g", "a", "range"))
	if err != nil || first.Generation != 1 {
		t.Fatalf("join: %+v, %v", first, err)
	}
	for _, c := range []struct {
		ref  MemberRef
		want error
	}{
		{MemberRef{Group: "g", MemberID: first.MemberID, Generation: 1}, nil},
		{MemberRef{Group: "g", Generation: -1}, nil},
		{MemberRef{Group: "g", MemberID: first.MemberID, Generation: -1}, nil},
		{MemberRef{Group: "g", Generation: 1}, nil},
		{MemberRef{Group: "g", MemberID: "x", Generation: 1}, ErrUnknownMemberID},
		{MemberRef{Group: "g", MemberID: first.MemberID, Generation: 2}, ErrIllegalGeneration},
		{MemberRef{Group: "g", Generation: 0}, ErrIllegalGeneration},
		{MemberRef{Group: "new", Generation: -1}, nil},
		{MemberRef{Group: "new", Generation: 0}, nil},
		{MemberRef{Group: "new", Generation: 3}, ErrIllegalGeneration},
		{MemberRef{Group: "new", MemberID: "x", Generation: -1}, ErrUnknownMemberID},
		{MemberRef{Generation: -1}, ErrInvalidGroupID},
	} {
		if err := h.co.CheckTxnCommit(c.ref); !errors.Is(err, c.want) {
			t.Errorf("%+v: %v, want %v", c.ref, err, c.want)
		}
	}
}
