package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

const (
	logSuffix       = ".log"
	pendingSuffix   = ".pending.log" // a new segment until the one before is durable (see Log)
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	indexEntrySize  = 8  // uint32 relative offset, uint32 position
	timeEntrySize   = 12 // int64 timestamp, uint32 relative offset
)

func segmentName(base int64, suffix string) string {
	return fmt.Sprintf("%020d%s", base, suffix)
}

// parseSegmentName returns the base offset of a segment file name.
func parseSegmentName(name string) (int64, bool) { return parseBaseName(name, logSuffix) }

// parseBaseName returns the base offset of a file name made by
// segmentName(base, suffix).
func parseBaseName(name, suffix string) (int64, bool) {
	s, ok := strings.CutSuffix(name, suffix)
	if !ok || len(s) != 20 {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil && v >= 0
}

type indexEntry struct {
	rel uint32 // offset - base
	pos uint32 // byte position in the segment file
}

type timeEntry struct {
	ts  int64  // the segment's largest timestamp up to and including this batch
	rel uint32 // offset - base of that batch
}

// segment is one log file with its sparse offset and time indexes.
//
// Fields other than refs and deleted are guarded by the log's locks: the
// append path (Log.mu) changes size, next and the index tails of the active
// segment; readers see only what the high watermark covers.
type segment struct {
	dir  string
	base int64
	f    *segFile // opened on use, closed past the cache's limit (Files)

	size  int64 // bytes in the file that belong to the log (the logical end)
	alloc int64 // the file's size: zeros written past size by preallocation
	// extending: a background extension is writing zeros from extFrom
	// (Log.extend); no append writes past extFrom until it ends.
	extending bool
	extFrom   int64
	next      int64 // offset after the last batch
	maxTS     int64 // largest batch max timestamp, -1 if none

	idxMu        sync.RWMutex // guards index, tindex and recent against concurrent readers
	index        []indexEntry
	tindex       []timeEntry
	lastIndexPos int64 // position of the last index entry, -1 if none
	// recent is a ring of the last batches appended to the segment (the
	// newest at recentEnd-1): a reader tailing the log finds the place of
	// the batch it wants without reading the headers between the last
	// sparse index entry and it.
	recent    [recentBatches]recentBatch
	recentN   int
	recentEnd int

	firstAppend time.Time // for age-based rolling; zero until the first append

	// compacting: a compaction pass reads the segment and may replace it;
	// retention and trims leave it alone meanwhile. Guarded by the log's
	// segMu.
	compacting bool

	refs      atomic.Int32 // open Slices
	deleted   atomic.Bool  // removed from the log; close when refs reaches 0
	closeOnce sync.Once
}

func (s *segment) path(suffix string) string {
	return filepath.Join(s.dir, segmentName(s.base, suffix))
}

// recentBatches is how many of the last appended batches a segment
// remembers the place of.
const recentBatches = 64

// recentBatch is the place of a batch appended to a segment.
type recentBatch struct {
	base, next int64
	pos        int64
	size       int
}

// addBatch updates the indexes for a batch written at pos.
func (s *segment) addBatch(h *batch.Header, pos int64, interval int64) {
	s.idxMu.Lock()
	if s.lastIndexPos < 0 || pos-s.lastIndexPos >= interval {
		rel := uint32(h.BaseOffset - s.base)
		s.index = append(s.index, indexEntry{rel: rel, pos: uint32(pos)})
		if h.MaxTimestamp > s.maxTS {
			s.tindex = append(s.tindex, timeEntry{ts: h.MaxTimestamp, rel: rel})
		}
		s.lastIndexPos = pos
	}
	s.recent[s.recentEnd] = recentBatch{base: h.BaseOffset, next: h.NextOffset(), pos: pos, size: h.Size()}
	s.recentEnd = (s.recentEnd + 1) % recentBatches
	s.recentN = min(s.recentN+1, recentBatches)
	s.idxMu.Unlock()
	if h.MaxTimestamp > s.maxTS {
		s.maxTS = h.MaxTimestamp
	}
	s.size = pos + int64(h.Size())
	s.next = h.NextOffset()
}

// sealTimeIndex adds a final time entry so the time index's last entry holds
// the segment's largest timestamp.
func (s *segment) sealTimeIndex() {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if s.maxTS >= 0 && (len(s.tindex) == 0 || s.tindex[len(s.tindex)-1].ts < s.maxTS) {
		rel := uint32(0)
		if n := len(s.index); n > 0 {
			rel = s.index[n-1].rel
		}
		s.tindex = append(s.tindex, timeEntry{ts: s.maxTS, rel: rel})
	}
}

// lookup returns the position and base offset of the last indexed batch at
// or before offset.
func (s *segment) lookup(offset int64) (pos, base int64) {
	rel := offset - s.base
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	i := sort.Search(len(s.index), func(i int) bool { return int64(s.index[i].rel) > rel })
	if i == 0 {
		return 0, s.base
	}
	return int64(s.index[i-1].pos), s.base + int64(s.index[i-1].rel)
}

// lookupRecent returns the place of the batch holding offset when it is
// one of the last appended ones.
func (s *segment) lookupRecent(offset int64) (recentBatch, bool) {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	for k := 1; k <= s.recentN; k++ {
		r := s.recent[(s.recentEnd-k+recentBatches)%recentBatches]
		if r.base <= offset {
			return r, offset < r.next
		}
	}
	return recentBatch{}, false
}

// cutIndexes drops the index entries at or past pos and the time entries
// of the batches they covered. Callers cut at an indexed position (or 0) and
// rescan the batches from there, which rebuilds exact entries.
func (s *segment) cutIndexes(pos int64) {
	i := sort.Search(len(s.index), func(i int) bool { return int64(s.index[i].pos) >= pos })
	j := len(s.tindex)
	if i < len(s.index) {
		rel := s.index[i].rel
		j = sort.Search(len(s.tindex), func(j int) bool { return s.tindex[j].rel >= rel })
	}
	s.idxMu.Lock()
	s.index, s.tindex = s.index[:i], s.tindex[:j]
	// The recent batches at or past pos are gone; those before it stay.
	for s.recentN > 0 && s.recent[(s.recentEnd-1+recentBatches)%recentBatches].pos >= pos {
		s.recentEnd = (s.recentEnd - 1 + recentBatches) % recentBatches
		s.recentN--
	}
	s.idxMu.Unlock()
	s.lastIndexPos = -1
	if i > 0 {
		s.lastIndexPos = int64(s.index[i-1].pos)
	}
	s.maxTS = -1
	if j > 0 {
		s.maxTS = s.tindex[j-1].ts
	}
}

// writeIndexes rewrites the segment's index files whole and syncs them.
// Each ends with the CRC-32C of its entries, so a damaged or half-written
// index is noticed on open and rebuilt.
func (s *segment) writeIndexes(fs vfs.FS, idx []indexEntry, tidx []timeEntry) error {
	if err := writeIndexFile(fs, s.path(indexSuffix), encodeIndex(idx)); err != nil {
		return err
	}
	return writeIndexFile(fs, s.path(timeIndexSuffix), encodeTimeIndex(tidx))
}

func writeIndexFile(fs vfs.FS, path string, data []byte) error {
	data = binary.BigEndian.AppendUint32(data, batch.Checksum(data))
	f, err := fs.OpenRW(path)
	if vfs.IsNotExist(err) {
		f, err = fs.Create(path)
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		f.Close()
		return fmt.Errorf("truncate %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%w: sync %s: %w", errSync, path, err)
	}
	return f.Close()
}

// checkedEntries strips and checks the CRC trailer of an index file.
func checkedEntries(raw []byte, entrySize int) ([]byte, bool) {
	if len(raw) < 4 || (len(raw)-4)%entrySize != 0 {
		return nil, false
	}
	body := raw[:len(raw)-4]
	return body, batch.Checksum(body) == binary.BigEndian.Uint32(raw[len(raw)-4:])
}

// errSync marks an fsync failure, which fails the log.
var errSync = errors.New("fsync failed")

func encodeIndex(es []indexEntry) []byte {
	b := make([]byte, 0, len(es)*indexEntrySize)
	for _, e := range es {
		b = binary.BigEndian.AppendUint32(b, e.rel)
		b = binary.BigEndian.AppendUint32(b, e.pos)
	}
	return b
}

func encodeTimeIndex(es []timeEntry) []byte {
	b := make([]byte, 0, len(es)*timeEntrySize)
	for _, e := range es {
		b = binary.BigEndian.AppendUint64(b, uint64(e.ts))
		b = binary.BigEndian.AppendUint32(b, e.rel)
	}
	return b
}

// readWhole reads a whole small file; a missing file gives nil, nil.
func readWhole(fs vfs.FS, path string, limit int64) ([]byte, error) {
	f, err := fs.Open(path)
	if vfs.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d expected", path, n, limit)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, err
	}
	return b, nil
}

