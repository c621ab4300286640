package seglog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

// Compaction (docs/storage.md, "Compaction").
//
// Compact keeps, below an end point, the latest record of each key: a
// record goes when a later record with the same key lies below the end
// point, or when it is a tombstone (a null value) older than
// CompactOptions.TombstonesBefore. Offsets never change: a batch that
// keeps some of its records is rebuilt at the same base offset with the
// same last offset delta, producer fields, timestamps and leader epoch
// (only the kept records, with their own offset deltas, recompressed with
// the batch's codec); a batch that keeps none is either kept as an empty
// batch (its header alone: KeepBatches, or the batch is one of the last
// five of its idempotent producer) or dropped, and a run of dropped
// batches is replaced by one empty filler batch that spans their offsets,
// so that the offsets of a segment stay contiguous and every reader's
// offset-chain check holds unchanged.
//
// Only sealed segments are read and rewritten, never the active one nor
// one whose seal is pending. Appends go on meanwhile. Consecutive sealed
// segments are rewritten together into one file (as long as their sizes
// before compaction add up to at most SegmentBytes). A pass swaps all its
// outputs in at once:
//
//  1. Each output is written to <base>.compact and fdatasynced.
//  2. The commit file "compaction" (the outputs' bases and end offsets) is
//     written as the checkpoint is (compaction.tmp, sync, rename,
//     directory sync). This is the commit point: before it recovery
//     deletes every .compact file; after it recovery completes the swap.
//  3. For each output, the index files of the segments it replaces, and
//     every such segment's file but the first, are deleted; the directory
//     is synced; each <base>.compact is renamed over <base>.log; the
//     directory is synced.
//  4. The commit file is deleted and the directory synced (so that a stale
//     one never names the outputs of a later pass).
//  5. The outputs replace their inputs in memory; their index files are
//     written.
//
// A crash at any point leaves the log as it was before the pass or as it
// is after it, never a mix. A failed fdatasync, rename, deletion or
// directory sync fails the log (never retried); a failed write of an
// output (a full disk) abandons the pass and leaves the log as it was.

// BatchAction is what compaction may do with a batch below its end point.
type BatchAction uint8

const (
	// CompactRecords: each record goes when a later record of its key lies
	// below the end point, or when it is a tombstone older than the
	// horizon; the batch's records count as the latest of their keys.
	CompactRecords BatchAction = iota
	// KeepBatch: the batch stays as it is, and its records hide no other
	// record (they are not the latest of their keys).
	KeepBatch
	// DropRecords: every record of the batch goes (for example an aborted
	// transaction's); its header stays or goes as an emptied batch's.
	DropRecords
)

// DefaultBatchAction is the BatchAction of CompactOptions.Batch when none
// is given: control batches (raft entries, trim records, transaction
// markers) and transactional batches are kept whole, and a transactional
// record never counts as the latest of its key (whether its transaction
// committed is not known here). Every other batch is compacted.
//
// This is the seam for transactions: a decider that knows which
// transactions were aborted or committed returns DropRecords for the
// batches of an aborted one and CompactRecords for those of a committed
// one, and may let a transaction's markers go once nothing below needs
// them.
func DefaultBatchAction(h *batch.Header) BatchAction {
	if h.Attributes&(batch.AttrControl|batch.AttrTransactional) != 0 {
		return KeepBatch
	}
	return CompactRecords
}

// DefaultCompactMaxKeys is CompactOptions.MaxKeys's default: about 40 MiB
// of key map.
const DefaultCompactMaxKeys = 1 << 20

// CompactOptions qualify a compaction.
type CompactOptions struct {
	// End: only batches below it are compacted (those at or past it, in a
	// sealed segment, are copied as they are). 0 or past the sealed
	// segments: the end of the last sealed segment.
	End int64
	// Roll first seals the active segment when it holds offsets below End
	// (or any data, with End 0), so that everything below End can be
	// compacted. A replicated log rolls this way, so that every replica
	// compacts the same batches.
	Roll bool
	// TombstonesBefore (Unix ms): a tombstone (a record with a key and a
	// null value) that is the latest of its key goes once its timestamp is
	// below this. 0 keeps every latest tombstone.
	TombstonesBefore int64
	// KeepBatches keeps every batch, an emptied one as its header alone
	// (record count 0), instead of dropping it: a raft log's entries are
	// its batches, counted by position.
	KeepBatches bool
	// Batch decides what may be done with each batch below End; nil is
	// DefaultBatchAction.
	Batch func(h *batch.Header) BatchAction
	// MaxKeys bounds the key map (24 bytes a key and the map's overhead);
	// 0 is DefaultCompactMaxKeys. When the sealed segments hold more keys,
	// End moves back to the first batch that would not fit, and what
	// follows waits for a later pass.
	MaxKeys int
}

