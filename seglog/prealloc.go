package seglog

import (
	"bytes"
	"fmt"
	"io"
)

// zeroChunk is what preallocation writes.
var zeroChunk [1 << 20]byte

// preallocate, when the file of s holds fewer than need bytes, extends it
// PreallocateBytes past need (at most to SegmentBytes) with written zeros, then fdatasyncs it: the new size and
// the blocks are durable before appends rely on them, and the fdatasync of
// a later append overwrites allocated, initialized blocks instead of
// growing the file (which would make it write the inode synchronously).
// Real zeros rather than fallocate: an unwritten extent would still need
// converting, a metadata write, at the fdatasync after each append.
//
// The zeros past s.size are not data: recovery takes an all-zero tail as
// the end of the segment, and a seal trims it. An error fails the log.
func (l *Log) preallocate(s *segment, need int64) error {
	if need <= s.alloc || l.opts.PreallocateBytes <= 0 {
		return nil // a write past alloc grows the file; writeLocked updates alloc
	}
	target := min(need+l.opts.PreallocateBytes, l.opts.SegmentBytes)
	if target <= s.alloc {
		return nil
	}
	for off := s.alloc; off < target; {
		n := int(min(int64(len(zeroChunk)), target-off))
		if _, err := s.f.WriteAt(zeroChunk[:n], off); err != nil {
			return fmt.Errorf("preallocate %s: write zeros at bytes %d to %d: %w", s.path(logSuffix), off, off+int64(n), err)
		}
		off += int64(n)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("preallocate %s: fdatasync after extending it to %d bytes: %w", s.path(logSuffix), target, err)
	}
	s.alloc = target
	return nil
}

// extendAheadLocked starts a background extension of the active segment
// once fewer than half of PreallocateBytes of written zeros are left ahead
// of its end, so that appends seldom meet the end of its preallocation and
// never write the zeros themselves under the append lock. Called with mu
// held after a write.
func (l *Log) extendAheadLocked(s *segment) {
	p := l.opts.PreallocateBytes
	if p <= 0 || s.extending || s.alloc-s.size >= p/2 || s.alloc >= l.opts.SegmentBytes || l.failed != nil || l.closed {
		return
	}
	from, to := s.alloc, min(s.alloc+p, l.opts.SegmentBytes)
	s.extending = true
	go l.extend(s, from, to)
}

// extend writes zeros to s's file from byte from to byte to and
// fdatasyncs it, beside appends (which write below from meanwhile: see
// lockForAppend), then makes them the segment's preallocation. An error
// fails the log. An extension is always of the active segment: a roll, a
// truncation, a reset and Close wait for it to end (lockForAppend,
// lockSettled).
func (l *Log) extend(s *segment, from, to int64) {
	var err error
	for off := from; off < to && err == nil; {
		n := int(min(int64(len(zeroChunk)), to-off))
		if _, err = s.f.WriteAt(zeroChunk[:n], off); err != nil {
			err = fmt.Errorf("preallocate %s: write zeros at bytes %d to %d: %w", s.path(logSuffix), off, off+int64(n), err)
		}
		off += int64(n)
	}
	if err == nil {
		if err = s.f.Sync(); err != nil {
			err = fmt.Errorf("preallocate %s: fdatasync after extending it to %d bytes: %w", s.path(logSuffix), to, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s.extending = false
	l.cond.Broadcast()
	if err != nil {
		l.failLocked(err)
		return
	}
	s.alloc = max(s.alloc, to)
}

// zeroFrom reports whether the bytes of s's file from pos to its end are
// all zero: a preallocated tail, or growth whose data never reached the
// disk, and either way the end of the segment's data.
func zeroFrom(s *segment, pos int64) (bool, error) {
	buf := make([]byte, 1<<20)
	for pos < s.alloc {
		n := int(min(int64(len(buf)), s.alloc-pos))
		m, err := s.f.ReadAt(buf[:n], pos)
		if m < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return false, err
		}
		if !bytes.Equal(buf[:n], zeroChunk[:n]) {
			return false, nil
		}
		pos += int64(n)
	}
	return true, nil
}
