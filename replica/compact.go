package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/seglog"
)

// Compaction of a replicated buffer (docs/cluster.md, "Compaction").
//
// Every replica compacts its own log, alike: the leader decides when, and
// proposes a control record (batch.ControlCompact) holding an end offset
// and a tombstone horizon; each replica, as it applies the record, seals
// its active segment if it holds offsets below the end and compacts its
// log below the end with that horizon, in the background. Compaction of a
// batch depends only on the batches below the end (the same committed
// raft log on every replica) and the horizon, never on segment
// boundaries or on when the pass runs, so every replica writes the same
// bytes at the same offsets.
//
// The raft log is the segment log, and a raft entry is a batch, counted
// by position: compaction of a replicated log keeps every batch (an
// emptied one as its header, seglog.CompactOptions.KeepBatches), so the
// raft indexes, terms and offsets of every entry stay as they were. An
// entry raft reads below the end point (to send a follower that is
// behind) is its compacted batch; the follower stores it, and compacting
// it again changes nothing.

// compactPoint is what a compaction record asks of every replica.
type compactPoint struct {
	end    int64 // compact below this offset
	before int64 // tombstones older than this (Unix ms) go
}

func (p compactPoint) encode() []byte {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, uint64(p.end))
	binary.BigEndian.PutUint64(v[8:], uint64(p.before))
	return v
}

// decodeCompactPoint decodes a compaction record's value.
func decodeCompactPoint(v []byte) (compactPoint, error) {
	if len(v) != 16 {
		return compactPoint{}, fmt.Errorf("replica: compaction record of %d bytes, want 16", len(v))
	}
	p := compactPoint{end: int64(binary.BigEndian.Uint64(v)), before: int64(binary.BigEndian.Uint64(v[8:]))}
	if p.end < 0 {
		return compactPoint{}, fmt.Errorf("replica: compaction record with end offset %d", p.end)
	}
	return p, nil
}

// compactOf returns the compaction a committed entry's record asks for.
func compactOf(e *pb.Entry) (compactPoint, bool) {
	d := e.GetData()
	if e.GetType() != pb.EntryNormal || len(d) < batch.HeaderSize || binary.BigEndian.Uint16(d[batch.OffAttributes:])&batch.AttrControl == 0 {
		return compactPoint{}, false
	}
	typ, v, ok, err := batch.ControlType(d)
	if err != nil || !ok || typ != batch.ControlCompact {
		return compactPoint{}, false
	}
	p, err := decodeCompactPoint(v)
	return p, err == nil
}

// SetCompaction sets the buffer's compaction policy; its leader decides
// when every replica compacts. Every replica should be given the same.
func (g *Group) SetCompaction(p seglog.CompactPolicy) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("replica: %s: %w", g.key, err)
	}
	g.compMu.Lock()
	g.compPolicy = p
	g.compMu.Unlock()
	g.compNext.Store(0)
	return nil
}

// enforceCompaction proposes a compaction record when this replica leads
// the buffer, its policy enables compaction and its log is dirty enough.
// It is called by the host's ticker and returns at once.
func (g *Group) enforceCompaction(now time.Time) {
	g.compMu.Lock()
	p := g.compPolicy
	g.compMu.Unlock()
	if !p.Enabled || !g.IsLeader() || now.UnixNano() < g.compNext.Load() {
		return
	}
	g.compNext.Store(now.Add(retentionEvery).UnixNano())
	if !p.Due(g.log.Dirty()) {
		return
	}
	end := min(g.log.LagPoint(p.MinLag), g.HighWatermark())
	g.compMu.Lock()
	done := end <= g.compProposed
	g.compMu.Unlock()
	if done {
		return
	}
	if _, err := g.ProposeCompaction(end, now.Add(-p.TombstoneAge).UnixMilli()); err != nil {
		g.h.log.Warn("compaction: proposing a pass failed; tried again later", "group", g.key, "end_offset", end, "err", err)
		return
	}
	g.compMu.Lock()
	g.compProposed = max(g.compProposed, end)
	g.compMu.Unlock()
}

// ProposeCompaction has every replica compact the log below end, removing
// the tombstones older than before (Unix ms): it appends the compaction
// record and returns its ack (the record committed; the passes run in the
// background on each replica as it applies it).
func (g *Group) ProposeCompaction(end, before int64) (*Ack, error) {
	if end <= 0 {
		return nil, fmt.Errorf("replica: %s: compaction end offset %d", g.key, end)
	}
	v := compactPoint{end: end, before: before}.encode()
	return g.appendLocal(batch.Control(time.Now().UnixMilli(), batch.ControlCompact, v), true, false)
}

// Compactions reports how many compaction passes this replica ran.
func (g *Group) Compactions() uint64 { return g.compactions.Load() }

// applyCompaction has this replica compact its log as a committed record
// asks, in the background: a later record replaces one not started yet.
// Called by run as the record is applied (and at open for the last one).
func (g *Group) applyCompaction(p compactPoint) {
	g.compMu.Lock()
	defer g.compMu.Unlock()
	if p.end > g.compWant.end || p.before > g.compWant.before {
		g.compWant = compactPoint{end: max(p.end, g.compWant.end), before: max(p.before, g.compWant.before)}
	}
	if g.compRunning {
		return
	}
	g.compRunning = true
	g.compWG.Add(1)
	go g.runCompactions()
}

// runCompactions runs the passes applyCompaction asked for, one at a
// time, until none is left.
func (g *Group) runCompactions() {
	defer g.compWG.Done()
	var last compactPoint
	for {
		g.compMu.Lock()
		p := g.compWant
		if p == last {
			g.compRunning = false
			g.compMu.Unlock()
			return
		}
		g.compMu.Unlock()
		last = p
		st, err := g.log.Compact(seglog.CompactOptions{End: p.end, Roll: true, KeepBatches: true, TombstonesBefore: p.before})
		if errors.Is(err, seglog.ErrClosed) {
			g.compMu.Lock()
			g.compRunning = false
			g.compMu.Unlock()
			return
		}
		g.compactions.Add(1)
		if err != nil {
			g.lg.Error("compaction failed", "end_offset", p.end, "err", err)
		}
		if g.observeCompaction != nil {
			g.observeCompaction(st, err)
		}
	}
}

// lastCompaction finds, at open, the last compaction record among the
// control batches at offsets (oldest first, at most the last 64 looked
// at) below the commit point, so that a replica that stopped before its
// pass ran (or during it) runs it again.
func (g *Group) lastCompaction(offsets []int64, commit int64) (compactPoint, bool) {
	for i, n := len(offsets)-1, 0; i >= 0 && n < 64; i, n = i-1, n+1 {
		if offsets[i] >= commit {
			continue
		}
		b, err := g.log.Read(nil, offsets[i], 1)
		if err != nil || len(b) == 0 {
			return compactPoint{}, false
		}
		sz, err := batch.Size(b)
		if err != nil {
			return compactPoint{}, false
		}
		typ, v, ok, err := batch.ControlType(b[:sz])
		if err != nil || !ok || typ != batch.ControlCompact {
			continue
		}
		p, err := decodeCompactPoint(v)
		return p, err == nil
	}
	return compactPoint{}, false
}
