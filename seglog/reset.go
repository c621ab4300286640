package seglog

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"

	"github.com/sensehq/sense/vfs"
)

// Reset empties the log and starts it again at offset base, which may lie
// anywhere, below, inside or past what the log held: every segment is
// deleted with its indexes, so are the checkpoint and the start offset
// file, the producer state is forgotten, and the next batch gets offset
// base. A raft replica uses it to install a snapshot (package replica):
// its log is replaced by its leader's from base on. Appends waiting to be
// acknowledged fail with ErrTruncated; a reader finds nothing below base.
//
// The deletions are durable when Reset returns. The new log is then as one
// Open creates: its first segment's directory entry is made durable by its
// first fdatasync, so a crash before that leaves an empty directory, which
// Open takes for an empty log at offset 0. The caller knows where its log
// starts (a replica's state file says so) and resets it again.
//
// Crash safety: the checkpoint goes first, then the segments, last first
// and each segment's indexes before its data, then the directory is
// synced. A crash in between leaves the log's first segments, a valid log
// that ends early (recovery scans it whole), or nothing; never a log with
// a gap. A log whose start Trim moved keeps its start offset file until
// its first segment is gone: a crash between the two leaves the file
// beside no segment, which Open refuses (ErrCorrupt, naming the file)
// rather than serve the records below the start again. (A replica's log
// has no such file: its start is in the replica's own state.)
//
// An error fails the log, as a failed write or sync does: the files left
// no longer match what the log holds in memory.
func (l *Log) Reset(base int64) error {
	if base < 0 {
		return fmt.Errorf("%w: cannot start %s at offset %d", ErrOffsetOutOfRange, l.dir, base)
	}
	l.ckptMu.Lock()
	defer l.ckptMu.Unlock()
	l.lockSettled(true) // no seal pending, no group commit in flight
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return err
	}
	l.segMu.Lock()
	defer l.segMu.Unlock()
	if err := l.removeAll(); err != nil {
		return l.failLocked(fmt.Errorf("reset to offset %d: %w", base, err))
	}
	for _, s := range l.segs {
		s.deleted.Store(true)
		s.maybeClose()
	}
	s := newSegment(l.dir, base)
	s.f = l.opts.Files.handle(l.fs, s.path(logSuffix), true)
	l.segs = []*segment{s}
	l.trimmed = 0
	l.prods = make(producers)
	l.active = s
	l.next, l.commit, l.durable = base, base, base
	l.sinceCkpt = 0
	l.ckptNext = base
	l.truncations++
	l.dirMu.Lock()
	l.dirsPending = true // the new segment's entry, on its first fdatasync
	l.dirMu.Unlock()
	l.hwMu.Lock()
	l.hw = commitPoint{next: base, seg: s, pos: 0}
	if l.hwCh != nil {
		close(l.hwCh)
		l.hwCh = nil
	}
	l.hwMu.Unlock()
	l.cond.Broadcast()
	l.log.Info("log emptied; it starts again", "offset", base)
	return nil
}

// removeAll deletes every file of the log in its directory, in the order
// Reset describes, and syncs the directory. Files of the log that it does
// not hold in memory (indexes left by an interrupted deletion) go too.
// Called with ckptMu, mu and segMu held.
func (l *Log) removeAll() error {
	names, err := l.fs.List(l.dir)
	if vfs.IsNotExist(err) {
		return nil // a new log that nothing was written to yet
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", l.dir, err)
	}
	var first []string            // the checkpoint, and the files in the order they go
	bases := map[int64][]string{} // a segment's files, by base offset
	start := false
	for _, n := range names {
		switch n {
		case checkpointName, checkpointTmp, startTmp:
			first = append(first, n)
			continue
		case startName:
			start = true
			continue
		}
		for _, suffix := range []string{pendingSuffix, logSuffix, indexSuffix, timeIndexSuffix} {
			if b, ok := parseBaseName(n, suffix); ok {
				bases[b] = append(bases[b], n)
				break
			}
		}
	}
	order := make([]int64, 0, len(bases))
	for b := range bases {
		order = append(order, b)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] > order[j] }) // last first
	for _, b := range order {
		// The indexes before the data: a segment file without its indexes
		// is rebuilt by recovery; indexes without their file are not
		// looked at, but a segment created there later must not find them.
		fs := bases[b]
		slices.SortFunc(fs, func(x, y string) int { return rank(x) - rank(y) })
		first = append(first, fs...)
	}
	if start {
		first = append(first, startName) // after the first segment's data
	}
	for _, n := range first {
		if err := l.fs.Remove(filepath.Join(l.dir, n)); err != nil && !vfs.IsNotExist(err) {
			return fmt.Errorf("remove %s: %w", n, err)
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("%w: sync directory %s: %w", errSync, l.dir, err)
	}
	return nil
}

// rank orders the files of one segment for removal: indexes, then data.
func rank(name string) int {
	if _, ok := parseBaseName(name, indexSuffix); ok {
		return 0
	}
	if _, ok := parseBaseName(name, timeIndexSuffix); ok {
		return 0
	}
	return 1
}
