package router

import "sync/atomic"

// Holder publishes the current Table to routers. Routers call Load per
// event or per batch; the metadata applier calls Store after each rebuild.
// The zero value holds no table: Load returns nil. A Holder must not be
// copied after first use.
type Holder struct {
	p atomic.Pointer[Table]
}

// Load returns the current table, or nil if none was stored. It does not
// allocate or lock.
func (h *Holder) Load() *Table { return h.p.Load() }

// Store makes t the current table, whatever its version.
func (h *Holder) Store(t *Table) { h.p.Store(t) }

// StoreNewer makes t (not nil) the current table if no table is stored yet or t's
// version is greater than the current one's, and reports whether it did.
// Concurrent rebuilders can use it so that a slow rebuild of an old
// snapshot never replaces a newer one.
func (h *Holder) StoreNewer(t *Table) bool {
	for {
		cur := h.p.Load()
		if cur != nil && t.version <= cur.version {
			return false
		}
		if h.p.CompareAndSwap(cur, t) {
			return true
		}
	}
}
