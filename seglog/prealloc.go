package seglog

import (
	"bytes"
	"fmt"
	"io"
)

// zeroChunk is what preallocation writes.
var zeroChunk [1 << 20]byte

// Preallocation (Options.PreallocateBytes) keeps written zeros ahead of
// the active segment's end, so that the fdatasync of an append overwrites
// allocated, initialized blocks instead of growing the file, which would
// make it write the inode synchronously, and on ext4 (data=ordered) tie it
// to the journal commit that also flushes other files' new blocks: a
// critical buffer's fsync would wait for a low one's writes. Real zeros
// rather than fallocate: an unwritten extent would still need converting,
// a metadata write, at the fdatasync after each append.
//
// It is lazy and in the background: a segment gets no zeros until it is
// written to (an idle buffer costs no disk), and the zeros are written
// beside the appends, never under the append lock. The zeros past size are
// not data: recovery takes an all-zero tail as the end of the segment (a
// hole reads as zeros too), and a seal trims it.

// extendAheadLocked starts a background extension of the active segment
// once fewer than half of PreallocateBytes of written zeros are left ahead
// of its end. The zeros start at the file's end, or, when fewer than a
// quarter of PreallocateBytes of them are left (a new segment), that far
// past the data: the appends meanwhile grow the file below them. Called
// with mu held after a write.
func (l *Log) extendAheadLocked(s *segment) {
	p := l.opts.PreallocateBytes
	// A log that never fdatasyncs its appends gains nothing from zeros
	// ahead of them.
	if p <= 0 || l.opts.Durability.Mode == SyncNever || s.extending || s.alloc-s.size >= p/2 || l.failed != nil || l.closed {
		return
	}
	from := max(s.alloc, s.size+p/4)
	to := min(from+p, l.opts.SegmentBytes)
	if from >= to {
		return
	}
	s.extending, s.extFrom = true, from
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