// loadIndexes reads the segment's index files and checks them against the
// segment: entries strictly increasing, positions inside the file, the
// first entry at (0, 0), and the last entry pointing at a batch with the
// right base offset. It reports false when the indexes must be rebuilt.
func (s *segment) loadIndexes(fs vfs.FS, limitPos int64) (bool, error) {
	maxEntries := s.size/batch.HeaderSize + 1
	raw, err := readWhole(fs, s.path(indexSuffix), maxEntries*indexEntrySize+4)
	if err != nil {
		return false, nil
	}
	raw, ok := checkedEntries(raw, indexEntrySize)
	if !ok || len(raw) == 0 {
		return false, nil
	}
	traw, err := readWhole(fs, s.path(timeIndexSuffix), maxEntries*timeEntrySize+4)
	if err != nil {
		return false, nil
	}
	if traw, ok = checkedEntries(traw, timeEntrySize); !ok {
		return false, nil
	}
	idx := make([]indexEntry, 0, len(raw)/indexEntrySize)
	for b := raw; len(b) > 0; b = b[indexEntrySize:] {
		e := indexEntry{rel: binary.BigEndian.Uint32(b), pos: binary.BigEndian.Uint32(b[4:])}
		if int64(e.pos) >= limitPos {
			break // past the trusted part (a checkpoint's position)
		}
		if n := len(idx); n == 0 && (e.rel != 0 || e.pos != 0) ||
			n > 0 && (e.rel <= idx[n-1].rel || e.pos <= idx[n-1].pos) {
			return false, nil
		}
		idx = append(idx, e)
	}
	if len(idx) == 0 {
		return false, nil
	}
	last := idx[len(idx)-1]
	var hdr [batch.HeaderSize]byte
	if _, err := s.f.ReadAt(hdr[:], int64(last.pos)); err != nil {
		return false, nil
	}
	h, err := batch.ParseHeader(hdr[:])
	if err != nil || h.BaseOffset != s.base+int64(last.rel) {
		return false, nil
	}
	tidx := make([]timeEntry, 0, len(traw)/timeEntrySize)
	for b := traw; len(b) > 0; b = b[timeEntrySize:] {
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(b)), rel: binary.BigEndian.Uint32(b[8:])}
		if e.rel > last.rel {
			break
		}
		if n := len(tidx); n > 0 && (e.ts < tidx[n-1].ts || e.rel < tidx[n-1].rel) {
			return false, nil
		}
		tidx = append(tidx, e)
	}
	s.index, s.tindex = idx, tidx
	s.lastIndexPos = int64(last.pos)
	s.maxTS = -1
	if n := len(tidx); n > 0 {
		s.maxTS = tidx[n-1].ts
	}
	return true, nil
}

