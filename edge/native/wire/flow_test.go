package wire

import "testing"

func TestCreditAccount(t *testing.T) {
	a := NewCreditAccount(1000)
	if got := a.Allowance(400); got != 1000 {
		t.Fatalf("fresh window: allowance %d, want 1000", got)
	}
	a.Spend(800) // two batches of 400
	if got := a.Allowance(400); got != 0 {
		t.Fatalf("200 left, batch of 400: allowance %d, want 0", got)
	}
	// An oversized batch waits while anything is outstanding ...
	if got := a.Allowance(5000); got != 0 {
		t.Fatalf("200 left of a 1000 window, batch of 5000: allowance %d, want 0", got)
	}
	a.Add(800) // the client consumed and granted back
	// ... and goes alone once nothing is.
	if got := a.Allowance(5000); got != 5000 {
		t.Fatalf("full window, batch of 5000: allowance %d, want 5000", got)
	}
	a.Spend(5000)
	if a.Credit() != -4000 {
		t.Fatalf("credit %d, want -4000", a.Credit())
	}
	if got := a.Allowance(100); got != 0 {
		t.Fatalf("in debt: allowance %d, want 0", got)
	}
	a.Add(4000)
	if got := a.Allowance(100); got != 0 {
		t.Fatalf("credit 0: allowance %d, want 0", got)
	}
	a.Add(1000)
	if got := a.Allowance(100); got != 1000 {
		t.Fatalf("window restored: allowance %d, want 1000", got)
	}

	// A subscription opened with no credit gets nothing until CREDIT, then
	// may receive one oversized batch.
	z := NewCreditAccount(0)
	if z.Allowance(61) != 0 {
		t.Fatal("zero credit allows a batch")
	}
	z.Add(10)
	if got := z.Allowance(61); got != 61 {
		t.Fatalf("credit 10 of window 0, batch 61: allowance %d", got)
	}

	// Credit saturates instead of overflowing.
	s := NewCreditAccount(1<<32 - 1)
	for range 10 {
		s.Add(1<<32 - 1)
	}
	if s.Credit() <= 0 {
		t.Fatal("credit overflowed")
	}
}