// CompactStats describe one compaction pass.
type CompactStats struct {
	// End: batches below it were compacted.
	End int64
	// Segments is how many sealed segments were read; Rewritten how many
	// of them were replaced, by Written new ones.
	Segments, Rewritten, Written int
	// BytesBefore and BytesAfter are the sizes of the segments replaced
	// and of those that replaced them.
	BytesBefore, BytesAfter int64
	// Records is how many records were read below End, Removed how many
	// of them went; DroppedBatches how many batches were dropped whole.
	Records, Removed int64
	DroppedBatches   int64
	Duration         time.Duration
}

// errCompactRaced abandons a pass whose inputs changed under it (a
// truncation or a reset of the log).
var errCompactRaced = errors.New("seglog: compaction abandoned: the log was truncated or reset meanwhile")

// compactInput is a sealed segment being compacted, pinned open.
type compactInput struct {
	seg *segment
	f   vfs.File
}

const (
	compactSuffix = ".compact"   // a compaction's output, until its pass commits
	commitName    = "compaction" // a compaction's commit file, while its outputs are swapped in
	commitTmp     = "compaction.tmp"
)

// Compact compacts the log's sealed segments below o.End (see the
// comment at the top of compact.go). It runs beside appends and reads;
// one pass at a time per log. A pass that finds nothing to remove writes
// nothing.
func (l *Log) Compact(o CompactOptions) (CompactStats, error) {
	l.compactMu.Lock()
	defer l.compactMu.Unlock()
	t0 := time.Now()
	st := CompactStats{}
	if o.Batch == nil {
		o.Batch = DefaultBatchAction
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultCompactMaxKeys
	}
	if o.Roll {
		if err := l.rollBelow(o.End); err != nil {
			return st, err
		}
	}
	ins, gen, trimmed, err := l.compactInputs(o.End)
	if err != nil {
		return st, err
	}
	defer l.releaseInputs(ins)
	if len(ins) == 0 {
		return st, nil
	}
	end := ins[len(ins)-1].seg.next
	if o.End > 0 && o.End < end {
		end = o.End
	}
	c := &compactor{l: l, o: o, end: end, trimmed: trimmed, keys: make(map[[2]uint64]int64)}
	if !o.KeepBatches {
		c.prods = make(map[int64]*lastBatches)
	}
	if err := c.mapKeys(ins); err != nil {
		return st, err
	}
	st.End = c.end
	st.Segments = len(ins)
	var outs []compactOutput
	defer func() {
		for _, o := range outs {
			o.discard(l)
		}
	}()
	for i := 0; i < len(ins); {
		if ins[i].seg.base >= c.end {
			break
		}
		j := i + 1
		size := ins[i].seg.size
		for j < len(ins) && ins[j].seg.base < c.end && size+ins[j].seg.size <= l.opts.SegmentBytes {
			size += ins[j].seg.size
			j++
		}
		out, err := c.rewrite(ins[i:j])
		if err != nil {
			return st, err
		}
		if out.seg != nil {
			outs = append(outs, out)
		}
		i = j
	}
	if len(outs) > 0 {
		err := l.commitCompaction(outs, gen)
		if errors.Is(err, errCompactRaced) || errors.Is(err, ErrClosed) {
			return st, err // not committed: the deferred discard removes the outputs
		}
		committed := outs
		outs = nil
		if err != nil {
			return st, err
		}
		for _, o := range committed {
			st.Rewritten += len(o.ins)
			st.Written++
			for _, in := range o.ins {
				st.BytesBefore += in.seg.size
			}
			st.BytesAfter += o.seg.size
		}
	}
	st.Records, st.Removed, st.DroppedBatches = c.records, c.removed, c.dropped
	st.Duration = time.Since(t0)
	l.polMu.Lock()
	l.cleanEnd = max(l.cleanEnd, c.end)
	l.polMu.Unlock()
	if st.Written > 0 {
		l.log.Info("compacted", "segments", st.Rewritten, "into", st.Written, "bytes_before", st.BytesBefore,
			"bytes_after", st.BytesAfter, "records_removed", st.Removed, "end_offset", st.End, "duration", st.Duration)
	}
	return st, nil
}

// Roll seals the active segment now, if it holds any data, and returns
// once the seal is complete: everything written so far then lies in
// sealed segments, which compaction may rewrite.
func (l *Log) Roll() error { return l.rollBelow(0) }

