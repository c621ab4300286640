package replica

import (
	"errors"
	"fmt"
	"time"
)

// Retention of a replicated buffer. A replica may not delete its oldest
// segments on its own, as a lone log does (seglog's retention): a
// follower far behind would then miss entries raft still has to send it,
// and the replicas would disagree on where the buffer starts. Instead the
// leader, every retentionEvery, works out where the log kept under the
// buffer's limits would start (seglog.Log.RetentionPoint: whole segments,
// the newest never) and trims every replica to it (Trim, a control record
// each applies). Like any trim, it waits until every replica holds the
// log up to that point, so a replica that is down keeps the buffer whole
// until it is back. Until a trim commits, readers see the old start.

// retentionEvery is how often a leader checks its buffer's retention.
const retentionEvery = 5 * time.Second

// SetRetention sets the buffer's retention limits (0 is no limit): its
// age, measured by the newest record of each segment, and its size. Every
// replica should be given the same; the leader's apply.
func (g *Group) SetRetention(age time.Duration, size int64) error {
	if age < 0 || size < 0 {
		return fmt.Errorf("replica: %s: retention %v and %d bytes: neither may be negative", g.key, age, size)
	}
	g.retAge.Store(int64(age))
	g.retBytes.Store(size)
	g.retNext.Store(0) // check at the next tick
	return nil
}

// enforceRetention trims the log to its retention point when this replica
// leads it and the point is past the start. It is called by the host's
// ticker, and returns at once: the trim commits in the background.
func (g *Group) enforceRetention(now time.Time) {
	age, size := time.Duration(g.retAge.Load()), g.retBytes.Load()
	if age <= 0 && size <= 0 || g.h.retentionHeld.Load() || !g.IsLeader() || now.UnixNano() < g.retNext.Load() {
		return
	}
	g.retNext.Store(now.Add(retentionEvery).UnixNano())
	point := min(g.log.RetentionPoint(age, size), g.HighWatermark())
	if point <= g.StartOffset() {
		return
	}
	if _, err := g.Trim(point); err != nil && !errors.Is(err, ErrTrimBehind) {
		g.h.log.Warn("retention: trimming a replicated buffer failed; tried again later", "group", g.key, "offset", point, "err", err)
	}
}

// HoldRetention stops (true) or resumes (false) the enforcing of every
// group's retention on this host: a node holds it while its limits may
// be stale (replaying the changes of its cluster's metadata at start), so
// that it never trims by a limit a later change lifted.
func (h *Host) HoldRetention(hold bool) { h.retentionHeld.Store(hold) }
