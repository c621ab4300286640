package seglog

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

// recover loads the segments of l.dir, as described in docs/storage.md:
//
//  1. Segments before the checkpoint's segment were sealed durably; only
//     their indexes are checked (rebuilt by a scan if missing or damaged).
//  2. From the checkpoint's position on, every batch is read and checked,
//     and the producer state recorded in the checkpoint is brought up to
//     date from the batches found.
//  3. The first bad batch ends the scan. If it lies in the last segment,
//     past the checkpoint, and no valid batch follows it, it is a torn tail
//     (a write that never completed) and is cut. Anything else is reported
//     as a *CorruptionError.
func (l *Log) recover() error {
	names, err := l.fs.List(l.dir)
	if vfs.IsNotExist(err) {
		// A new log: its parent durably; itself and its first segment by
		// its first write (see Log).
		if parent := filepath.Dir(l.dir); parent != l.dir {
			if err := l.fs.MkdirAll(parent); err != nil {
				return fmt.Errorf("seglog: create directory %s: %w", parent, err)
			}
		}
		names, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("seglog: list %s: %w", l.dir, err)
	}
	// A compaction cut short: completed if it committed, else undone.
	if changed, err := l.recoverCompaction(names); err != nil {
		return err
	} else if changed {
		if names, err = l.fs.List(l.dir); err != nil {
			return fmt.Errorf("seglog: list %s: %w", l.dir, err)
		}
	}
	var bases []int64
	for _, n := range names {
		if b, ok := parseSegmentName(n); ok {
			bases = append(bases, b)
		}
		if n == checkpointTmp || n == startTmp {
			if err := l.fs.Remove(filepath.Join(l.dir, n)); err != nil {
				return fmt.Errorf("seglog: remove stale %s: %w", n, err)
			}
		}
		if _, ok := parseBaseName(n, pendingSuffix); ok {
			// A roll whose seal never became durable: nothing in the file
			// was acknowledged (under SyncAlways), and the segment before
			// it may have lost its tail.
			l.log.Warn("removing the segment of an unfinished roll", "file", n)
			if err := l.fs.Remove(filepath.Join(l.dir, n)); err != nil {
				return fmt.Errorf("seglog: remove unfinished segment %s: %w", n, err)
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })

	ck, haveCk := l.readCheckpoint()
	if len(bases) == 0 && !haveCk {
		return l.createLazily()
	}
	if len(bases) == 0 {
		base := int64(0)
		if ck.next > 0 {
			l.log.Warn("checkpoint found but no segments; starting empty at the checkpoint's offset so offsets are never reused", "offset", ck.next)
			base = ck.next
		}
		s, err := l.createSegment(base)
		if err != nil {
			return fmt.Errorf("seglog: %w", err)
		}
		l.segs = []*segment{s}
		return l.finishRecovery()
	}

	for _, b := range bases {
		s := newSegment(l.dir, b)
		s.f = l.opts.Files.handle(l.fs, s.path(logSuffix), false)
		l.segs = append(l.segs, s) // so a failure closes f
		if s.size, err = s.f.Size(); err != nil {
			return fmt.Errorf("seglog: size of segment %s: %w", s.path(logSuffix), err)
		}
		s.alloc = s.size // until the scan finds the end of the data
		limit := l.opts.SegmentBytes + batch.MaxSize
		if b == bases[len(bases)-1] {
			// The active segment's file may hold a preallocated zero
			// tail; its data is checked after the scan.
			limit = max(limit, MaxSegmentBytes+batch.MaxSize)
		}
		if s.size > limit {
			return fmt.Errorf("seglog: segment %s holds %d bytes, more than any segment may (%d): is SegmentBytes smaller than when it was written?",
				s.path(logSuffix), s.size, l.opts.SegmentBytes+batch.MaxSize)
		}
	}

	startIdx, startPos := 0, int64(0)
	if haveCk {
		i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base >= ck.segBase })
		if i < len(l.segs) && l.segs[i].base == ck.segBase && ck.pos <= l.segs[i].size && ck.next >= ck.segBase {
			startIdx, startPos = i, ck.pos
			l.prods = ck.prods
		} else {
			l.log.Warn("checkpoint does not match the segments; scanning the whole log", "segment", ck.segBase, "position", ck.pos)
			haveCk = false
		}
	}
	if !haveCk {
		l.prods = make(producers)
	}

	last := len(l.segs) - 1
	for i, s := range l.segs {
		if i < startIdx {
			s.next = l.segs[i+1].base
			if ok, _ := s.loadIndexes(l.fs, s.size); !ok {
				if err := l.rebuildIndexes(s); err != nil {
					return err
				}
			}
			continue
		}
		from, replayFrom := int64(0), int64(0)
		if i == startIdx && startPos > 0 {
			replayFrom = startPos
			if ok, _ := s.loadIndexes(l.fs, startPos); ok {
				from = s.lastIndexPos
				s.next = s.base + int64(s.index[len(s.index)-1].rel)
				s.cutIndexes(from)
			}
		}
		end, sc, bad := l.scan(s, from, s.size, replayFrom)
		if bad != nil && !(end < startPos && i == startIdx) {
			// Zeros to the end of the file are the end of the data: the
			// preallocated tail of the active segment, or growth whose
			// data never reached the disk. Nothing there is cut.
			zero, err := zeroFrom(s, end)
			if err != nil {
				return fmt.Errorf("seglog: read the tail of %s: %w", s.path(logSuffix), err)
			}
			if zero {
				bad = nil
				s.size = end
				if i < last && s.alloc > end {
					// A sealed segment holds no preallocation (its seal
					// trims it); trim it here too, synced below.
					if err := s.f.Truncate(end); err != nil {
						return fmt.Errorf("seglog: trim the zero tail of %s at %d: %w", s.path(logSuffix), end, err)
					}
					s.alloc = end
				}
			}
		}
		if bad != nil {
			cerr := &CorruptionError{Segment: s.path(logSuffix), Position: end, Offset: s.next, Err: bad}
			damaged := end < startPos && i == startIdx || // damage in data the checkpoint said was durable
				i < last || // a sealed segment was synced whole before the roll
				sc.findValidAfter(end, s.next) // valid data follows: not a torn tail
			if damaged && l.opts.CutCorrupt && !l.recut {
				return l.cutDamaged(i, end, cerr)
			}
			if damaged {
				return cerr
			}
			l.log.Warn("cutting torn tail", "segment", s.path(logSuffix), "position", end, "bytes", s.size-end, "reason", bad.Error())
			if err := s.f.Truncate(end); err != nil {
				return fmt.Errorf("seglog: cut torn tail of %s at %d: %w", s.path(logSuffix), end, err)
			}
			s.size, s.alloc = end, end
		}
		if i < last {
			if s.next != l.segs[i+1].base {
				return &CorruptionError{Segment: s.path(logSuffix), Position: s.size, Offset: s.next,
					Err: fmt.Errorf("segment ends at offset %d but the next segment starts at %d", s.next, l.segs[i+1].base)}
			}
			s.sealTimeIndex()
			if err := s.f.Sync(); err != nil {
				return fmt.Errorf("seglog: sync %s: %w", s.path(logSuffix), err)
			}
			if err := l.flushIndexes(s); err != nil {
				return fmt.Errorf("seglog: %w", err)
			}
		}
	}
	if s := l.segs[last]; s.size > l.opts.SegmentBytes+batch.MaxSize {
		return fmt.Errorf("seglog: segment %s holds %d bytes, more than any segment may (%d): is SegmentBytes smaller than when it was written?",
			s.path(logSuffix), s.size, l.opts.SegmentBytes+batch.MaxSize)
	}
	if s := l.segs[last]; haveCk && startIdx == last && s.size == startPos && s.alloc == startPos && s.next == ck.next {
		// A clean log: it ends exactly at its checkpoint, whose data was
		// synced before the checkpoint was written, and the checkpoint
		// names its last segment. Nothing to sync or rewrite.
		l.setAppendState(s)
		l.ckptNext = ck.next
		return nil
	}
	if !haveCk && len(l.segs) == 1 && l.fresh(l.segs[0]) {
		// A log created lazily and never synced: as new.
		l.setAppendState(l.segs[0])
		l.dirsPending = true
		return nil
	}
	// The active segment may hold data that reached the page cache but not
	// the disk (a process crash): make it durable before serving it. Its
	// preallocation is renewed by the next append (extendAheadLocked).
	if err := l.segs[last].f.Sync(); err != nil {
		return fmt.Errorf("seglog: sync %s: %w", l.segs[last].path(logSuffix), err)
	}
	return l.finishRecovery()
}