// SetCompaction replaces the log's background compaction policy; a pass
// runs soon after if the log is dirty enough.
func (l *Log) SetCompaction(p CompactPolicy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	l.polMu.Lock()
	l.compaction = p
	l.polMu.Unlock()
	select {
	case l.ckptCh <- struct{}{}:
	default:
	}
	return nil
}

// Dirty returns the bytes of the sealed segments at or past the end point
// of the last compaction pass, and of all sealed segments: their ratio is
// what Kafka's min.cleanable.dirty.ratio compares. After a restart every
// sealed byte counts as dirty until a pass runs.
func (l *Log) Dirty() (dirty, sealed int64) {
	l.polMu.Lock()
	clean := l.cleanEnd
	l.polMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	for _, s := range l.segs {
		if s == l.active {
			break
		}
		sealed += s.size
		if s.next > clean {
			dirty += s.size
		}
	}
	return dirty, sealed
}

// LagPoint returns where compaction must stop for the records it removes
// to be at least lag old: the base of the first segment whose newest
// record is more recent (the active segment's base when none is). 0 lag:
// the log's end.
func (l *Log) LagPoint(lag time.Duration) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lag <= 0 {
		return l.next
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	horizon := l.opts.Now().Add(-lag).UnixMilli()
	for _, s := range l.segs {
		if s == l.active || s.maxTS > horizon {
			return s.base
		}
	}
	return l.active.base
}

// Due reports whether a log with these sizes (Dirty) is due for a pass
// under policy p.
func (p CompactPolicy) Due(dirty, sealed int64) bool {
	return p.Enabled && dirty > 0 && float64(dirty) >= p.DirtyRatio*float64(sealed)
}

// compactDue starts a background pass when the policy says the log is
// dirty enough and none is running.
func (l *Log) compactDue() {
	l.polMu.Lock()
	p := l.compaction
	l.polMu.Unlock()
	if !p.Enabled || !p.Due(l.Dirty()) || !l.compacting.CompareAndSwap(false, true) {
		return
	}
	l.polMu.Lock()
	clean := l.cleanEnd
	l.polMu.Unlock()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		st, err := l.Compact(CompactOptions{
			End:              l.LagPoint(p.MinLag),
			TombstonesBefore: l.opts.Now().Add(-p.TombstoneAge).UnixMilli(),
		})
		if err != nil && !errors.Is(err, ErrClosed) {
			l.log.Error("compaction failed", "err", err)
		}
		if l.opts.ObserveCompaction != nil && !errors.Is(err, ErrClosed) {
			l.opts.ObserveCompaction(st, err)
		}
		l.compacting.Store(false)
		if err == nil && st.End > clean {
			// Segments sealed during the pass may make the log due again.
			l.compactDue()
		}
	}()
}

// rollBelow seals the active segment if it holds offsets below end (any,
// with end 0) and finishes the seal.
func (l *Log) rollBelow(end int64) error {
	l.mu.Lock()
	a := l.active
	need := a.size > 0 && (end <= 0 || a.base < end)
	l.mu.Unlock()
	if need {
		if err := l.lockForAppend(int(l.opts.SegmentBytes)); err != nil {
			return err
		}
		l.mu.Unlock()
	}
	l.ckptMu.Lock()
	defer l.ckptMu.Unlock()
	return l.finishSeal()
}

// compactInputs pins the sealed segments a pass may read: from the first
// holding an offset at or past the log's start up to the last sealed one
// with a base below end (any, with end 0). They are marked compacting, so
// that retention and trims leave them alone until the pass ends.
func (l *Log) compactInputs(end int64) ([]compactInput, uint64, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return nil, 0, 0, err
	}
	l.segMu.Lock()
	defer l.segMu.Unlock()
	var ins []compactInput
	start := l.startLocked()
	for _, s := range l.segs {
		if s == l.active || l.sealing != nil && s == l.sealing.old || end > 0 && s.base >= end {
			break
		}
		if s.next <= start {
			continue
		}
		f, err := s.f.pin(false)
		if err != nil {
			l.releaseInputsLocked(ins)
			return nil, 0, 0, fmt.Errorf("seglog: compact %s: %w", l.dir, err)
		}
		s.refs.Add(1)
		s.compacting = true
		ins = append(ins, compactInput{seg: s, f: f})
	}
	return ins, l.truncations, l.trimmed, nil
}

func (l *Log) releaseInputs(ins []compactInput) {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	l.releaseInputsLocked(ins)
}

func (l *Log) releaseInputsLocked(ins []compactInput) {
	for _, in := range ins {
		in.seg.compacting = false
		in.seg.f.unpin(false)
		in.seg.refs.Add(-1)
		in.seg.maybeClose()
	}
}

