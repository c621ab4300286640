package meta

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestAlter: pipeline.alter is applied for a pipeline created at run time
// and refused, changing nothing, for one that is not (never created, a
// pipeline of the config file, deleted) or without settings.
func TestAlter(t *testing.T) {
	s := seeded(t)
	if !s.Apply(&Command{Op: OpCreate, Pipeline: "orders", Spec: []byte(`{"name":"orders"}`)}) {
		t.Fatal("create not applied")
	}
	alter := Command{Op: OpAlter, Pipeline: "orders", Spec: []byte(`{"retention":60000000000}`)}
	if err := alter.Check(&s); err != nil {
		t.Fatal(err)
	}
	if !s.Apply(&alter) {
		t.Fatal("alter not reported as a change: the nodes would not apply it")
	}
	if !s.Apply(&alter) {
		t.Fatal("the same alter again not reported: a node must apply every alter in log order")
	}
	for _, c := range []Command{
		{Op: OpAlter, Pipeline: "declared", Spec: []byte(`{}`)},
		{Op: OpAlter, Pipeline: "orders"},
		{Op: OpAlter, Spec: []byte(`{}`)},
	} {
		if err := c.Check(&s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: Check %v, want ErrInvalid", c, err)
		}
		if s.Apply(&c) {
			t.Errorf("%+v applied", c)
		}
	}
	err := (&Command{Op: OpAlter, Pipeline: "declared", Spec: []byte(`{}`)}).Check(&s)
	if err == nil || !strings.Contains(err.Error(), `"declared"`) || !strings.Contains(err.Error(), "config file") {
		t.Errorf("alter of a pipeline not created at run time: %v; want it named and the config file mentioned", err)
	}
	if !slices.Equal(s.Pipelines, []string{"orders"}) {
		t.Errorf("pipelines %v after alters, want [orders]", s.Pipelines)
	}
	s.Apply(&Command{Op: OpDelete, Pipeline: "orders"})
	if s.Apply(&alter) {
		t.Error("alter of a deleted pipeline applied")
	}
}