// createLazily starts a new, empty log: its first segment, whose file
// (and the log's directory) its first write creates, without a sync; no
// checkpoint, no index files (see Log).
func (l *Log) createLazily() error {
	s := newSegment(l.dir, 0)
	s.f = l.opts.Files.handle(l.fs, s.path(logSuffix), true)
	l.segs = []*segment{s}
	l.dirsPending = true
	l.setAppendState(s)
	return nil
}

// fresh reports whether s is the empty first segment of a log that never
// held a batch.
func (l *Log) fresh(s *segment) bool {
	return s.base == 0 && s.size == 0 && s.next == 0
}

// setAppendState sets the append state from the last segment, s.
func (l *Log) setAppendState(s *segment) {
	l.active = s
	l.next, l.commit, l.durable = s.next, s.next, s.next
	l.hw = commitPoint{next: s.next, seg: s, pos: s.size}
}

// finishRecovery sets the append state from the last segment and writes a
// fresh checkpoint, so the next open scans nothing.
func (l *Log) finishRecovery() error {
	s := l.segs[len(l.segs)-1]
	l.setAppendState(s)
	if err := l.flushIndexes(s); err != nil {
		return fmt.Errorf("seglog: %w", err)
	}
	if err := l.writeCheckpointLocked(s, s.size, s.next); err != nil {
		return fmt.Errorf("seglog: %w", err)
	}
	return nil
}

