package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/sensehq/sense/batch"
)

// A log's start can move forward without a segment being cut: Trim
// records a new start offset (Kafka's log start offset, as DeleteRecords
// moves it), below which readers see nothing, and deletes the segments
// that hold only offsets below it. The segment holding the new start
// stays whole on disk; its batches below the start are never served
// again. The start is kept in its own file, written only by Trim:
//
//	 0  [8]byte "SENSELS1"
//	 8  int64   start offset
//	16  uint32  CRC-32C of the 16 bytes before
//
// replaced atomically like the checkpoint (start-offset.tmp, sync,
// rename, directory sync). A log without the file starts at its first
// segment. The start is a batch boundary at or below the log's end: Trim
// makes the log durable up to it before it writes the file, so no crash
// leaves a log whose start is past its end.
const (
	startName  = "start-offset"
	startTmp   = startName + ".tmp"
	startMagic = "SENSELS1"
	startSize  = 20
)

// encodeStart returns the start offset file recording offset.
func encodeStart(offset int64) []byte {
	b := make([]byte, 0, startSize)
	b = append(b, startMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(offset))
	return binary.BigEndian.AppendUint32(b, batch.Checksum(b))
}

// decodeStart parses a start offset file.
func decodeStart(b []byte) (int64, error) {
	if len(b) != startSize || string(b[:8]) != startMagic {
		return 0, fmt.Errorf("%d bytes without the %s magic; want %d", len(b), startMagic, startSize)
	}
	if batch.Checksum(b[:16]) != binary.BigEndian.Uint32(b[16:]) {
		return 0, errors.New("CRC mismatch")
	}
	off := int64(binary.BigEndian.Uint64(b[8:]))
	if off < 0 {
		return 0, fmt.Errorf("negative start offset %d", off)
	}
	return off, nil
}

// startLocked is the first offset readers see: the first segment's base,
// or the start Trim moved past it. Called with segMu held.
func (l *Log) startLocked() int64 { return max(l.segs[0].base, l.trimmed) }

// Trim moves the log's start to offset, which must be a batch boundary at
// or below the high watermark: reads below it fail with
// ErrOffsetOutOfRange, StartOffset returns it, and the segments holding
// only offsets below it are deleted (the active segment never is; a
// segment still being sealed is deleted once sealed). The new start is
// durable when Trim returns. A start at or below the current one changes
// nothing. A failure to write or sync the start offset file fails the
// log, like any failed write or sync; a failure to delete a segment does
// not (the next Trim, or the next open, deletes it).
func (l *Log) Trim(offset int64) error {
	l.ckptMu.Lock()
	defer l.ckptMu.Unlock()
	moves, err := l.checkTrim(offset)
	if err != nil {
		return err
	}
	if moves {
		// Everything below the new start is durable first (it is, under
		// SyncAlways, up to the high watermark): a crash must not leave
		// the start past the log's end.
		l.mu.Lock()
		behind := l.durable < offset
		l.mu.Unlock()
		if behind {
			if err := l.Sync(); err != nil {
				return err
			}
		}
		if err := l.ensureDirs(); err != nil {
			return l.fail(err)
		}
		if err := replaceFile(l.fs, l.dir, startName, encodeStart(offset)); err != nil {
			return l.fail(fmt.Errorf("trim to offset %d: %w", offset, err))
		}
		l.segMu.Lock()
		l.trimmed = offset
		l.segMu.Unlock()
		l.log.Info("log start moved", "start", offset)
	}
	if err := l.dropBelowStart(); err != nil {
		return fmt.Errorf("seglog: the start of %s moved to %d, but the segments below it are not all deleted: %w", l.dir, offset, err)
	}
	return nil
}

// checkTrim reports whether Trim(offset) moves the start, or why it may
// not.
func (l *Log) checkTrim(offset int64) (bool, error) {
	l.mu.Lock()
	err := l.usableLocked()
	l.mu.Unlock()
	if err != nil {
		return false, err
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if l.closed {
		return false, ErrClosed
	}
	if offset <= l.startLocked() {
		return false, nil
	}
	l.hwMu.Lock()
	hw := l.hw.next
	l.hwMu.Unlock()
	if offset > hw {
		return false, fmt.Errorf("%w: cannot trim %s to offset %d, past its high watermark %d", ErrOffsetOutOfRange, l.dir, offset, hw)
	}
	if offset == hw {
		return true, nil
	}
	v, _, err := l.viewLocked(offset)
	if err != nil {
		return false, err
	}
	if _, base, err := v.seek(offset); err != nil {
		return false, err
	} else if base != offset {
		return false, fmt.Errorf("%w: cannot trim %s to offset %d, inside the batch starting at %d", ErrNotBatchBoundary, l.dir, offset, base)
	}
	return true, nil
}

// dropBelowStart deletes the segments that hold only offsets below the
// start Trim set.
func (l *Log) dropBelowStart() error {
	l.segMu.RLock()
	start := l.trimmed
	l.segMu.RUnlock()
	if start == 0 {
		return nil
	}
	_, _, err := l.dropFront("trim", func(s *segment, _ int64) bool { return s.next <= start })
	return err
}

// loadStart reads the start offset file, if any, at open (after
// recovery): it checks that the start is a batch boundary within the log
// and deletes the segments wholly below it (a crash may have come between
// Trim's file and the deletion).
func (l *Log) loadStart() error {
	path := filepath.Join(l.dir, startName)
	raw, err := readWhole(l.fs, path, 4<<10)
	if err != nil {
		return fmt.Errorf("seglog: read the start offset file: %w", err)
	}
	if raw == nil {
		return nil
	}
	start, err := decodeStart(raw)
	if err != nil {
		return fmt.Errorf("%w: start offset file %s: %v; it records where the log starts after a trim: restore it from a backup, or remove it to serve the log from its first segment (records trimmed from the log come back)", ErrCorrupt, path, err)
	}
	l.segMu.Lock()
	first := l.segs[0].base
	if start > l.next {
		l.segMu.Unlock()
		return fmt.Errorf("%w: start offset file %s says the log starts at offset %d, but it ends at %d: records below the start were lost", ErrCorrupt, path, start, l.next)
	}
	if start > first && start < l.next {
		v, _, err := l.viewLocked(start)
		var base int64
		if err == nil {
			_, base, err = v.seek(start)
		}
		if err == nil && base != start {
			err = fmt.Errorf("offset %d is inside the batch starting at %d", start, base)
		}
		if err != nil {
			l.segMu.Unlock()
			return fmt.Errorf("%w: start offset file %s: the start is not a batch of the log: %w", ErrCorrupt, path, err)
		}
	}
	l.trimmed = start
	l.segMu.Unlock()
	return l.dropBelowStart()
}
