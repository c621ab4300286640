package seglog

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

// Truncate removes every batch at or past offset, which must be the base
// offset of a batch or the log's end (raft's "truncate a suffix"). Appends
// waiting for the removed batches fail with ErrTruncated. The new end is
// durable when Truncate returns.
//
// Crash safety: the checkpoint naming the new end is written before any
// byte is cut. A crash in between may bring the removed batches back on the
// next open, whole and valid; it never leaves a partial batch.
func (l *Log) Truncate(offset int64) error {
	l.ckptMu.Lock()
	defer l.ckptMu.Unlock()
	l.lockSettled(true)
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	if offset == l.next {
		return nil
	}
	l.segMu.Lock()
	defer l.segMu.Unlock()
	if start := l.startLocked(); offset < start || offset > l.next {
		return fmt.Errorf("%w: cannot truncate to %d, log holds [%d, %d)", ErrOffsetOutOfRange, offset, start, l.next)
	}
	s, i := l.findLocked(offset)
	v := readView{seg: s, limit: s.size}
	pos := int64(0)
	if offset > s.base {
		p, base, err := v.seek(offset)
		if err != nil {
			return err
		}
		if base != offset {
			return fmt.Errorf("%w: offset %d is inside the batch starting at %d", ErrNotBatchBoundary, offset, base)
		}
		pos = p
	}
	// What stays must be durable before the checkpoint names it.
	if err := s.f.Sync(); err != nil {
		return l.failLocked(fmt.Errorf("fdatasync %s before truncating: %w", s.path(logSuffix), err))
	}
	if lost := l.prods.truncate(offset); len(lost) > 0 {
		if err := l.refillProducers(lost, i, pos); err != nil {
			return err
		}
	}
	if err := l.writeCheckpointLocked(s, pos, offset); err != nil {
		return l.failLocked(err)
	}

	removed := l.segs[i+1:]
	l.segs = l.segs[: i+1 : i+1]
	// Last first: a file system may make some removals durable before the
	// directory sync, and what stays must have no gap.
	for _, r := range slices.Backward(removed) {
		r.deleted.Store(true)
		r.maybeClose()
		if err := removeSegmentFiles(l.fs, r); err != nil {
			return l.failLocked(err)
		}
	}
	if len(removed) > 0 {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return l.failLocked(fmt.Errorf("sync directory %s after truncating: %w", l.dir, err))
		}
	}
	if err := s.f.Truncate(pos); err != nil {
		return l.failLocked(fmt.Errorf("truncate %s to %d: %w", s.path(logSuffix), pos, err))
	}
	if err := s.f.Sync(); err != nil {
		return l.failLocked(fmt.Errorf("fdatasync %s after truncating: %w", s.path(logSuffix), err))
	}

	// Rebuild the index tail from the last indexed batch at or before pos.
	from, fromBase := s.lookup(offset)
	s.next = fromBase
	s.cutIndexes(from)
	s.size = pos
	if _, _, err := l.scan(s, from, pos, pos); err != nil {
		return &CorruptionError{Segment: s.path(logSuffix), Position: from, Offset: s.next, Err: err}
	}
	s.size, s.next, s.alloc = pos, offset, pos // the next append preallocates again
	if err := l.flushIndexes(s); err != nil {
		return l.failLocked(err)
	}

	l.active = s
	l.next, l.durable, l.commit = offset, offset, offset
	l.truncations++
	l.sinceCkpt = 0
	l.hwMu.Lock()
	l.hw = commitPoint{next: offset, seg: s, pos: pos}
	if l.hwCh != nil {
		close(l.hwCh)
		l.hwCh = nil
	}
	l.hwMu.Unlock()
	l.cond.Broadcast()
	return nil
}

func removeSegmentFiles(fs vfs.FS, s *segment) error {
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if err := fs.Remove(s.path(suffix)); err != nil && !vfs.IsNotExist(err) {
			return fmt.Errorf("remove %s: %w", filepath.Base(s.path(suffix)), err)
		}
	}
	return nil
}

// EnforceRetention deletes the oldest sealed segments whose newest record is
// older than RetentionAge, and those that keep the log above RetentionBytes
// (as Open got them, or SetRetention last set them). The active segment is
// never deleted. It returns how many were deleted. The log runs it after
// each roll's seal and after SetRetention; a server may also call it on a
// timer.
func (l *Log) EnforceRetention() (int, error) {
	age, size := time.Duration(l.retAge.Load()), l.retBytes.Load()
	if age <= 0 && size <= 0 {
		return 0, nil
	}
	now := l.opts.Now().UnixMilli()
	removed, _, err := l.dropFront("retention", func(s *segment, rest int64) bool {
		old := age > 0 && s.maxTS >= 0 && now-s.maxTS > age.Milliseconds()
		big := size > 0 && rest >= size
		return old || big
	})
	return removed, err
}