// scanner reads consecutive batches from a segment file in large chunks.
type scanner struct {
	f     vfs.File
	buf   []byte
	bufAt int64 // file position of buf[0]
	end   int64 // file size
}

func newScanner(f vfs.File, end int64) *scanner {
	return &scanner{f: f, end: end, bufAt: -1}
}

// at returns the n bytes at pos, or fewer if the file ends first.
func (sc *scanner) at(pos int64, n int) ([]byte, error) {
	if pos+int64(n) > sc.end {
		n = int(sc.end - pos)
	}
	if n <= 0 {
		return nil, nil
	}
	if sc.bufAt >= 0 && pos >= sc.bufAt && pos+int64(n) <= sc.bufAt+int64(len(sc.buf)) {
		return sc.buf[pos-sc.bufAt : pos-sc.bufAt+int64(n)], nil
	}
	want := max(n, 1<<20)
	if pos+int64(want) > sc.end {
		want = int(sc.end - pos)
	}
	if cap(sc.buf) < want {
		sc.buf = make([]byte, want)
	}
	sc.buf = sc.buf[:want]
	m, err := sc.f.ReadAt(sc.buf, pos)
	if m < want {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		sc.bufAt = -1
		return nil, err
	}
	sc.bufAt = pos
	return sc.buf[:n], nil
}

// batchAt reads and fully checks the batch at pos. A nil error means a
// valid batch; an error wrapping batch.ErrShort means the file ends inside
// the batch.
func (sc *scanner) batchAt(pos int64) ([]byte, batch.Header, error) {
	hb, err := sc.at(pos, batch.HeaderSize)
	if err != nil {
		return nil, batch.Header{}, err
	}
	if len(hb) < batch.HeaderSize {
		if len(hb) >= batch.LogOverhead {
			if _, err := batch.Size(hb); err != nil {
				return nil, batch.Header{}, err
			}
		}
		return nil, batch.Header{}, fmt.Errorf("%w: %d bytes left in the file", batch.ErrShort, len(hb))
	}
	h, err := batch.ParseHeader(hb)
	if err != nil {
		return nil, h, err
	}
	if pos+int64(h.Size()) > sc.end {
		return nil, h, fmt.Errorf("%w: batch of %d bytes, %d left in the file", batch.ErrShort, h.Size(), sc.end-pos)
	}
	b, err := sc.at(pos, h.Size())
	if err != nil {
		return nil, h, err
	}
	h, err = batch.Check(b)
	return b, h, err
}

// findValidAfter reports whether a valid batch with a base offset at or
// past minOffset starts anywhere in (pos, end): evidence that damage at pos
// is not a torn tail.
func (sc *scanner) findValidAfter(pos, minOffset int64) bool {
	for p := pos + 1; p+batch.HeaderSize <= sc.end; p++ {
		hb, err := sc.at(p, batch.HeaderSize)
		if err != nil || len(hb) < batch.HeaderSize || hb[batch.OffMagic] != batch.Magic {
			continue
		}
		// A batch found there must continue the offsets: every offset
		// between the damage and p took at least one byte. This filter
		// keeps random bytes from costing a CRC each.
		h, err := batch.ParseHeader(hb)
		if err != nil || h.BaseOffset < minOffset || h.BaseOffset > minOffset+(p-pos) || p+int64(h.Size()) > sc.end {
			continue
		}
		if _, _, err := sc.batchAt(p); err == nil {
			return true
		}
	}
	return false
}
