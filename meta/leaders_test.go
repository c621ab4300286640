package meta

import (
	"errors"
	"fmt"
	"maps"
	"testing"
)

func leaders(ls ...BufferLeader) *Command { return &Command{Op: OpLeaders, Leaders: ls} }

// TestLeadersApply: per buffer the entry of the highest term is kept,
// whatever order the reports are applied in; an entry of an older or
// equal term changes nothing; a command of which no entry is newer
// reports no change.
func TestLeadersApply(t *testing.T) {
	a1 := BufferLeader{Buffer: "payments/tangier/0", Leader: "n1", Term: 1}
	a3 := BufferLeader{Buffer: "payments/tangier/0", Leader: "n3", Term: 3}
	a3x := BufferLeader{Buffer: "payments/tangier/0", Leader: "n2", Term: 3}
	b2 := BufferLeader{Buffer: "payments/tangier/1", Leader: "n2", Term: 2}
	want := map[string]BufferLeader{a3.Buffer: a3, b2.Buffer: b2}
	for _, order := range [][]*Command{
		{leaders(a1), leaders(a3), leaders(b2)},
		{leaders(a3), leaders(a1), leaders(b2)},
		{leaders(b2, a3), leaders(a1)},
		{leaders(a1, a3, b2)},
		{leaders(a3, a1, b2)},
	} {
		s := seeded(t)
		for _, c := range order {
			s.Apply(c)
		}
		if !maps.Equal(s.Leaders, want) {
			t.Errorf("after %v: leaders %v, want %v", order, s.Leaders, want)
		}
	}

	s := seeded(t)
	if !s.Apply(leaders(a3)) {
		t.Fatal("a first report was not applied")
	}
	if s.Apply(leaders(a1)) || s.Leaders[a3.Buffer] != a3 {
		t.Fatalf("an older term was applied: %v", s.Leaders)
	}
	if s.Apply(leaders(a3x)) || s.Apply(leaders(a3)) || s.Leaders[a3.Buffer] != a3 {
		t.Fatalf("a report of the same term changed the entry: %v", s.Leaders)
	}
	if !s.Apply(leaders(a1, b2)) || s.Leaders[a3.Buffer] != a3 || s.Leaders[b2.Buffer] != b2 {
		t.Fatalf("a mixed report: %v", s.Leaders)
	}
	if got := s.NewerLeaders([]BufferLeader{a1, a3, a3x, {Buffer: b2.Buffer, Leader: "n1", Term: 5}, {Buffer: "orders/dakar/0", Leader: "n1", Term: 1}}); len(got) != 2 || got[0].Term != 5 || got[1].Buffer != "orders/dakar/0" {
		t.Fatalf("NewerLeaders = %v, want the term 5 entry and orders/dakar/0", got)
	}
}

// TestLeadersCheck: a leaders command names 1 to MaxLeaders buffers, each
// with a key pipeline/..., a node and a term; a refused one changes
// nothing.
func TestLeadersCheck(t *testing.T) {
	many := make([]BufferLeader, MaxLeaders+1)
	for i := range many {
		many[i] = BufferLeader{Buffer: fmt.Sprintf("p/h/%d", i), Leader: "n1", Term: 1}
	}
	s := seeded(t)
	for _, c := range []*Command{
		leaders(),
		leaders(many...),
		leaders(BufferLeader{Buffer: "nokey", Leader: "n1", Term: 1}),
		leaders(BufferLeader{Buffer: "/h/0", Leader: "n1", Term: 1}),
		leaders(BufferLeader{Buffer: "p/", Leader: "n1", Term: 1}),
		leaders(BufferLeader{Buffer: "p/h/0", Term: 1}),
		leaders(BufferLeader{Buffer: "p/h/0", Leader: "n1"}),
		leaders(BufferLeader{Buffer: "p/h/0", Leader: "n1", Term: 1}, BufferLeader{Buffer: "p/h/1", Leader: "n1"}),
	} {
		if err := c.Check(&s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%d entries: Check = %v, want ErrInvalid", len(c.Leaders), err)
		}
		if s.Apply(c) || len(s.Leaders) != 0 {
			t.Fatalf("a refused command was applied: %v", s.Leaders)
		}
	}
	if err := leaders(many[:MaxLeaders]...).Check(&s); err != nil {
		t.Fatalf("%d entries refused: %v", MaxLeaders, err)
	}
}

