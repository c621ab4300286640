package meta

import (
	"errors"
	"slices"
	"testing"
)

func seeded(t *testing.T) State {
	t.Helper()
	var s State
	c := Command{Op: OpSeed, Hubs: []HubState{{Name: "tangier", Status: "up"}, {Name: "dakhla", Status: "up", Deny: []string{"b", "a", "a"}}}}
	if !s.Apply(&c) || !s.Seeded {
		t.Fatalf("seed not applied: %+v", s)
	}
	return s
}

// TestApply: every op changes what it says and nothing else; a command
// Check refuses, or a second seed, changes nothing; a policy is a sorted
// set.
func TestApply(t *testing.T) {
	s := seeded(t)
	if h, _ := s.Hub("dakhla"); !slices.Equal(h.Deny, []string{"a", "b"}) {
		t.Fatalf("seeded deny list %v, want [a b]", h.Deny)
	}
	if s.Apply(&Command{Op: OpSeed, Hubs: []HubState{{Name: "x", Status: "up"}}}) || len(s.Hubs) != 2 {
		t.Fatalf("a second seed changed the state: %+v", s)
	}
	if !s.Apply(&Command{Op: OpHubStatus, Hub: "tangier", Status: "down"}) {
		t.Fatal("status change not applied")
	}
	if s.Apply(&Command{Op: OpHubStatus, Hub: "tangier", Status: "down"}) {
		t.Fatal("a status change to the same status reported a change")
	}
	if !s.Apply(&Command{Op: OpHubPolicy, Hub: "tangier", Deny: []string{"payments", "payments"}}) {
		t.Fatal("deny not applied")
	}
	if !s.Apply(&Command{Op: OpHubPolicy, Hub: "dakhla", Deny: []string{"c"}, Allow: []string{"a"}}) {
		t.Fatal("deny+allow not applied")
	}
	tg, _ := s.Hub("tangier")
	dk, _ := s.Hub("dakhla")
	if tg.Status != "down" || !slices.Equal(tg.Deny, []string{"payments"}) || !slices.Equal(dk.Deny, []string{"b", "c"}) || dk.Status != "up" {
		t.Fatalf("state %+v", s)
	}
	if !s.Apply(&Command{Op: OpHubSet, Hub: "tangier", Status: "up"}) {
		t.Fatal("hub.set not applied")
	}
	if tg, _ := s.Hub("tangier"); tg.Status != "up" || tg.Deny != nil {
		t.Fatalf("hub.set left %+v, want up with no deny list", tg)
	}
	if !s.Apply(&Command{Op: OpHubSet, Hub: "dakar", Status: "draining"}) || len(s.Hubs) != 3 {
		t.Fatalf("hub.set of a new hub did not add it: %+v", s)
	}
	before := s.Clone()
	for _, c := range []Command{
		{Op: OpHubStatus, Hub: "nope", Status: "up"},
		{Op: OpHubStatus, Hub: "tangier", Status: "sideways"},
		{Op: OpHubPolicy, Hub: "tangier"},
		{Op: OpHubPolicy, Hub: "tangier", Deny: []string{"p"}, Allow: []string{"p"}},
		{Op: "hub.delete", Hub: "tangier"},
	} {
		if err := c.Check(&s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: Check = %v, want ErrInvalid", c, err)
		}
		if s.Apply(&c) {
			t.Errorf("%+v was applied", c)
		}
	}
	if !slices.EqualFunc(before.Hubs, s.Hubs, func(a, b HubState) bool {
		return a.Name == b.Name && a.Status == b.Status && slices.Equal(a.Deny, b.Deny)
	}) {
		t.Fatalf("refused commands changed the state: %+v -> %+v", before, s)
	}
}