func (l *Log) readCheckpoint() (checkpoint, bool) {
	raw, err := readWhole(l.fs, filepath.Join(l.dir, checkpointName), maxCheckpointSize)
	if err != nil {
		l.log.Warn("cannot read checkpoint; scanning the whole log", "err", err)
		return checkpoint{}, false
	}
	if raw == nil {
		return checkpoint{}, false
	}
	ck, err := decodeCheckpoint(raw)
	if err != nil {
		l.log.Warn("damaged checkpoint; scanning the whole log", "err", err)
		return checkpoint{}, false
	}
	return ck, true
}

// scan reads the batches of s in [from, end), which must start at offset
// s.next, adding them to the indexes and, at or past replayFrom, to the
// producer state. It stops at the first bad batch and returns its position
// (or end) and what was wrong.
func (l *Log) scan(s *segment, from, end, replayFrom int64) (int64, *scanner, error) {
	sc := newScanner(s.f, end)
	pos := from
	for pos < end {
		_, h, err := sc.batchAt(pos)
		if err == nil && h.BaseOffset != s.next {
			err = fmt.Errorf("batch has base offset %d, expected %d", h.BaseOffset, s.next)
		}
		if err != nil {
			return pos, sc, err
		}
		s.addBatch(&h, pos, l.opts.IndexIntervalBytes)
		if pos >= replayFrom && h.Idempotent() {
			l.prods.record(&h)
		}
		pos += int64(h.Size())
	}
	return pos, sc, nil
}

// rebuildIndexes rebuilds a sealed segment's indexes from its batches. A
// damaged batch ends the index; reads past it report the damage.
func (l *Log) rebuildIndexes(s *segment) error {
	next := s.next
	s.cutIndexes(0)
	s.next = s.base
	end, _, bad := l.scan(s, 0, s.size, math.MaxInt64)
	if bad != nil {
		l.log.Error("segment is damaged; reads past the damage will fail until it is repaired",
			"segment", s.path(logSuffix), "position", end, "err", bad)
	} else {
		l.log.Warn("rebuilt missing or damaged index", "segment", s.path(logSuffix))
	}
	s.next = next
	s.sealTimeIndex()
	if err := l.flushIndexes(s); err != nil {
		if errors.Is(err, errSync) {
			return fmt.Errorf("seglog: %w", err)
		}
		l.log.Warn("cannot write rebuilt index", "segment", s.path(logSuffix), "err", err)
	}
	return nil
}

// cutDamaged cuts the log at a damaged batch found by recovery
// (Options.CutCorrupt): segment i is truncated at pos, every later segment
// and the checkpoint are removed, and recovery starts again, scanning every
// batch (the producer state is rebuilt from what is left). CutAt reports
// the cut.
func (l *Log) cutDamaged(i int, pos int64, cerr *CorruptionError) error {
	l.log.Error("cutting the log at a damaged batch; its replicas have the data", "segment", cerr.Segment, "position", pos, "offset", cerr.Offset, "err", cerr.Err)
	for _, s := range l.segs[i+1:] {
		s.f.Close()
		for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
			if err := l.fs.Remove(s.path(suf)); err != nil && !vfs.IsNotExist(err) {
				return fmt.Errorf("seglog: remove %s after a damaged batch: %w", s.path(suf), err)
			}
		}
	}
	s := l.segs[i]
	if err := s.f.Truncate(pos); err != nil {
		return fmt.Errorf("seglog: cut %s at its damaged batch (%d): %w", s.path(logSuffix), pos, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("seglog: sync %s after cutting it: %w", s.path(logSuffix), err)
	}
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		if err := l.fs.Remove(s.path(suf)); err != nil && !vfs.IsNotExist(err) {
			return fmt.Errorf("seglog: remove %s after a damaged batch: %w", s.path(suf), err)
		}
	}
	if err := l.fs.Remove(filepath.Join(l.dir, checkpointName)); err != nil && !vfs.IsNotExist(err) {
		return fmt.Errorf("seglog: remove the checkpoint after a damaged batch: %w", err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("seglog: sync %s after cutting it: %w", l.dir, err)
	}
	for _, s := range l.segs[:i+1] {
		s.f.Close()
	}
	l.segs, l.prods = nil, nil
	l.recut, l.cutAt = true, cerr.Offset
	return l.recover()
}

// CutAt returns the offset at which recovery cut a damaged log
// (Options.CutCorrupt), and whether it did.
func (l *Log) CutAt() (int64, bool) { return l.cutAt, l.recut }