// lastBatches is the base offsets of an idempotent producer's last five
// batches below the end point, oldest first.
type lastBatches struct {
	n    int
	base [maxProducerBatches]int64
}

// maxProducerBatches is how many batches of a producer the log remembers
// for deduplication (producer.go): a batch among the last so many of its
// producer is kept, emptied, rather than dropped.
const maxProducerBatches = 5

func (p *lastBatches) push(base int64) {
	if p.n == len(p.base) {
		copy(p.base[:], p.base[1:])
		p.n--
	}
	p.base[p.n] = base
	p.n++
}

func (p *lastBatches) holds(base int64) bool {
	if p == nil {
		return false
	}
	for _, b := range p.base[:p.n] {
		if b == base {
			return true
		}
	}
	return false
}

// compactor is one pass's state.
type compactor struct {
	l       *Log
	o       CompactOptions
	end     int64
	trimmed int64
	keys    map[[2]uint64]int64 // key hash -> offset of its latest record below end
	prods   map[int64]*lastBatches

	records, removed, dropped int64

	raw  []byte // decompression buffer
	it   batch.Iter
	rb   batch.Rebuilder // rebuilt and emptied batches
	frb  batch.Rebuilder // fillers, built while rb's batch is in hand
	fnv  fnvHash
	keep []int32 // offset deltas of the kept records of the batch in hand
}

type fnvHash struct{ h hash64 }

type hash64 interface {
	Write([]byte) (int, error)
	Sum64() uint64
	Reset()
}

// keyHash is the map key of a record key: two independent 64-bit hashes,
// so that two keys collide with odds of about 2^-128 per pair. Both are
// fixed functions, so every replica decides alike.
func (c *compactor) keyHash(k []byte) [2]uint64 {
	if c.fnv.h == nil {
		c.fnv.h = fnv.New64a()
	}
	c.fnv.h.Reset()
	c.fnv.h.Write(k)
	return [2]uint64{xxhash.Sum64(k), c.fnv.h.Sum64() ^ uint64(len(k))}
}

// records decompresses the records of a checked batch and points the
// iterator at them.
func (c *compactor) openRecords(b []byte, h *batch.Header) error {
	recs, err := batch.Decompress(c.raw[:0], b)
	if err != nil {
		return err
	}
	if h.Compression() != batch.CompressionNone {
		c.raw = recs
	}
	return c.it.ResetRecords(recs, h.RecordCount)
}

// eachBatch calls fn for each batch of segment in, in order, checking
// every batch and the offset chain, until fn returns false. It returns the
// offset after the last batch read. quit, when closed, stops it with
// ErrClosed.
func eachBatch(in compactInput, quit <-chan struct{}, fn func(b []byte, h *batch.Header, pos int64) (bool, error)) (int64, error) {
	s := in.seg
	sc := newScanner(in.f, s.size)
	v := readView{seg: s, limit: s.size}
	next := s.base
	for pos := int64(0); pos < s.size; {
		select {
		case <-quit:
			return next, ErrClosed
		default:
		}
		b, h, err := sc.batchAt(pos)
		if err == nil && h.BaseOffset != next {
			err = fmt.Errorf("batch has base offset %d", h.BaseOffset)
		}
		if err != nil {
			return next, v.corrupt(pos, next, err)
		}
		more, err := fn(b, &h, pos)
		if err != nil || !more {
			return next, err
		}
		pos += int64(h.Size())
		next = h.NextOffset()
	}
	return next, nil
}

// eachSealedBatch is eachBatch over a sealed segment of the log, which
// must end where the log says.
func (l *Log) eachSealedBatch(in compactInput, fn func(b []byte, h *batch.Header, pos int64) (bool, error)) error {
	stopped := false
	next, err := eachBatch(in, l.quit, func(b []byte, h *batch.Header, pos int64) (bool, error) {
		more, err := fn(b, h, pos)
		stopped = !more
		return more, err
	})
	if err == nil && !stopped && next != in.seg.next {
		v := readView{seg: in.seg, limit: in.seg.size}
		return v.corrupt(in.seg.size, next, fmt.Errorf("segment ends at offset %d, the log says %d", next, in.seg.next))
	}
	return err
}

