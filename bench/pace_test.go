package bench

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestScheduleArithmetic(t *testing.T) {
	start := time.Unix(1000, 0)
	s, err := NewSchedule(3, start)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Duration{0, 333333333, 666666666, time.Second, 1333333333} {
		if got := s.Offset(uint64(i)); got != want {
			t.Errorf("Offset(%d) = %d, want %d", i, got, want)
		}
	}
	if got := s.Intended(3); !got.Equal(start.Add(time.Second)) {
		t.Errorf("Intended(3) = %v", got)
	}
	for _, c := range []struct {
		d    time.Duration
		want uint64
	}{{0, 0}, {1, 1}, {time.Second, 3}, {time.Second + 1, 4}, {-time.Second, 0}} {
		if got := s.Count(c.d); got != c.want {
			t.Errorf("Count(%v) = %d, want %d", c.d, got, c.want)
		}
	}
	big, _ := NewSchedule(2_000_000, start)
	if got, want := big.Count(10*time.Second), uint64(20_000_000); got != want {
		t.Errorf("Count(10s) at 2M/s = %d, want %d", got, want)
	}
	// No overflow for large sequence numbers.
	if got, want := big.Offset(1<<40), time.Duration((1<<40)/2_000_000*1e9+(1<<40)%2_000_000*500); got != want {
		t.Errorf("Offset(2^40) = %d, want %d", got, want)
	}
	if _, err := NewSchedule(0, start); err == nil {
		t.Error("NewSchedule(0) succeeded")
	}
}

// fakeClock drives a Pacer without the wall clock.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) install(p *Pacer) {
	p.now = func() time.Time { return c.now }
	p.sleep = func(_ context.Context, d time.Duration) error {
		c.sleeps = append(c.sleeps, d)
		c.now = c.now.Add(d)
		return nil
	}
}

func TestPacerStrideAndWaits(t *testing.T) {
	start := time.Unix(0, 0)
	s, _ := NewSchedule(10, start) // every 100ms
	p, err := NewPacer(s, 1, 2, 7) // events 1, 3, 5
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{now: start}
	clk.install(p)
	var seqs []uint64
	for {
		seq, at, ok, err := p.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if !at.Equal(s.Intended(seq)) || !clk.now.Equal(at) {
			t.Fatalf("event %d: intended %v, clock %v, want both %v", seq, at, clk.now, s.Intended(seq))
		}
		seqs = append(seqs, seq)
	}
	if len(seqs) != 3 || seqs[0] != 1 || seqs[1] != 3 || seqs[2] != 5 {
		t.Fatalf("sequences %v, want [1 3 5]", seqs)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}
	for i := range want {
		if clk.sleeps[i] != want[i] {
			t.Fatalf("sleeps %v, want %v", clk.sleeps, want)
		}
	}
	if p.Behind() != 0 {
		t.Fatalf("Behind = %d, want 0", p.Behind())
	}
}

func TestPacerBehindNeverSkips(t *testing.T) {
	start := time.Unix(0, 0)
	s, _ := NewSchedule(1000, start)
	p, _ := NewPacer(s, 0, 1, 10)
	clk := &fakeClock{now: start.Add(time.Second)} // far behind
	clk.install(p)
	for i := range uint64(10) {
		seq, at, ok, err := p.Next(context.Background())
		if err != nil || !ok || seq != i || !at.Equal(s.Intended(i)) {
			t.Fatalf("Next = %d %v %v %v, want %d at its intended time", seq, at, ok, err, i)
		}
	}
	if len(clk.sleeps) != 0 || p.Behind() != 10 {
		t.Fatalf("slept %v, Behind %d; want no sleep and 10 behind", clk.sleeps, p.Behind())
	}
}

func TestPacerContextAndArgs(t *testing.T) {
	s, _ := NewSchedule(1, time.Now().Add(time.Hour))
	p, _ := NewPacer(s, 0, 1, 5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, ok, err := p.Next(ctx); ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with canceled ctx: ok %v err %v", ok, err)
	}
	for _, c := range [][2]int{{2, 2}, {-1, 2}, {0, 0}} {
		if _, err := NewPacer(s, c[0], c[1], 5); err == nil {
			t.Errorf("NewPacer(sender %d of %d) succeeded", c[0], c[1])
		}
	}
}

func TestPhasedSchedule(t *testing.T) {
	start := time.Unix(1000, 0)
	s, err := NewPhasedSchedule(start, []Phase{{time.Second, 2, false}, {time.Second, 4, true}, {time.Second, 2, false}})
	if err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	want := []time.Duration{0, 500 * ms, 1000 * ms, 1250 * ms, 1500 * ms, 1750 * ms, 2000 * ms, 2500 * ms, 3000 * ms}
	for i, w := range want {
		if got := s.Offset(uint64(i)); got != w {
			t.Errorf("Offset(%d) = %v, want %v", i, got, w)
		}
		// Count and Offset agree: exactly i events are due before event i.
		if got := s.Count(w); got != uint64(i) {
			t.Errorf("Count(%v) = %d, want %d", w, got, i)
		}
		if got := s.Count(w + 1); got != uint64(i+1) {
			t.Errorf("Count(%v+1ns) = %d, want %d", w, got, i+1)
		}
	}
	if got := s.Count(3 * time.Second); got != 8 {
		t.Errorf("Count(3s) = %d, want 8", got)
	}
	if s.Length() != 3*time.Second || s.RateAt(1500*ms) != 4 || s.RateAt(0) != 2 || s.RateAt(2*time.Second) != 2 {
		t.Errorf("Length %v, RateAt 1.5s %d, 0 %d, 2s %d", s.Length(), s.RateAt(1500*ms), s.RateAt(0), s.RateAt(2*time.Second))
	}
	for _, bad := range [][]Phase{nil, {{time.Second, 0, false}}, {{0, 5, false}}} {
		if _, err := NewPhasedSchedule(start, bad); err == nil {
			t.Errorf("phases %v accepted", bad)
		}
	}
}

func TestPacerSkip(t *testing.T) {
	sched, _ := NewSchedule(1000, time.Unix(0, 0))
	p, err := NewPacer(sched, 1, 2, 7) // events 1, 3, 5
	if err != nil {
		t.Fatal(err)
	}
	p.Skip()
	if seq, _, ok := p.Peek(); !ok || seq != 3 {
		t.Fatalf("after a skip: next %d (ok %v), want 3", seq, ok)
	}
	p.Skip()
	p.Skip()
	p.Skip() // past the limit: stays exhausted
	if _, _, ok := p.Peek(); ok {
		t.Fatal("pacer not exhausted after skipping its share")
	}
}
