package seglog

import (
	"fmt"

	"github.com/sensehq/sense/batch"
)

// The methods in this file serve a log that is one replica of a raft
// group (package replica): raft, not the log, decides what is appended and
// where a suffix is cut, and what is committed is known above the log.

// AppendReplicated writes the record batch b at the log's end as a replica
// does: it stamps b's base offset (the log's next offset) and epoch,
// records its producer sequences without checking them (the leader checked
// them before proposing) and returns without waiting: the batch is durable
// after Sync (or as the policy makes it). The CRC is checked unless
// trusted. It returns the batch's base offset and the offset after it.
func (l *Log) AppendReplicated(b []byte, epoch int32, trusted bool) (base, next int64, err error) {
	h, err := l.checkBatch(b, trusted)
	if err != nil {
		return 0, 0, err
	}
	if err := l.lockForAppend(len(b)); err != nil {
		return 0, 0, err
	}
	defer l.mu.Unlock()
	base = l.next
	batch.SetBaseOffset(b, base)
	batch.SetLeaderEpoch(b, epoch)
	h.BaseOffset, h.LeaderEpoch = base, epoch
	next, err = l.writeLocked(b, &h)
	return base, next, err
}

// CheckSequence decides an idempotent batch against the producer state of
// what the log holds, without writing: dup reports that the batch repeats
// one of the producer's last batches, whose offsets are [base, last]; err
// is ErrOutOfOrderSequence, ErrDuplicateSequence or ErrProducerFenced as
// Append would return. A header that is not idempotent passes.
func (l *Log) CheckSequence(h *batch.Header, sparse bool) (base, last int64, dup bool, err error) {
	if !h.Idempotent() {
		return 0, 0, false, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, err := l.prods.check(h, sparse)
	if err != nil || e == nil {
		return 0, 0, false, err
	}
	return e.base, e.last, true, nil
}

// ScanHeaders calls fn with the header of every batch written to the log
// from offset from (a batch boundary at or after the log's start) to its
// end, in order, whether or not it is durable yet. It reads only headers.
// It must not run concurrently with appends or truncation (a replica calls
// it when it opens the log).
func (l *Log) ScanHeaders(from int64, fn func(h *batch.Header) error) error {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	if start := l.startLocked(); from < start {
		return fmt.Errorf("%w: offset %d, log starts at %d", ErrOffsetOutOfRange, from, start)
	}
	_, i := l.findLocked(from)
	if i < 0 {
		return fmt.Errorf("%w: offset %d", ErrOffsetOutOfRange, from)
	}
	hb := getHeaderBuf()
	defer headerPool.Put(hb)
	for ; i < len(l.segs); i++ {
		s := l.segs[i]
		pos, base := s.lookup(from)
		if s.base > from {
			pos, base = 0, s.base
		}
		v := readView{seg: s, limit: s.size}
		for pos < s.size {
			if err := readFull(s.f, hb[:], pos); err != nil {
				return v.corrupt(pos, base, err)
			}
			h, err := batch.ParseHeader(hb[:])
			if err != nil {
				return v.corrupt(pos, base, err)
			}
			if h.BaseOffset != base {
				return v.corrupt(pos, base, fmt.Errorf("batch has base offset %d", h.BaseOffset))
			}
			if pos+int64(h.Size()) > s.size {
				return v.corrupt(pos, base, fmt.Errorf("batch of %d bytes runs past the segment's end %d", h.Size(), s.size))
			}
			if h.BaseOffset >= from {
				if err := fn(&h); err != nil {
					return err
				}
			}
			pos += int64(h.Size())
			base = h.NextOffset()
		}
	}
	return nil
}

// ReadBelow is Read that returns only batches that end at or before until
// (a replica's commit point): at until, or when the first batch would pass
// it, it returns dst unchanged.
func (l *Log) ReadBelow(dst []byte, offset int64, maxBytes int, until int64) ([]byte, error) {
	if offset >= until {
		if offset > until {
			return dst, fmt.Errorf("%w: offset %d is past the high watermark %d", ErrOffsetOutOfRange, offset, until)
		}
		return dst, nil
	}
	start := len(dst)
	dst, err := l.Read(dst, offset, maxBytes)
	if err != nil {
		return dst, err
	}
	return dst[:start+cutAt(dst[start:], until)], nil
}

// LocateBelow is Locate bounded like ReadBelow.
func (l *Log) LocateBelow(offset int64, maxBytes int, until int64) (Slice, error) {
	if offset >= until {
		if offset > until {
			return Slice{}, fmt.Errorf("%w: offset %d is past the high watermark %d", ErrOffsetOutOfRange, offset, until)
		}
		return Slice{}, nil
	}
	s, err := l.Locate(offset, maxBytes)
	if err != nil || s.NextOffset <= until {
		return s, err
	}
	// Rare: the local log is ahead of the commit point. Read the headers
	// again to find where to cut.
	buf := make([]byte, 0, s.Len)
	buf, err = l.Read(buf, offset, int(s.Len))
	if err != nil {
		s.Release()
		return Slice{}, err
	}
	n := cutAt(buf, until)
	if n == 0 {
		s.Release()
		return Slice{}, nil
	}
	next, err := lastNext(buf[:n])
	if err != nil {
		s.Release()
		return Slice{}, err
	}
	s.Len, s.NextOffset = int64(n), next
	return s, nil
}

// cutAt returns the length of the run of whole batches at the start of b
// that end at or before until.
func cutAt(b []byte, until int64) int {
	n := 0
	for n < len(b) {
		h, err := batch.ParseHeader(b[n:])
		if err != nil || h.NextOffset() > until {
			break
		}
		n += h.Size()
	}
	return n
}
