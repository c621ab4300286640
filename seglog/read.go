package seglog

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

// readView is what a reader may see of one segment: the bytes before limit.
type readView struct {
	seg   *segment
	limit int64
}

// viewLocked finds the segment holding offset and how far into it a reader
// may go. It returns ok=false when offset is the high watermark (nothing to
// read yet). Called with segMu read-locked.
func (l *Log) viewLocked(offset int64) (v readView, ok bool, err error) {
	if l.closed {
		return v, false, ErrClosed
	}
	l.hwMu.Lock()
	hw := l.hw
	l.hwMu.Unlock()
	start := l.startLocked()
	if offset < start || offset > hw.next {
		return v, false, fmt.Errorf("%w: offset %d, log holds [%d, %d)", ErrOffsetOutOfRange, offset, start, hw.next)
	}
	if offset == hw.next {
		return v, false, nil
	}
	s, _ := l.findLocked(offset)
	v.seg = s
	if s == hw.seg {
		v.limit = hw.pos
	} else {
		v.limit = s.size // a sealed segment below the high watermark
	}
	return v, true, nil
}

// seek returns the position and base offset of the batch that holds
// offset. Base offsets lie outside the CRC, so it checks that each batch
// starts where the one before ended.
func (v readView) seek(offset int64) (pos, base int64, err error) {
	pos, base, _, err = v.seekBatch(offset)
	return pos, base, err
}

// seekBatch is seek that also returns the size of the batch at pos: a
// recently appended batch is found in memory without reading a header;
// otherwise the headers from the nearest index entry on are read.
func (v readView) seekBatch(offset int64) (pos, base int64, size int, err error) {
	if r, ok := v.seg.lookupRecent(offset); ok && r.pos+int64(r.size) <= v.limit {
		return r.pos, r.base, r.size, nil
	}
	pos, base = v.seg.lookup(offset)
	hb := getHeaderBuf()
	defer headerPool.Put(hb)
	for pos < v.limit {
		if err := readFull(v.seg.f, hb[:], pos); err != nil {
			return 0, 0, 0, v.corrupt(pos, base, err)
		}
		h, err := batch.ParseHeader(hb[:])
		if err != nil {
			return 0, 0, 0, v.corrupt(pos, base, err)
		}
		if h.BaseOffset != base {
			return 0, 0, 0, v.corrupt(pos, base, fmt.Errorf("batch has base offset %d", h.BaseOffset))
		}
		if pos+int64(h.Size()) > v.limit {
			return 0, 0, 0, v.corrupt(pos, base, fmt.Errorf("batch of %d bytes runs past the segment's end %d", h.Size(), v.limit))
		}
		if h.NextOffset() > offset {
			return pos, base, h.Size(), nil
		}
		pos += int64(h.Size())
		base = h.NextOffset()
	}
	return 0, 0, 0, fmt.Errorf("%w: offset %d not found in segment %s", ErrOffsetOutOfRange, offset, v.seg.path(logSuffix))
}

func (v readView) corrupt(pos, offset int64, err error) error {
	return &CorruptionError{Segment: v.seg.path(logSuffix), Position: pos, Offset: offset, Err: err}
}

