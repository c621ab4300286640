package cow

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// Map behaves as a Go map under random changes, and a change never shows
// in the Map it was made from.
func TestMapMatchesGoMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var m Map[int]
	ref := map[string]int{}
	for i := range 5000 {
		k := fmt.Sprintf("k%d", rng.IntN(300))
		before, snapshot := m, maps.Clone(ref)
		if rng.IntN(3) == 0 {
			m = m.Without(k)
			delete(ref, k)
		} else {
			m = m.With(k, i)
			ref[k] = i
		}
		if got := maps.Collect(before.All()); !maps.Equal(got, snapshot) {
			t.Fatalf("step %d: the old Map changed", i)
		}
		if m.Len() != len(ref) {
			t.Fatalf("step %d: Len %d, want %d", i, m.Len(), len(ref))
		}
		if v, ok := m.Get(k); ok != (ref[k] != 0 || hasKey(ref, k)) || v != ref[k] {
			t.Fatalf("step %d: Get(%s) = %d, %v; want %d", i, k, v, ok, ref[k])
		}
	}
	if got := maps.Collect(m.All()); !maps.Equal(got, ref) {
		t.Fatal("final entries differ")
	}
	if got := maps.Collect(From(ref).All()); !maps.Equal(got, ref) {
		t.Fatal("From differs")
	}
}

func hasKey(m map[string]int, k string) bool { _, ok := m[k]; return ok }

// BenchmarkWith adds one entry to a map of 10,000.
func BenchmarkWith(b *testing.B) {
	ref := map[string]int{}
	for i := range 10000 {
		ref[fmt.Sprintf("pipeline-%d", i)] = i
	}
	m := From(ref)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = m.With(fmt.Sprintf("new-%d", i), i)
	}
}