// RetentionPoint returns where a log kept under the limits given would
// start (0 is no limit, as in Options): the base of the oldest segment
// that EnforceRetention with those limits would keep, deleting nothing. A
// replicated log (package replica) cannot delete its segments on its own:
// its leader trims every replica to this point instead.
func (l *Log) RetentionPoint(age time.Duration, size int64) int64 {
	l.mu.Lock() // the active segment's size moves under it
	defer l.mu.Unlock()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if age <= 0 && size <= 0 {
		return l.segs[0].base
	}
	now := l.opts.Now().UnixMilli()
	var total int64
	for _, s := range l.segs {
		total += s.size
	}
	for _, s := range l.segs[:len(l.segs)-1] {
		old := age > 0 && s.maxTS >= 0 && now-s.maxTS > age.Milliseconds()
		big := size > 0 && total-s.size >= size
		if !old && !big {
			return s.base
		}
		total -= s.size
	}
	return l.segs[len(l.segs)-1].base
}

// SetRetention replaces the retention limits of an open log (0 is no
// limit, as in Options). The background goroutine enforces them soon
// after, without waiting for the next roll.
func (l *Log) SetRetention(age time.Duration, size int64) error {
	if age < 0 || size < 0 {
		return fmt.Errorf("seglog: retention %v and %d bytes: neither may be negative", age, size)
	}
	l.retAge.Store(int64(age))
	l.retBytes.Store(size)
	select {
	case l.ckptCh <- struct{}{}:
	default: // a wake-up is pending already
	}
	return nil
}

// DropBefore deletes the segments that hold only offsets below offset (a
// replicated log's start moving forward: package replica), never the last
// segment. It returns the log's new start, a segment's base, at most
// offset.
func (l *Log) DropBefore(offset int64) (int64, error) {
	_, start, err := l.dropFront("drop", func(s *segment, _ int64) bool { return s.next <= offset })
	return start, err
}

// StartAfterDrop returns the start DropBefore(offset) would leave: the
// base of the first segment holding an offset at or past offset, or of the
// last segment.
func (l *Log) StartAfterDrop(offset int64) int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	for _, s := range l.segs[:len(l.segs)-1] {
		if s.next > offset {
			return s.base
		}
	}
	return l.segs[len(l.segs)-1].base
}

// dropFront deletes segments from the front of the log while drop says so
// (given the segment and the bytes the log would keep without it), never
// the last one nor one still being sealed. It returns how many it deleted
// and the log's start after.
func (l *Log) dropFront(why string, drop func(s *segment, rest int64) bool) (int, int64, error) {
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return 0, 0, err
	}
	l.segMu.Lock()
	var total int64
	for _, s := range l.segs {
		total += s.size
	}
	var removed []*segment
	for len(l.segs) > 1 {
		s := l.segs[0]
		if l.sealing != nil && s == l.sealing.old {
			break // its seal still syncs it and writes its indexes
		}
		if s.compacting {
			break // a compaction may replace it; the next pass of retention deletes it
		}
		if !drop(s, total-s.size) {
			break
		}
		removed = append(removed, s)
		l.segs = l.segs[1:]
		total -= s.size
	}
	start := l.segs[0].base
	l.segMu.Unlock()
	l.mu.Unlock()
	if len(removed) == 0 {
		return 0, start, nil
	}
	for _, s := range removed {
		s.deleted.Store(true)
		s.maybeClose()
		if err := removeSegmentFiles(l.fs, s); err != nil {
			return 0, start, fmt.Errorf("seglog: %s: %w", why, err)
		}
		l.log.Info(why+" deleted segment", "segment", s.path(logSuffix), "bytes", s.size, "next_offset", s.next)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return len(removed), start, fmt.Errorf("seglog: %s: sync directory %s: %w", why, l.dir, err)
	}
	return len(removed), start, nil
}

// refillProducers rebuilds the idempotence windows of producers that lost
// batches to a truncation, reading batch headers backwards from segment i
// (up to byte end) until each window is full or the log's start is reached.
func (l *Log) refillProducers(want map[int64]bool, i int, end int64) error {
	for first := true; i >= 0 && len(want) > 0; i, first = i-1, false {
		s := l.segs[i]
		limit := s.size
		if first {
			limit = end
		}
		sc := newScanner(s.f, limit)
		var hs []batch.Header
		for pos := int64(0); pos < limit; {
			hb, err := sc.at(pos, batch.HeaderSize)
			if err != nil {
				return &CorruptionError{Segment: s.path(logSuffix), Position: pos, Offset: -1, Err: err}
			}
			h, err := batch.ParseHeader(hb)
			if err != nil {
				return &CorruptionError{Segment: s.path(logSuffix), Position: pos, Offset: -1, Err: err}
			}
			if h.Idempotent() && want[h.ProducerID] {
				hs = append(hs, h)
			}
			pos += int64(h.Size())
		}
		l.prods.refill(want, hs)
	}
	return nil
}