// readChecked reads whole batches starting at pos, where the batch with
// base offset base lies, into dst (which it grows): at most maxBytes of
// them but always at least one. It checks each batch's CRC, that base
// offsets follow on, and that leader epochs never decrease (the fields
// outside the CRC). It returns the grown dst and the bytes added.
//
// first is the size of the batch at pos when the caller knows it (0: read
// its header to learn it); the batches are checked whatever it says.
func (v readView) readChecked(dst []byte, pos, base int64, maxBytes, first int) ([]byte, int, error) {
	if first <= 0 {
		hb := getHeaderBuf()
		err := readFull(v.seg.f, hb[:batch.LogOverhead], pos)
		if err == nil {
			first, err = batch.Size(hb[:batch.LogOverhead])
		}
		headerPool.Put(hb)
		if err != nil {
			return dst, 0, v.corrupt(pos, -1, err)
		}
	}
	n := int(min(int64(max(maxBytes, first)), v.limit-pos))
	if n < first {
		return dst, 0, v.corrupt(pos, -1, fmt.Errorf("batch of %d bytes runs past the segment's end %d", first, v.limit))
	}
	start := len(dst)
	dst = grow(dst, n)
	chunk := dst[start : start+n]
	if err := readFull(v.seg.f, chunk, pos); err != nil {
		return dst[:start], 0, v.corrupt(pos, -1, err)
	}
	p := 0
	epoch := int32(-1 << 31)
	for p < n {
		if n-p < batch.LogOverhead {
			break
		}
		size, err := batch.Size(chunk[p:])
		if err != nil {
			return dst[:start], 0, v.corrupt(pos+int64(p), base, err)
		}
		if p+size > n {
			break // the next batch does not fit in maxBytes
		}
		h, err := batch.Check(chunk[p : p+size])
		if err == nil && h.BaseOffset != base {
			err = fmt.Errorf("batch has base offset %d", h.BaseOffset)
		}
		if err == nil && h.LeaderEpoch < epoch {
			err = fmt.Errorf("leader epoch %d after %d", h.LeaderEpoch, epoch)
		}
		if err != nil {
			return dst[:start], 0, v.corrupt(pos+int64(p), base, err)
		}
		epoch, base = h.LeaderEpoch, h.NextOffset()
		p += size
	}
	return dst[:start+p], p, nil
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

func readFull(f vfs.File, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Read appends to dst whole record batches starting with the one that holds
// offset, up to maxBytes in all but always at least one batch, without
// crossing a segment boundary. Every batch's CRC is checked; a damaged batch
// is never returned (the error is a *CorruptionError). At the high watermark
// Read returns dst unchanged and no error; before the start or past the
// high watermark it returns ErrOffsetOutOfRange.
func (l *Log) Read(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	v, ok, err := l.viewLocked(offset)
	if !ok {
		return dst, err
	}
	pos, base, first, err := v.seekBatch(offset)
	if err != nil {
		return dst, err
	}
	dst, _, err = v.readChecked(dst, pos, base, maxBytes, first)
	return dst, err
}

// Slice is a range of whole, checked batches in a segment file, for sending
// file bytes to a socket without copying them through user space (for an
// operating-system file, File().(vfs.OSFile) gives the *os.File). The file
// stays open until Release, even if retention deletes the segment.
type Slice struct {
	File     vfs.File
	Pos, Len int64
	// NextOffset is the offset after the last batch in the slice.
	NextOffset int64
	seg        *segment
}

// Release lets the segment's file be closed. Call it once.
func (s *Slice) Release() {
	if s.seg != nil {
		s.seg.f.unpin(false)
		s.seg.refs.Add(-1)
		s.seg.maybeClose()
		s.seg = nil
	}
}

// headerPool holds buffers for batch headers: a stack array handed to
// File.ReadAt (an interface method) would escape to the heap on every read.
var headerPool = sync.Pool{New: func() any { return new([batch.HeaderSize]byte) }}

func getHeaderBuf() *[batch.HeaderSize]byte { return headerPool.Get().(*[batch.HeaderSize]byte) }

var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

// Locate is Read without the copy: it finds the batches Read would return
// and gives their place in the segment file. The batches are still read once
// to check their CRCs (integrity is never traded for speed), but the caller
// may send them with sendfile. At the high watermark it returns a zero Slice.
func (l *Log) Locate(offset int64, maxBytes int) (Slice, error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	v, ok, err := l.viewLocked(offset)
	if !ok {
		return Slice{}, err
	}
	pos, base, first, err := v.seekBatch(offset)
	if err != nil {
		return Slice{}, err
	}
	bp := scratchPool.Get().(*[]byte)
	buf, n, err := v.readChecked((*bp)[:0], pos, base, maxBytes, first)
	next := int64(0)
	if err == nil {
		next, err = lastNext(buf)
	}
	if cap(buf) <= 4<<20 {
		*bp = buf[:0]
	}
	scratchPool.Put(bp)
	if err != nil {
		return Slice{}, err
	}
	f, err := v.seg.f.pin(false) // the descriptor stays open until Release
	if err != nil {
		return Slice{}, fmt.Errorf("seglog: open %s: %w", v.seg.path(logSuffix), err)
	}
	v.seg.refs.Add(1)
	return Slice{File: f, Pos: pos, Len: int64(n), NextOffset: next, seg: v.seg}, nil
}

// lastNext returns the offset after the last batch in a run of checked
// batches.
func lastNext(b []byte) (int64, error) {
	var next int64
	for len(b) > 0 {
		h, err := batch.ParseHeader(b)
		if err != nil {
			return 0, err
		}
		next = h.NextOffset()
		b = b[h.Size():]
	}
	return next, nil
}

// maybeClose closes a deleted segment's file once no Slice holds it.
func (s *segment) maybeClose() {
	if s.deleted.Load() && s.refs.Load() == 0 {
		s.closeOnce.Do(func() { s.f.Close() })
	}
}

// OffsetForTime returns the base offset of the first batch whose max
// timestamp is at or after ts (milliseconds), as Kafka's ListOffsets by
// timestamp does at batch granularity. It returns the high watermark when
// no acknowledged batch is that recent.
func (l *Log) OffsetForTime(ts int64) (int64, error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if l.closed {
		return 0, ErrClosed
	}
	l.hwMu.Lock()
	hw := l.hw
	l.hwMu.Unlock()
	start := l.startLocked()
	hb := getHeaderBuf()
	defer headerPool.Put(hb)
	for _, s := range l.segs {
		if s.base >= hw.next {
			break
		}
		if s.next <= start && s != hw.seg {
			continue // wholly below the start Trim set
		}
		v := readView{seg: s, limit: s.size}
		if s == hw.seg {
			v.limit = hw.pos
		} else if s.maxTS < ts && s.base < hw.seg.base {
			continue // sealed, and nothing in it is recent enough
		}
		pos, base := v.seekTime(ts)
		for pos < v.limit {
			if err := readFull(s.f, hb[:], pos); err != nil {
				return 0, v.corrupt(pos, base, err)
			}
			h, err := batch.ParseHeader(hb[:])
			if err == nil && h.BaseOffset != base {
				err = fmt.Errorf("batch has base offset %d", h.BaseOffset)
			}
			if err != nil {
				return 0, v.corrupt(pos, base, err)
			}
			if h.MaxTimestamp >= ts && h.BaseOffset >= start {
				return h.BaseOffset, nil
			}
			pos += int64(h.Size())
			base = h.NextOffset()
		}
	}
	return hw.next, nil
}

// seekTime returns where to start scanning for the first batch with a max
// timestamp at or after ts: the indexed batch before the first time-index
// entry that reaches ts.
func (v readView) seekTime(ts int64) (pos, base int64) {
	s := v.seg
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	j := sort.Search(len(s.tindex), func(j int) bool { return s.tindex[j].ts >= ts })
	if j == 0 {
		return 0, s.base
	}
	rel := s.tindex[j-1].rel
	i := sort.Search(len(s.index), func(i int) bool { return s.index[i].rel > rel }) - 1
	if i < 0 {
		return 0, s.base
	}
	return int64(s.index[i].pos), s.base + int64(s.index[i].rel)
}
