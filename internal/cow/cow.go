// Package cow holds Map, a copy-on-write map for snapshots that are
// replaced whole and read without locks (a node's pipelines, a routing
// table's routes): a change copies one of its shards, not the whole map,
// so adding one entry to a map of n costs about n/Shards copies instead of
// n.
package cow

import (
	"hash/maphash"
	"iter"
)

// Shards is the number of shards of a Map.
const Shards = 64

var seed = maphash.MakeSeed()

// Map is an immutable map from strings to V. The zero value is an empty
// map. Its methods that change it return a new Map and leave the receiver
// as it was, so a Map may be read concurrently with changes made to
// copies of it.
type Map[V any] struct {
	shards *[Shards]map[string]V // nil: empty
	n      int
}

func shard(k string) int { return int(maphash.String(seed, k) % Shards) }

// From returns a Map holding the entries of m.
func From[V any](m map[string]V) Map[V] {
	var out Map[V]
	if len(m) == 0 {
		return out
	}
	out.shards = new([Shards]map[string]V)
	for k, v := range m {
		i := shard(k)
		if out.shards[i] == nil {
			out.shards[i] = make(map[string]V, len(m)/Shards+1)
		}
		out.shards[i][k] = v
	}
	out.n = len(m)
	return out
}

// Get returns the value of k and whether it is there.
func (m Map[V]) Get(k string) (V, bool) {
	var zero V
	if m.shards == nil {
		return zero, false
	}
	v, ok := m.shards[shard(k)][k]
	return v, ok
}

// Len returns the number of entries.
func (m Map[V]) Len() int { return m.n }

// With returns a Map holding m's entries and k set to v.
func (m Map[V]) With(k string, v V) Map[V] {
	i := shard(k)
	out := m.copyShards()
	old := out.shards[i]
	s := make(map[string]V, len(old)+1)
	for kk, vv := range old {
		s[kk] = vv
	}
	if _, ok := old[k]; !ok {
		out.n++
	}
	s[k] = v
	out.shards[i] = s
	return out
}

// Without returns a Map holding m's entries but k.
func (m Map[V]) Without(k string) Map[V] {
	if _, ok := m.Get(k); !ok {
		return m
	}
	i := shard(k)
	out := m.copyShards()
	s := make(map[string]V, len(out.shards[i]))
	for kk, vv := range out.shards[i] {
		if kk != k {
			s[kk] = vv
		}
	}
	out.shards[i] = s
	out.n--
	return out
}

// copyShards returns m with a copy of its shard array (the shards
// themselves are shared).
func (m Map[V]) copyShards() Map[V] {
	out := Map[V]{shards: new([Shards]map[string]V), n: m.n}
	if m.shards != nil {
		*out.shards = *m.shards
	}
	return out
}

// All returns the entries, in no particular order.
func (m Map[V]) All() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		if m.shards == nil {
			return
		}
		for _, s := range m.shards {
			for k, v := range s {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}