// TestLeadersDroppedWithPipeline: deleting a pipeline forgets its buffers'
// leaders and no other's; creating it again starts with none, so the new
// buffers' low terms are recorded.
func TestLeadersDroppedWithPipeline(t *testing.T) {
	s := seeded(t)
	for _, p := range []string{"orders", "orders2"} {
		if !s.Apply(&Command{Op: OpCreate, Pipeline: p, Spec: []byte(`{}`)}) {
			t.Fatalf("create %s", p)
		}
	}
	s.Apply(leaders(
		BufferLeader{Buffer: "orders/tangier/0", Leader: "n1", Term: 7},
		BufferLeader{Buffer: "orders/dakhla/1", Leader: "n2", Term: 4},
		BufferLeader{Buffer: "orders2/tangier/0", Leader: "n3", Term: 2},
		BufferLeader{Buffer: "payments/tangier/0", Leader: "n3", Term: 2},
	))
	if !s.Apply(&Command{Op: OpDelete, Pipeline: "orders"}) {
		t.Fatal("delete orders")
	}
	if len(s.Leaders) != 2 || s.Leaders["orders2/tangier/0"].Term != 2 || s.Leaders["payments/tangier/0"].Term != 2 {
		t.Fatalf("after deleting orders: %v", s.Leaders)
	}
	// A late report of the deleted pipeline's buffer, then the pipeline
	// created again: the new buffers' reports count from term 1.
	s.Apply(leaders(BufferLeader{Buffer: "orders/tangier/0", Leader: "n1", Term: 7}))
	if !s.Apply(&Command{Op: OpCreate, Pipeline: "orders", Spec: []byte(`{}`)}) {
		t.Fatal("create orders again")
	}
	if _, ok := s.Leaders["orders/tangier/0"]; ok {
		t.Fatalf("a re-created pipeline kept an old leader: %v", s.Leaders)
	}
	if !s.Apply(leaders(BufferLeader{Buffer: "orders/tangier/0", Leader: "n2", Term: 1})) {
		t.Fatal("the re-created buffer's first report was ignored")
	}
}

// TestLeadersClone: a clone's leaders are its own.
func TestLeadersClone(t *testing.T) {
	s := seeded(t)
	s.Apply(leaders(BufferLeader{Buffer: "p/h/0", Leader: "n1", Term: 1}))
	c := s.Clone()
	s.Apply(leaders(BufferLeader{Buffer: "p/h/0", Leader: "n2", Term: 2}, BufferLeader{Buffer: "p/h/1", Leader: "n2", Term: 2}))
	if len(c.Leaders) != 1 || c.Leaders["p/h/0"].Leader != "n1" {
		t.Fatalf("the clone changed with the original: %v", c.Leaders)
	}
	c.Apply(&Command{Op: OpDelete, Pipeline: "p"}) // refused: p is not a run-time pipeline
	c.dropLeaders("p")
	if len(s.Leaders) != 2 {
		t.Fatalf("the original changed with the clone: %v", s.Leaders)
	}
}

// TestLeadersRoundTrip: a leaders command survives its encoding.
func TestLeadersRoundTrip(t *testing.T) {
	c := leaders(BufferLeader{Buffer: "p/h/0", Leader: "n1", Term: 1 << 40})
	b, err := EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCommand(b)
	if err != nil || len(got.Leaders) != 1 || got.Leaders[0] != c.Leaders[0] {
		t.Fatalf("round trip of %s: %+v, %v", b, got, err)
	}
}