// mapKeys reads the batches below the end point and records, for each
// key, the offset of its latest record (and each producer's last
// batches). It moves the end point back when the map would pass MaxKeys.
func (c *compactor) mapKeys(ins []compactInput) error {
	for _, in := range ins {
		if in.seg.base >= c.end {
			break
		}
		err := c.l.eachSealedBatch(in, func(b []byte, h *batch.Header, _ int64) (bool, error) {
			if h.BaseOffset >= c.end {
				return false, nil
			}
			if c.prods != nil && h.Idempotent() {
				p := c.prods[h.ProducerID]
				if p == nil {
					p = new(lastBatches)
					c.prods[h.ProducerID] = p
				}
				p.push(h.BaseOffset)
			}
			if c.o.Batch(h) != CompactRecords {
				return true, nil
			}
			if len(c.keys)+int(h.RecordCount) > c.o.MaxKeys {
				c.l.log.Warn("compaction: the key map is full; compacting up to here, the rest in a later pass",
					"offset", h.BaseOffset, "max_keys", c.o.MaxKeys)
				c.end = h.BaseOffset
				return false, nil
			}
			if err := c.openRecords(b, h); err != nil {
				return false, err
			}
			for c.it.Next() {
				r := c.it.Record()
				if r.Key != nil {
					c.keys[c.keyHash(r.Key)] = h.BaseOffset + int64(r.OffsetDelta)
				}
			}
			return true, c.it.Err()
		})
		if err != nil {
			return fmt.Errorf("seglog: compact %s: %w", c.l.dir, err)
		}
	}
	return nil
}

// compactBatch returns what stays of the checked batch b below the end
// point: b itself when every record stays, a rebuilt batch, or nil when no
// record stays (the caller keeps an empty batch or drops it).
func (c *compactor) compactBatch(b []byte, h *batch.Header) ([]byte, error) {
	act := c.o.Batch(h)
	if act == KeepBatch {
		return b, nil
	}
	if h.RecordCount == 0 {
		return nil, nil // an empty batch (emptied before, or a filler)
	}
	if act == DropRecords {
		c.records += int64(h.RecordCount)
		c.removed += int64(h.RecordCount)
		return nil, nil
	}
	if err := c.openRecords(b, h); err != nil {
		return nil, err
	}
	c.keep = c.keep[:0]
	var n int32
	for c.it.Next() {
		r := c.it.Record()
		n++
		if r.Key == nil {
			c.keep = append(c.keep, r.OffsetDelta) // a compacted log refuses them; older ones stay
			continue
		}
		off := h.BaseOffset + int64(r.OffsetDelta)
		latest, ok := c.keys[c.keyHash(r.Key)]
		if ok && latest != off {
			continue // a later record of the key lies below the end point
		}
		if r.Value == nil && c.o.TombstonesBefore > 0 {
			ts := h.BaseTimestamp + r.TimestampDelta
			if h.Attributes&batch.AttrLogAppendTime != 0 {
				ts = h.MaxTimestamp
			}
			if ts < c.o.TombstonesBefore {
				continue
			}
		}
		c.keep = append(c.keep, r.OffsetDelta)
	}
	if err := c.it.Err(); err != nil {
		return nil, err
	}
	c.records += int64(n)
	c.removed += int64(n) - int64(len(c.keep))
	switch len(c.keep) {
	case int(n):
		return b, nil
	case 0:
		return nil, nil
	}
	// Rebuild with the kept records, in order: the same header fields,
	// each record re-encoded from its fields, the batch's codec.
	if err := c.openRecords(b, h); err != nil {
		return nil, err
	}
	c.rb.Reset(h)
	k := 0
	for c.it.Next() {
		r := c.it.Record()
		if k < len(c.keep) && r.OffsetDelta == c.keep[k] {
			c.rb.Add(r, nil)
			k++
		}
	}
	return c.rb.FinishCompressed(h.Compression())
}

// emptyBatch returns h's batch with no records: its header fields (the
// producer's, for the idempotence windows; the leader epoch, for raft)
// and no codec.
func (c *compactor) emptyBatch(h *batch.Header) []byte {
	c.rb.Reset(h)
	return c.rb.Finish()
}