func TestCommandRoundTrip(t *testing.T) {
	c := Command{Op: OpHubPolicy, Hub: "tangier", Deny: []string{"payments"}, At: 42, By: "n2"}
	b, err := EncodeCommand(&c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCommand(b)
	if err != nil || got.Op != c.Op || got.Hub != c.Hub || !slices.Equal(got.Deny, c.Deny) || got.At != 42 || got.By != "n2" {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "{", "[]", `{"op":""}`, `{"hub":"x"}`, `{"op":"seed","hubs":"x"}`} {
		if _, err := DecodeCommand([]byte(bad)); err == nil {
			t.Errorf("DecodeCommand(%q) accepted it", bad)
		}
	}
}

// FuzzDecodeCommand: any bytes decode or are refused without a panic, and
// what decodes applies to a seeded state without a panic.
func FuzzDecodeCommand(f *testing.F) {
	for _, s := range []string{
		`{"op":"seed","hubs":[{"name":"a","status":"up"}]}`,
		`{"op":"hub.status","hub":"tangier","status":"down","at":1}`,
		`{"op":"hub.policy","hub":"tangier","deny":["p"],"allow":["q"]}`,
		`{"op":"hub.set","hub":"new","status":"up","deny":["x"]}`,
		`{"op":"hub.status","hub":"tangier","status":"down","at":-99999999999999999999}`,
		"\x00\xff", `{"op":1}`,
		`{"op":"leaders","leaders":[{"buffer":"p/tangier/0","leader":"n1","term":3},{"buffer":"p/tangier/0","leader":"n2","term":2}]}`,
		`{"op":"leaders","leaders":[{"buffer":"p/h/0","leader":"n1","term":18446744073709551615}]}`,
		`{"op":"leaders","leaders":[{"buffer":"p/h/0","leader":"n1","term":-1}]}`,
		`{"op":"leaders","leaders":[{"buffer":"/","leader":"","term":0}]}`,
		`{"op":"leaders","leaders":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := DecodeCommand(p)
		if err != nil {
			return
		}
		s := State{Seeded: true, Hubs: []HubState{{Name: "tangier", Status: "up"}},
			Leaders: map[string]BufferLeader{"p/tangier/0": {Buffer: "p/tangier/0", Leader: "n1", Term: 2}}}
		s.Apply(&c)
		// A report never moves a buffer to an older or equal term; only
		// creating or deleting its pipeline forgets it.
		l, ok := s.Leaders["p/tangier/0"]
		if ok && (l.Term < 2 || l.Term == 2 && l.Leader != "n1") || !ok && c.Op != OpCreate {
			t.Fatalf("%s left p/tangier/0 at %+v (kept %v)", p, l, ok)
		}
	})
}

// TestPipelinesAndProducerIDs: pipelines created at run time are a sorted
// set a delete removes from; producer id blocks never overlap.
func TestPipelinesAndProducerIDs(t *testing.T) {
	s := seeded(t)
	for _, p := range []string{"b", "a", "c"} {
		if !s.Apply(&Command{Op: OpCreate, Pipeline: p, Spec: []byte(`{}`)}) {
			t.Fatalf("create %s not applied", p)
		}
	}
	if s.Apply(&Command{Op: OpCreate, Pipeline: "a", Spec: []byte(`{}`)}) {
		t.Fatal("a second create of a was applied")
	}
	if !s.Apply(&Command{Op: OpDelete, Pipeline: "b"}) || s.Apply(&Command{Op: OpDelete, Pipeline: "b"}) {
		t.Fatal("delete of b not applied once")
	}
	if !slices.Equal(s.Pipelines, []string{"a", "c"}) || !s.HasPipeline("c") || s.HasPipeline("b") {
		t.Fatalf("pipelines %v", s.Pipelines)
	}
	if err := (&Command{Op: OpCreate, Pipeline: "x"}).Check(&s); !errors.Is(err, ErrInvalid) {
		t.Fatalf("create without a spec: %v", err)
	}
	var firsts []int64
	for _, n := range []string{"n1", "n2", "n1"} {
		if !s.Apply(&Command{Op: OpPIDs, By: n}) {
			t.Fatal("pids.alloc not applied")
		}
		firsts = append(firsts, s.PIDBlocks[n])
	}
	if firsts[0] < 1 || firsts[1] != firsts[0]+PIDBlock || firsts[2] != firsts[1]+PIDBlock || s.NextPID != firsts[2]+PIDBlock {
		t.Fatalf("blocks start at %v, next %d", firsts, s.NextPID)
	}
	if s.Apply(&Command{Op: OpPIDs}) {
		t.Fatal("pids.alloc without a node was applied")
	}
}

// TestDesignate: a re-designation records the designation it replaces
// (the proposer's, when the metadata has none yet) and when; naming the
// current one changes nothing; a clone does not share the former list.
func TestDesignate(t *testing.T) {
	s := seeded(t) // tangier seeded without a jurisdiction: the config's
	if err := (&Command{Op: OpDesignate, Hub: "tangier"}).Check(&s); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a re-designation naming no jurisdiction: %v", err)
	}
	if err := (&Command{Op: OpDesignate, Hub: "nope", Jurisdiction: "SN"}).Check(&s); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a re-designation of an unknown hub: %v", err)
	}
	if s.Apply(&Command{Op: OpDesignate, Hub: "tangier", Jurisdiction: "MA", From: "MA"}) {
		t.Fatal("designating a hub its own jurisdiction changed the state")
	}
	if !s.Apply(&Command{Op: OpDesignate, Hub: "tangier", Jurisdiction: "SN", From: "MA", At: 42}) {
		t.Fatal("re-designation not applied")
	}
	h, _ := s.Hub("tangier")
	if h.Jurisdiction != "SN" || !slices.Equal(h.Former, []string{"MA"}) || h.DesignatedAt != 42 {
		t.Fatalf("after MA -> SN: %+v", h)
	}
	c := s.Clone()
	// From is the proposer's view; the metadata's own designation wins.
	if !s.Apply(&Command{Op: OpDesignate, Hub: "tangier", Jurisdiction: "MA", From: "XX", At: 43}) {
		t.Fatal("second re-designation not applied")
	}
	h, _ = s.Hub("tangier")
	if h.Jurisdiction != "MA" || !slices.Equal(h.Former, []string{"MA", "SN"}) || h.DesignatedAt != 43 {
		t.Fatalf("after SN -> MA: %+v", h)
	}
	if ch, _ := c.Hub("tangier"); ch.Jurisdiction != "SN" || len(ch.Former) != 1 {
		t.Fatalf("a clone changed with the state: %+v", ch)
	}
}

// TestDeleteForgetsMoves: deleting a pipeline forgets its migration steps
// (a new pipeline of the same name must not be trimmed by them), keeps
// the audit log of moves and the steps of other pipelines, and leaves
// clones of the state as they were.
func TestDeleteForgetsMoves(t *testing.T) {
	s := seeded(t)
	for _, p := range []string{"a", "b"} {
		if !s.Apply(&Command{Op: OpCreate, Pipeline: p, Spec: []byte(`{}`)}) {
			t.Fatalf("create %s", p)
		}
		mv := Move{Source: p + "/tangier/0", Pipeline: p, Hub: "tangier", From: 0, To: 50}
		if !s.Apply(&Command{Op: OpMovePlan, Move: &mv}) || !s.Apply(&Command{Op: OpMoveDone, Move: &mv}) {
			t.Fatalf("move of %s", p)
		}
	}
	c := s.Clone()
	if !s.Apply(&Command{Op: OpDelete, Pipeline: "a"}) {
		t.Fatal("delete")
	}
	if _, ok := s.Moves["a/tangier/0"]; ok {
		t.Fatal("the deleted pipeline's step is still there")
	}
	if _, ok := s.Moves["b/tangier/0"]; !ok || len(s.MoveLog) != 2 {
		t.Fatalf("other steps or the audit log lost: %v, %d logged", s.Moves, len(s.MoveLog))
	}
	if _, ok := c.Moves["a/tangier/0"]; !ok {
		t.Fatal("a clone lost the step")
	}
	// A clone shares the audit log of moves; what is logged after does
	// not show in it.
	mv := Move{Source: "b/tangier/0", Pipeline: "b", Hub: "tangier", From: 50, To: 60}
	if !s.Apply(&Command{Op: OpMovePlan, Move: &mv}) || !s.Apply(&Command{Op: OpMoveDone, Move: &mv}) {
		t.Fatal("second move of b")
	}
	if len(s.MoveLog) != 3 || len(c.MoveLog) != 2 || c.MoveLog[1].To != 50 {
		t.Fatalf("audit log %d entries, its clone's %d (%+v)", len(s.MoveLog), len(c.MoveLog), c.MoveLog)
	}
}