// filler returns an empty batch that spans the offsets [base, next) of
// dropped batches, with the leader epoch and max timestamp of the last of
// them.
func (c *compactor) filler(base, next int64, epoch int32, ts int64) []byte {
	h := batch.Header{BaseOffset: base, LeaderEpoch: epoch, LastDelta: int32(next - base - 1),
		BaseTimestamp: ts, MaxTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	c.frb.Reset(&h)
	return c.frb.Finish()
}

// segWriter writes one output segment. While the output is the same as
// its one input's prefix nothing is written: a pass over a segment it
// does not change writes nothing.
type segWriter struct {
	l     *Log
	in    *compactInput // the input the output equals a prefix of, while same
	same  bool
	seg   *segment
	buf   []byte
	spill int64 // bytes of buf already written
	err   error
}

func (w *segWriter) emit(b []byte, verbatimAt int64) {
	if w.err != nil {
		return
	}
	h, err := batch.ParseHeader(b)
	if err != nil {
		w.err = err
		return
	}
	pos := w.seg.size
	if w.same && verbatimAt != pos {
		w.same = false
		// Until here the output is the input's prefix: copy it.
		if pos > 0 {
			w.buf = grow(w.buf[:0], int(pos))
			if err := readFull(w.in.f, w.buf, 0); err != nil {
				w.err = err
				return
			}
		}
	}
	if !w.same {
		w.buf = append(w.buf, b...)
		if len(w.buf) >= 1<<20 {
			w.flush()
		}
	}
	w.seg.addBatch(&h, pos, w.l.opts.IndexIntervalBytes)
}

func (w *segWriter) flush() {
	if w.err != nil || len(w.buf) == 0 {
		return
	}
	_, w.err = w.seg.f.WriteAt(w.buf, w.spill)
	w.spill += int64(len(w.buf))
	w.buf = w.buf[:0]
}

// compactOutput is a segment a pass wrote, complete and synced under its
// temporary name, and the inputs it replaces.
type compactOutput struct {
	seg *segment
	ins []compactInput
}

// discard removes an output that was not committed.
func (o compactOutput) discard(l *Log) {
	tmp := o.seg.f.Name()
	o.seg.f.Close()
	if err := l.fs.Remove(tmp); err != nil && !vfs.IsNotExist(err) {
		l.log.Warn("compaction: cannot remove an output it did not commit", "file", tmp, "err", err)
	}
}

// rewrite compacts the inputs ins (consecutive sealed segments, the first
// below the end point) into one new segment, written and synced under its
// temporary name. It returns no segment when nothing changes.
func (c *compactor) rewrite(ins []compactInput) (compactOutput, error) {
	l := c.l
	base := ins[0].seg.base
	w := &segWriter{l: l, seg: newSegment(l.dir, base), same: len(ins) == 1, in: &ins[0]}
	tmp := filepath.Join(l.dir, segmentName(base, compactSuffix))
	w.seg.f = l.opts.Files.handle(l.fs, tmp, true)
	out := compactOutput{seg: w.seg, ins: ins}
	removeTmp := func() { out.discard(l) }
	// A run of dropped batches, replaced by one filler.
	var gap struct {
		base, next, ts int64
		epoch          int32
		at             int64 // the input position of its one batch, -1 after more
		one            []byte
	}
	gap.base = -1
	flushGap := func() {
		if gap.base < 0 {
			return
		}
		fb := c.filler(gap.base, gap.next, gap.epoch, gap.ts)
		at := int64(-1)
		if gap.at >= 0 && bytes.Equal(fb, gap.one) {
			at = gap.at // the filler of a pass before, as it was
		}
		w.emit(fb, at)
		gap.base = -1
	}
	for k := range ins {
		in := ins[k]
		err := l.eachSealedBatch(in, func(b []byte, h *batch.Header, pos int64) (bool, error) {
			at := int64(-1)
			if k == 0 {
				at = pos
			}
			if h.BaseOffset >= c.end {
				flushGap()
				w.emit(b, at)
				return true, nil
			}
			if c.trimmed > 0 && h.BaseOffset == c.trimmed {
				flushGap() // the log's start (Trim) stays a batch boundary
			}
			out, err := c.compactBatch(b, h)
			if err != nil {
				return false, err
			}
			if out == nil && (c.o.KeepBatches || h.Idempotent() && c.prods[h.ProducerID].holds(h.BaseOffset)) {
				out = c.emptyBatch(h)
			}
			if out == nil {
				c.dropped++
				if gap.base < 0 {
					gap.base, gap.at, gap.one = h.BaseOffset, pos, gap.one[:0]
					if k != 0 || h.RecordCount != 0 {
						gap.at = -1 // only an empty batch can be the filler it would become
					} else {
						gap.one = append(gap.one, b...) // b is the scanner's, reused
					}
				} else {
					gap.at = -1
				}
				gap.next, gap.epoch, gap.ts = h.NextOffset(), h.LeaderEpoch, h.MaxTimestamp
				return true, nil
			}
			flushGap()
			if !bytes.Equal(out, b) {
				at = -1
			}
			w.emit(out, at)
			return true, nil
		})
		if err != nil {
			removeTmp()
			return compactOutput{}, fmt.Errorf("seglog: compact %s: %w", l.dir, err)
		}
	}
	// A gap ends with its output: the next segment's base must start a
	// batch. (Between two inputs of one output it need not.)
	flushGap()
	if w.err == nil && w.same && w.seg.size == ins[0].seg.size {
		removeTmp() // nothing changed (nothing was written)
		return compactOutput{}, nil
	}
	w.flush()
	if w.err != nil {
		removeTmp()
		// A write error (a full disk) abandons the pass; the log is as it was.
		return compactOutput{}, fmt.Errorf("seglog: compact %s: write %s: %w", l.dir, filepath.Base(tmp), w.err)
	}
	w.seg.alloc = w.seg.size
	w.seg.next = ins[len(ins)-1].seg.next
	w.seg.sealTimeIndex()
	if err := w.seg.f.Sync(); err != nil {
		return compactOutput{}, l.fail(fmt.Errorf("compact: fdatasync %s: %w", tmp, err))
	}
	return out, nil
}

// encodeCommit encodes the commit file of a pass: magic, the count, then
// per output its base and end offsets, and a CRC-32C of all that.
func encodeCommit(outs []compactOutput) []byte {
	b := append([]byte(nil), commitMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(outs)))
	for _, o := range outs {
		b = binary.BigEndian.AppendUint64(b, uint64(o.seg.base))
		b = binary.BigEndian.AppendUint64(b, uint64(o.seg.next))
	}
	return binary.BigEndian.AppendUint32(b, batch.Checksum(b))
}

// commitMagic starts the commit file.
const commitMagic = "SENSECM1"

// commitRange is an output a commit file names: its segments' offsets.
type commitRange struct{ base, end int64 }

// decodeCommit decodes a commit file; any damage is an error.
func decodeCommit(b []byte) ([]commitRange, error) {
	if len(b) < len(commitMagic)+8 || string(b[:len(commitMagic)]) != commitMagic {
		return nil, fmt.Errorf("%w: compaction commit file of %d bytes without its magic", ErrCorrupt, len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if batch.Checksum(body) != sum {
		return nil, fmt.Errorf("%w: compaction commit file: CRC-32C mismatch", ErrCorrupt)
	}
	n := binary.BigEndian.Uint32(body[len(commitMagic):])
	rest := body[len(commitMagic)+4:]
	if uint64(len(rest)) != uint64(n)*16 {
		return nil, fmt.Errorf("%w: compaction commit file: %d outputs in %d bytes", ErrCorrupt, n, len(rest))
	}
	out := make([]commitRange, 0, n)
	for ; len(rest) > 0; rest = rest[16:] {
		r := commitRange{base: int64(binary.BigEndian.Uint64(rest)), end: int64(binary.BigEndian.Uint64(rest[8:]))}
		if r.base < 0 || r.end <= r.base || len(out) > 0 && r.base < out[len(out)-1].end {
			return nil, fmt.Errorf("%w: compaction commit file: output [%d, %d) out of order", ErrCorrupt, r.base, r.end)
		}
		out = append(out, r)
	}
	return out, nil
}

// commitCompaction swaps a pass's outputs in (steps 2 to 5 at the top of
// this file), unless the log was truncated, reset or closed meanwhile.
func (l *Log) commitCompaction(outs []compactOutput, gen uint64) error {
	l.ckptMu.Lock()
	defer l.ckptMu.Unlock()
	l.mu.Lock()
	err := l.usableLocked()
	if err == nil && l.truncations != gen {
		err = errCompactRaced
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	// Where each output's inputs lie in the segment list; they are still
	// there unless a truncation took them (ckptMu excludes it now).
	at := make([]int, len(outs))
	l.segMu.RLock()
	ok := true
	for i, o := range outs {
		at[i] = slices.Index(l.segs, o.ins[0].seg)
		ok = ok && at[i] >= 0 && at[i]+len(o.ins) <= len(l.segs)
		for k := 0; ok && k < len(o.ins); k++ {
			ok = l.segs[at[i]+k] == o.ins[k].seg
		}
	}
	l.segMu.RUnlock()
	if !ok {
		return errCompactRaced
	}
	if err := replaceFile(l.fs, l.dir, commitName, encodeCommit(outs)); err != nil {
		return l.fail(fmt.Errorf("compact: write the commit file: %w", err))
	}
	// Committed: from here on recovery completes the swap.
	for _, o := range outs {
		for k, in := range o.ins {
			suffixes := []string{indexSuffix, timeIndexSuffix, logSuffix}
			if k == 0 {
				suffixes = suffixes[:2] // replaced by the rename below
			}
			for _, sfx := range suffixes {
				if err := l.fs.Remove(in.seg.path(sfx)); err != nil && !vfs.IsNotExist(err) {
					return l.fail(fmt.Errorf("compact: remove %s: %w", filepath.Base(in.seg.path(sfx)), err))
				}
			}
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.fail(fmt.Errorf("compact: sync directory %s: %w", l.dir, err))
	}
	for _, o := range outs {
		if err := o.seg.f.rename(o.seg.path(logSuffix)); err != nil {
			return l.fail(fmt.Errorf("compact: rename %s to %s: %w", segmentName(o.seg.base, compactSuffix), segmentName(o.seg.base, logSuffix), err))
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.fail(fmt.Errorf("compact: sync directory %s: %w", l.dir, err))
	}
	if err := l.fs.Remove(filepath.Join(l.dir, commitName)); err != nil {
		return l.fail(fmt.Errorf("compact: remove the commit file: %w", err))
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.fail(fmt.Errorf("compact: sync directory %s: %w", l.dir, err))
	}
	l.segMu.Lock()
	segs := make([]*segment, 0, len(l.segs))
	prev := 0
	for i, o := range outs {
		segs = append(segs, l.segs[prev:at[i]]...)
		segs = append(segs, o.seg)
		prev = at[i] + len(o.ins)
	}
	segs = append(segs, l.segs[prev:]...)
	l.segs = segs
	l.hwMu.Lock()
	for _, o := range outs {
		for _, in := range o.ins {
			if l.hw.seg == in.seg {
				l.hw.seg, l.hw.pos = o.seg, o.seg.size
			}
			in.seg.deleted.Store(true)
		}
	}
	l.hwMu.Unlock()
	l.segMu.Unlock()
	for _, o := range outs {
		if err := l.flushIndexes(o.seg); err != nil {
			return l.fail(fmt.Errorf("compact: %w", err))
		}
	}
	return nil
}

// recoverCompaction finishes, at open, a pass a crash interrupted: with a
// commit file, each output still under its temporary name replaces the
// segments of its range; without one, the outputs are removed. It returns
// whether it changed the directory.
func (l *Log) recoverCompaction(names []string) (bool, error) {
	raw, err := readWhole(l.fs, filepath.Join(l.dir, commitName), 64<<20)
	if err != nil {
		return false, fmt.Errorf("seglog: read %s: %w", filepath.Join(l.dir, commitName), err)
	}
	var ranges []commitRange
	if raw != nil {
		if ranges, err = decodeCommit(raw); err != nil {
			// It was synced whole before it took its name.
			return false, fmt.Errorf("seglog: %s: %w", filepath.Join(l.dir, commitName), err)
		}
		l.log.Warn("completing a compaction a crash interrupted", "outputs", len(ranges))
	}
	changed := false
	var renames []int64
	for _, r := range ranges {
		if !slices.Contains(names, segmentName(r.base, compactSuffix)) {
			continue // swapped in already
		}
		renames = append(renames, r.base)
		for _, n := range names {
			for _, sfx := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
				b, ok := parseBaseName(n, sfx)
				if ok && b >= r.base && b < r.end && !(sfx == logSuffix && b == r.base) {
					if err := l.fs.Remove(filepath.Join(l.dir, n)); err != nil && !vfs.IsNotExist(err) {
						return false, fmt.Errorf("seglog: remove %s: %w", n, err)
					}
				}
			}
		}
	}
	syncDir := func() error {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("seglog: sync directory %s: %w", l.dir, err)
		}
		return nil
	}
	if len(renames) > 0 {
		if err := syncDir(); err != nil {
			return false, err
		}
		for _, b := range renames {
			if err := l.fs.Rename(filepath.Join(l.dir, segmentName(b, compactSuffix)), filepath.Join(l.dir, segmentName(b, logSuffix))); err != nil {
				return false, fmt.Errorf("seglog: rename %s: %w", segmentName(b, compactSuffix), err)
			}
		}
		changed = true
	}
	for _, n := range names {
		_, out := parseBaseName(n, compactSuffix)
		if (out || n == commitTmp) && !slices.ContainsFunc(renames, func(b int64) bool { return n == segmentName(b, compactSuffix) }) {
			if err := l.fs.Remove(filepath.Join(l.dir, n)); err != nil && !vfs.IsNotExist(err) {
				return false, fmt.Errorf("seglog: remove unfinished compaction output %s: %w", n, err)
			}
			changed = true
		}
	}
	if raw != nil {
		if err := syncDir(); err != nil {
			return false, err
		}
		if err := l.fs.Remove(filepath.Join(l.dir, commitName)); err != nil {
			return false, fmt.Errorf("seglog: remove %s: %w", commitName, err)
		}
		changed = true
	}
	if changed {
		if err := syncDir(); err != nil {
			return false, err
		}
	}
	return changed, nil
}
