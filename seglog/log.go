package seglog

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

// commitPoint is the high watermark: everything before next is acknowledged
// (durable under the policy) and may be read; it ends at pos in seg.
type commitPoint struct {
	next int64
	seg  *segment
	pos  int64
}

// Log is one partition's durable log: a directory of segments. It is safe
// for concurrent use.
//
// Lock order: compactMu, ckptMu, mu, segMu, hwMu, segment.idxMu; dirMu is taken
// alone (it guards dirsPending only).
//
// A log that Open creates (its directory or its first segment is new) is
// created lazily: nothing is synced, and neither the checkpoint nor the
// index files are written, so creating a log costs no fsync. Its
// directory, and the directory's entry in its parent, are synced by the
// first fdatasync of a segment or the first checkpoint (ensureDirs),
// before anything is acknowledged: a crash before that leaves no
// directory, or an empty one, which Open takes as an empty log again.
//
// A roll is done in two halves so that appenders wait only for the first.
// Under mu, rollLocked creates the new segment file under a pending name
// (recovery ignores and removes it) and makes it the active one; appends
// go on there at once. The seal then completes without mu: (1) the rolled
// segment's fdatasync, the rename of the new file to its segment name and
// the directory's sync, which a group commit (syncLocked) runs before it
// acknowledges anything written after the roll, and (2) the rolled
// segment's index files and the checkpoint taken at the roll, which
// finishSeal writes under ckptMu (the background goroutine, or whoever
// needs the seal finished first). At most one seal is pending.
type Log struct {
	dir  string
	opts Options
	fs   vfs.FS
	log  *slog.Logger

	// txnFree is an offset from which no batch is transactional or a
	// control batch: the next offset at Open, moved past each such batch
	// appended since (TxnFreeFrom).
	txnFree atomic.Int64

	// recut and cutAt record a cut of a damaged log by recovery
	// (Options.CutCorrupt); set before Open returns.
	recut bool
	cutAt int64

	// ckptMu serializes checkpoints, seals, truncation and index-file
	// writes.
	ckptMu sync.Mutex

	// compactMu serializes compaction passes (compact.go); it comes before
	// ckptMu.
	compactMu sync.Mutex
	// compaction is the background compaction's policy (compactDue), and
	// cleanEnd the end point of the last pass (offsets below were
	// compacted; not kept across a restart). Guarded by polMu.
	polMu      sync.Mutex
	compaction CompactPolicy
	cleanEnd   int64
	compacting atomic.Bool // a background pass is running

	// mu guards the append path.
	mu      sync.Mutex
	cond    sync.Cond // on mu: signals commit, failure, end of a sync
	active  *segment
	next    int64 // offset of the next batch
	epoch   int32 // leader epoch stamped by Append
	prods   producers
	failed  error
	closed  bool // written holding mu and segMu; read holding either
	syncing bool // a group commit (syncLocked) is in flight
	// lastSync is when the last fdatasync of the active segment started,
	// and backToBack says whether appends arrived while it ran: the next
	// group commit is then paced (Options.GroupCommitInterval).
	lastSync    time.Time
	backToBack  bool
	sleep       func(time.Duration) // preciseSleep; tests replace it
	commit      int64               // offsets below are acknowledged
	durable     int64               // offsets below are known fdatasynced
	sinceCkpt   int64               // bytes appended since the last checkpoint
	truncations uint64              // bumped by Truncate, failing waiters of removed batches
	sealing     *seal               // the last roll's seal, until finishSeal completes it

	// segMu guards the segment list, trimmed and, for segments other
	// than the active one, their size and next.
	segMu sync.RWMutex
	segs  []*segment
	// trimmed is the start Trim set (the start offset file), 0 when
	// none: readers see the log from max(segs[0].base, trimmed).
	trimmed int64

	hwMu sync.Mutex
	hw   commitPoint
	hwCh chan struct{} // closed and replaced when the high watermark moves

	// ckptNext is the next offset recorded by the last checkpoint written
	// (or the base of a fresh log, which has none): Close writes no
	// checkpoint when the log still ends there. Guarded by ckptMu.
	ckptNext int64

	// dirsPending: the log was created by this process and its directory
	// entries are not known durable yet (see ensureDirs).
	dirMu       sync.Mutex
	dirsPending bool

	// retAge (nanoseconds) and retBytes are the retention limits:
	// Options.RetentionAge and RetentionBytes at Open, then SetRetention's.
	retAge, retBytes atomic.Int64

	ckptCh chan struct{}
	sealCh chan struct{} // a roll left a seal for the background goroutine
	quit   chan struct{}
	wg     sync.WaitGroup
}

// seal is the work a roll leaves to do after releasing mu. Its fields are
// set by rollLocked and not changed, except durable (guarded by mu).
type seal struct {
	old     *segment // the rolled segment
	seg     *segment // the new active segment
	next    int64    // offset at the roll: the end of old, the base of seg
	pending string   // the name seg's file was created under
	ckpt    []byte   // the checkpoint (seg, 0, next) with the producer state at the roll
	// durable: old is fdatasynced, seg's file renamed to its segment name
	// and the directory synced; batches in seg may be acknowledged.
	durable bool
}

// Open opens or creates the log in dir and recovers it: it trusts what the
// last checkpoint covers, scans only what follows, cuts a torn tail, and
// rebuilds missing or damaged indexes. Damage that is not a torn tail fails
// Open with a *CorruptionError.
func Open(dir string, opts Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	l := &Log{
		dir:    dir,
		opts:   opts,
		fs:     opts.FS,
		log:    opts.Logger.With("log", dir),
		prods:  make(producers),
		ckptCh: make(chan struct{}, 1),
		sealCh: make(chan struct{}, 1),
		quit:   make(chan struct{}),
		sleep:  preciseSleep,
	}
	l.cond.L = &l.mu
	l.compaction = opts.Compaction
	l.retAge.Store(int64(opts.RetentionAge))
	l.retBytes.Store(opts.RetentionBytes)
	err := l.recover()
	if err == nil {
		err = l.loadStart()
	}
	if err != nil {
		for _, s := range l.segs {
			s.f.Close()
		}
		return nil, err
	}
	l.txnFree.Store(l.next)
	l.wg.Add(1)
	go l.background()
	return l, nil
}

// TxnFreeFrom returns an offset from which the log holds no transactional
// batch and no control batch (a transaction marker), as far as this
// process has seen: the log's end when it opened, or past the last such
// batch appended since. A reader indexing transactions reads only below
// it.
func (l *Log) TxnFreeFrom() int64 { return l.txnFree.Load() }

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// SetEpoch sets the leader epoch (the raft term) that Append stamps into
// each batch's PartitionLeaderEpoch.
func (l *Log) SetEpoch(epoch int32) {
	l.mu.Lock()
	l.epoch = epoch
	l.mu.Unlock()
}

// Append validates the record batch b (magic 2, lengths, CRC-32C), assigns
// its offsets and returns its base offset once it is durable under the
// policy. Append writes the base offset and the log's epoch into b's header
// (fields outside the CRC); b must not be used concurrently.
//
// An idempotent batch (producer id and sequence set) that repeats one of the
// producer's last five batches is not written again: Append returns the
// original base offset. A sequence gap gives ErrOutOfOrderSequence, an older
// repeat ErrDuplicateSequence, an older epoch ErrProducerFenced.
func (l *Log) Append(b []byte) (int64, error) { return l.append(b, false) }

// AppendSparse is Append for producers whose sequence numbers span several
// logs (Sense's native producers, whose events the router spreads over
// buffers): a batch's sequences must be above the producer's last ones but
// may leave a gap. Repeats are answered with the original offsets, as in
// Append.
func (l *Log) AppendSparse(b []byte) (int64, error) { return l.append(b, true) }

func (l *Log) append(b []byte, sparse bool) (int64, error) {
	p, err := l.start(b, AppendOptions{Sparse: sparse})
	if err != nil {
		return -1, err
	}
	return p.Wait()
}

// Pending is an append that is written but not yet known durable.
type Pending struct {
	l         *Log
	base, end int64
	gen       uint64
}

// Wait blocks until the batch is durable under the policy and returns its
// base offset, or the error that keeps it from being durable.
func (p Pending) Wait() (int64, error) {
	if err := p.l.waitCommit(p.end, p.gen); err != nil {
		return -1, err
	}
	return p.base, nil
}

// Ready reports whether the high watermark has passed the batch, so that
// Wait returns at once (with its offset, or ErrTruncated if a truncation
// removed it meanwhile). A failed append reports false: Wait says why.
func (p Pending) Ready() bool { return p.l.HighWatermark() >= p.end }

// AppendAsync is Append (AppendSparse when sparse) split in two: it checks
// and writes the batch and returns without waiting for durability, so a
// caller can write its next batch while this one's fdatasync runs (the
// group commit then covers both). The batch is acknowledged only when Wait
// returns nil. Batches are ordered as AppendAsync was called.
func (l *Log) AppendAsync(b []byte, sparse bool) (Pending, error) {
	return l.AppendWith(b, AppendOptions{Sparse: sparse})
}

// AppendOptions qualify AppendWith.
type AppendOptions struct {
	// Sparse: sequences as AppendSparse checks them.
	Sparse bool
	// Trusted: the caller built b itself (batch.Builder) and vouches for
	// its CRC, which is then not computed again; framing is still parsed
	// and checked. Never set it for bytes that came from outside.
	Trusted bool
}

// AppendWith is AppendAsync with options.
func (l *Log) AppendWith(b []byte, o AppendOptions) (Pending, error) { return l.start(b, o) }

func (l *Log) start(b []byte, o AppendOptions) (Pending, error) {
	h, err := l.checkBatch(b, o.Trusted)
	if err != nil {
		return Pending{}, err
	}
	sparse := o.Sparse
	if err := l.lockForAppend(len(b)); err != nil {
		return Pending{}, err
	}
	if h.Idempotent() {
		dup, err := l.prods.check(&h, sparse)
		if err != nil {
			l.mu.Unlock()
			return Pending{}, err
		}
		if dup != nil {
			p := Pending{l: l, base: dup.base, end: dup.last + 1, gen: l.truncations}
			l.mu.Unlock()
			return p, nil
		}
	}
	base := l.next
	batch.SetBaseOffset(b, base)
	batch.SetLeaderEpoch(b, l.epoch)
	h.BaseOffset, h.LeaderEpoch = base, l.epoch
	end, err := l.writeLocked(b, &h)
	gen := l.truncations
	l.mu.Unlock()
	if err != nil {
		return Pending{}, err
	}
	return Pending{l: l, base: base, end: end, gen: gen}, nil
}

// AppendAt appends a batch that already carries its offsets and leader
// epoch, as a raft follower does: its base offset must equal NextOffset
// (else ErrUnexpectedOffset). Idempotence state is updated but not checked;
// the leader checked it. It returns once the batch is durable.
func (l *Log) AppendAt(b []byte) error {
	h, err := l.checkBatch(b, false)
	if err != nil {
		return err
	}
	if err := l.lockForAppend(len(b)); err != nil {
		return err
	}
	if h.BaseOffset != l.next {
		next := l.next
		l.mu.Unlock()
		return fmt.Errorf("%w: batch starts at %d, log ends at %d", ErrUnexpectedOffset, h.BaseOffset, next)
	}
	end, err := l.writeLocked(b, &h)
	gen := l.truncations
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return l.waitCommit(end, gen)
}

// SegmentBytes returns the size a segment rolls at: the largest batch the
// log takes.
func (l *Log) SegmentBytes() int64 { return l.opts.SegmentBytes }

func (l *Log) checkBatch(b []byte, trusted bool) (batch.Header, error) {
	var h batch.Header
	var err error
	if trusted {
		h, err = batch.CheckFraming(b)
	} else {
		h, err = batch.Check(b)
	}
	if err != nil {
		return h, fmt.Errorf("seglog: append to %s: %w", l.dir, err)
	}
	if int64(len(b)) > l.opts.SegmentBytes {
		return h, fmt.Errorf("%w: batch of %d bytes, segments hold %d; send smaller batches or raise the segment size",
			ErrTooLarge, len(b), l.opts.SegmentBytes)
	}
	return h, nil
}

// lockForAppend takes mu, rolling the active segment first if a batch of n
// bytes would not fit or the segment is too old. On success mu is held.
func (l *Log) lockForAppend(n int) error {
	l.mu.Lock()
	for {
		if err := l.usableLocked(); err != nil {
			l.mu.Unlock()
			return err
		}
		if s := l.active; s.extending && (s.size+int64(n) > s.extFrom || l.needsRollLocked(n)) {
			// The batch would reach the zeros being written, or roll the
			// segment (whose seal trims them): wait for the extension
			// under way.
			l.cond.Wait()
			continue
		}
		if !l.needsRollLocked(n) {
			return nil
		}
		w := l.sealing
		if w == nil {
			break
		}
		// The previous roll's seal is still pending: the segment filled
		// faster than it was sealed. Finish that seal first (ckptMu comes
		// before mu), so that at most one is pending; another appender
		// may have done so and rolled meanwhile.
		l.mu.Unlock()
		l.ckptMu.Lock()
		l.mu.Lock()
		if l.sealing == w {
			l.mu.Unlock()
			l.finishSeal() // an error fails the log, seen at the top of the loop
			l.mu.Lock()
		}
		l.ckptMu.Unlock()
	}
	if err := l.rollLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	return nil
}

func (l *Log) usableLocked() error {
	if l.closed {
		return ErrClosed
	}
	return l.failed
}

func (l *Log) needsRollLocked(n int) bool {
	s := l.active
	if s.size == 0 {
		return false
	}
	if s.size+int64(n) > l.opts.SegmentBytes {
		return true
	}
	return !s.firstAppend.IsZero() && l.opts.Now().Sub(s.firstAppend) >= l.opts.SegmentAge
}

// writeLocked writes a checked batch whose header holds its final base
// offset at the end of the active segment. It returns the offset after it.
func (l *Log) writeLocked(b []byte, h *batch.Header) (int64, error) {
	s := l.active
	pos := s.size
	if _, err := s.f.WriteAt(b, pos); err != nil {
		err = fmt.Errorf("write %d bytes to %s at byte %d: %w", len(b), s.path(logSuffix), pos, err)
		if errors.Is(err, ErrOpenFile) {
			return 0, err // nothing was written: the log stays usable
		}
		return 0, l.failLocked(err)
	}
	s.alloc = max(s.alloc, pos+int64(len(b)))
	if s.firstAppend.IsZero() {
		s.firstAppend = l.opts.Now()
	}
	s.addBatch(h, pos, l.opts.IndexIntervalBytes)
	l.extendAheadLocked(s)
	l.next = s.next
	if h.Idempotent() {
		l.prods.record(h)
	}
	if h.Attributes&(batch.AttrTransactional|batch.AttrControl) != 0 && l.txnFree.Load() < l.next {
		l.txnFree.Store(l.next)
	}
	l.sinceCkpt += int64(len(b))
	if l.sinceCkpt >= l.opts.CheckpointBytes {
		select {
		case l.ckptCh <- struct{}{}:
		default:
		}
	}
	if l.opts.Durability.Mode != SyncAlways {
		l.setCommitLocked(l.next, s, s.size)
	}
	return l.next, nil
}

// setCommitLocked advances the high watermark.
func (l *Log) setCommitLocked(next int64, s *segment, pos int64) {
	if next <= l.commit {
		return
	}
	l.commit = next
	l.hwMu.Lock()
	l.hw = commitPoint{next: next, seg: s, pos: pos}
	if l.hwCh != nil {
		close(l.hwCh)
		l.hwCh = nil
	}
	l.hwMu.Unlock()
	l.cond.Broadcast()
}

// failLocked records the first write or fsync error; the log stays failed.
func (l *Log) failLocked(err error) error {
	if l.failed == nil {
		l.failed = &failedError{cause: err}
		l.log.Error("log failed; refusing further appends", "err", err)
		l.cond.Broadcast()
	}
	return l.failed
}

func (l *Log) fail(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failLocked(err)
}

// waitCommit blocks until offsets below end are acknowledged. Under
// SyncAlways the first waiter to find no fdatasync in flight runs one for
// everyone written so far (group commit); the others wait for it.
func (l *Log) waitCommit(end int64, gen uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.commit < end || l.truncations != gen {
		if l.truncations != gen {
			return ErrTruncated
		}
		if l.failed != nil {
			return l.failed
		}
		if l.syncing {
			l.cond.Wait()
			continue
		}
		if l.closed {
			return ErrClosed
		}
		l.syncLocked(true, true)
	}
	return nil
}

// syncLocked runs one group commit, releasing mu while it runs so
// appenders keep writing. With pace, one that follows a busy fdatasync
// first waits out Options.GroupCommitInterval (appenders go on writing
// meanwhile, and others needing a sync wait for this one). If a roll's
// seal is not yet durable it first makes it so (sealDurable): nothing
// written after a roll is acknowledged before the rolled segment is synced
// and the new segment's directory entry is durable. With active it then
// fdatasyncs the active segment, up to what is written now.
func (l *Log) syncLocked(active, pace bool) {
	l.syncing = true
	if pace && active && l.backToBack {
		if d := l.opts.GroupCommitInterval - time.Since(l.lastSync); d > 0 {
			l.mu.Unlock()
			l.sleep(d)
			l.mu.Lock()
			if l.failed != nil {
				l.syncing = false
				l.cond.Broadcast()
				return
			}
		}
	}
	w := l.sealing
	if w != nil && w.durable {
		w = nil
	}
	s, pos, next := l.active, l.active.size, l.next
	l.mu.Unlock()
	var err error
	if w != nil {
		err = l.sealDurable(w)
	}
	if err == nil && active && (w == nil || next > w.next) {
		if l.opts.GroupCommitInterval > 0 {
			l.lastSync = time.Now()
		}
		err = l.syncSegment(s)
	}
	l.mu.Lock()
	l.syncing = false
	if active {
		l.backToBack = l.opts.GroupCommitInterval > 0 && l.next > next
	}
	l.cond.Broadcast()
	if err != nil {
		l.failLocked(err)
		return
	}
	if w != nil {
		w.durable = true
		l.durable = max(l.durable, w.next)
		l.setCommitLocked(w.next, w.old, w.old.size)
	}
	if active {
		l.durable = max(l.durable, next)
		l.setCommitLocked(next, s, pos)
	}
}

// ensureDirs makes the directory entries of a log this process created
// durable: the log's directory (its segment file's entry) and its parent
// (the directory's entry). It runs before anything of the log is
// acknowledged or checkpointed; an error fails the log like any failed
// sync.
func (l *Log) ensureDirs() error {
	l.dirMu.Lock()
	defer l.dirMu.Unlock()
	if !l.dirsPending {
		return nil
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		if vfs.IsNotExist(err) {
			return nil // nothing written yet: the first write creates it
		}
		return fmt.Errorf("%w: sync the new log's directory %s: %w", errSync, l.dir, err)
	}
	if parent := filepath.Dir(l.dir); parent != l.dir {
		if err := l.fs.SyncDir(parent); err != nil {
			return fmt.Errorf("%w: sync directory %s after creating the log %s: %w", errSync, parent, filepath.Base(l.dir), err)
		}
	}
	l.dirsPending = false
	return nil
}

// writeCheckpoint writes a checkpoint recording next (data encodes it),
// the log's directories made durable first. Called with ckptMu held.
func (l *Log) writeCheckpoint(data []byte, next int64) error {
	if err := vfs.Mkdir(l.fs, l.dir); err != nil { // a new log creates it on its first write
		return fmt.Errorf("create log directory %s: %w", l.dir, err)
	}
	if err := l.ensureDirs(); err != nil {
		return err
	}
	if err := writeCheckpoint(l.fs, l.dir, data); err != nil {
		return err
	}
	l.ckptNext = next
	return nil
}

// syncSegment fdatasyncs a segment file (creating it, for a new log that
// has none yet), then the new log's directories (ensureDirs).
func (l *Log) syncSegment(s *segment) error {
	t0 := time.Now()
	err := s.f.Sync()
	if l.opts.ObserveSync != nil {
		l.opts.ObserveSync(time.Since(t0))
	}
	if err != nil {
		return fmt.Errorf("fdatasync %s: %w", s.path(logSuffix), err)
	}
	return l.ensureDirs()
}

// sealDurable is the first half of a seal: it makes the rolled segment
// durable whole, then gives the new segment file its name and syncs the
// directory. Until the rename a crash leaves the new file under its
// pending name, which recovery removes: a segment file is found under its
// name only if every segment before it was synced whole. Called by
// syncLocked, which keeps it single-flight.
func (l *Log) sealDurable(w *seal) error {
	// A sealed segment ends at its data: its preallocated zeros are cut
	// off, and the fdatasync below makes the new size durable with the
	// data, before the next segment gets its name.
	if old := w.old; old.alloc > old.size {
		if err := old.f.Truncate(old.size); err != nil {
			return fmt.Errorf("trim the preallocated tail of %s at %d: %w", old.path(logSuffix), old.size, err)
		}
		old.alloc = old.size
	}
	if err := l.syncSegment(w.old); err != nil {
		return err
	}
	name := w.seg.path(logSuffix)
	if err := w.seg.f.rename(name); err != nil {
		return fmt.Errorf("rename %s to %s: %w", filepath.Base(w.pending), filepath.Base(name), err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("sync directory %s after rolling to %s: %w", l.dir, filepath.Base(name), err)
	}
	return nil
}

// Sync makes everything appended so far durable, whatever the policy.
func (l *Log) Sync() error {
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	for l.syncing {
		l.cond.Wait()
	}
	if l.failed == nil {
		l.syncLocked(true, false)
	}
	err := l.failed
	l.mu.Unlock()
	return err
}

// rollLocked starts a new active segment at the log's end and leaves the
// old one's seal pending (see Log). Only the new file's creation and
// preallocation happen here. Called with mu held and no seal pending.
func (l *Log) rollLocked() error {
	old := l.active
	s := newSegment(l.dir, l.next)
	pending := filepath.Join(l.dir, segmentName(s.base, pendingSuffix))
	s.f = l.opts.Files.handle(l.fs, pending, true)
	if err := s.f.touch(); err != nil {
		s.f.Close()
		return l.failLocked(fmt.Errorf("create segment %s: %w", pending, err))
	}
	old.sealTimeIndex()
	l.segMu.Lock()
	l.segs = append(l.segs, s)
	l.segMu.Unlock()
	l.active = s
	l.sealing = &seal{old: old, seg: s, next: l.next, pending: pending,
		ckpt: encodeCheckpoint(l.next, s.base, 0, l.prods)}
	l.sinceCkpt = 0
	select {
	case l.sealCh <- struct{}{}:
	default:
	}
	return nil
}

// finishSeal completes the pending seal, if any: its durable half unless a
// group commit does it, then the rolled segment's index files and the
// checkpoint taken at the roll. Any error fails the log. Called with ckptMu
// held and mu not held.
func (l *Log) finishSeal() error {
	l.mu.Lock()
	var w *seal
	for {
		if w = l.sealing; w == nil {
			l.mu.Unlock()
			return nil
		}
		if err := l.usableLocked(); err != nil {
			l.mu.Unlock()
			return err
		}
		if w.durable {
			break
		}
		if l.syncing {
			// The next group commit makes the seal durable, if this one
			// does not.
			l.cond.Wait()
			continue
		}
		l.syncLocked(false, false)
	}
	l.mu.Unlock()
	// The indexes before the checkpoint: once the checkpoint names seg,
	// recovery checks old's indexes but does not rescan old.
	if err := l.flushIndexes(w.old); err != nil {
		return l.fail(err)
	}
	if err := l.writeCheckpoint(w.ckpt, w.next); err != nil {
		return l.fail(err)
	}
	l.mu.Lock()
	l.sealing = nil
	l.cond.Broadcast()
	l.mu.Unlock()
	return nil
}

// lockSettled takes mu once no seal is pending, finishing one itself
// unless the log is failed or closed, and, with quiesce, once no group
// commit is in flight either. Called with ckptMu held.
func (l *Log) lockSettled(quiesce bool) {
	l.mu.Lock()
	for {
		switch {
		case l.sealing != nil && l.usableLocked() == nil:
			l.mu.Unlock()
			l.finishSeal() // an error fails the log, seen by the loop
			l.mu.Lock()
		case quiesce && (l.syncing || l.active.extending):
			l.cond.Wait()
		default:
			return
		}
	}
}

// flushIndexes writes the segment's indexes as they are now. Called with
// ckptMu held.
func (l *Log) flushIndexes(s *segment) error {
	s.idxMu.RLock()
	idx, tidx := s.index, s.tindex
	s.idxMu.RUnlock()
	return s.writeIndexes(l.fs, idx, tidx)
}

func newSegment(dir string, base int64) *segment {
	return &segment{dir: dir, base: base, next: base, maxTS: -1, lastIndexPos: -1}
}

// createSegment creates a segment file and syncs the directory, for a log
// that has none.
func (l *Log) createSegment(base int64) (*segment, error) {
	s := newSegment(l.dir, base)
	s.f = l.opts.Files.handle(l.fs, s.path(logSuffix), true)
	if err := s.f.touch(); err != nil {
		s.f.Close()
		return nil, fmt.Errorf("create segment %s: %w", s.path(logSuffix), err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		s.f.Close()
		return nil, fmt.Errorf("sync directory %s after creating a segment: %w", l.dir, err)
	}
	return s, nil
}

// writeCheckpointLocked records (s, pos, next) and the producer state as
// the recovery point. The data up to pos must already be durable. Called
// with mu (for the producer state) and ckptMu held.
func (l *Log) writeCheckpointLocked(s *segment, pos, next int64) error {
	return l.writeCheckpoint(encodeCheckpoint(next, s.base, pos, l.prods), next)
}

// checkpoint makes everything written so far durable, writes the active
// segment's new index entries, and records a checkpoint, so a recovery
// scans only what follows. With ifChanged it does nothing when the log
// still ends where the last checkpoint said (Close: a log that was only
// opened, or read, writes nothing).
func (l *Log) checkpoint(ifChanged bool) error {
	l.ckptMu.Lock()
	defer l.ckptMu.Unlock()
	l.lockSettled(false)
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	if ifChanged && l.next == l.ckptNext {
		l.mu.Unlock()
		return nil
	}
	s, pos, next := l.active, l.active.size, l.next
	data := encodeCheckpoint(next, s.base, pos, l.prods)
	l.sinceCkpt = 0
	l.mu.Unlock()

	if err := l.syncSegment(s); err != nil {
		return l.fail(fmt.Errorf("checkpoint: %w", err))
	}
	l.mu.Lock()
	l.durable = max(l.durable, next)
	l.setCommitLocked(next, s, pos)
	l.mu.Unlock()
	if err := l.flushIndexes(s); err != nil {
		return l.fail(err)
	}
	if err := l.writeCheckpoint(data, next); err != nil {
		return l.fail(err)
	}
	return nil
}

// background runs seals, checkpoints, interval syncs and retention.
func (l *Log) background() {
	defer l.wg.Done()
	var tick <-chan time.Time
	if l.opts.Durability.Mode == SyncInterval {
		t := time.NewTicker(l.opts.Durability.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-l.quit:
			return
		case <-tick:
			l.mu.Lock()
			if l.usableLocked() == nil && !l.syncing && l.durable < l.next {
				l.syncLocked(true, false)
			}
			l.mu.Unlock()
		case <-l.sealCh:
			// An error has failed the log and been logged by failLocked.
			l.ckptMu.Lock()
			err := l.finishSeal()
			l.ckptMu.Unlock()
			if err == nil {
				// A segment wholly below a trimmed start that was being
				// sealed when Trim ran.
				if err := l.dropBelowStart(); err != nil && !errors.Is(err, ErrClosed) {
					l.log.Error("deleting the segments below the log's start failed", "err", err)
				}
			}
			if err == nil && (l.retAge.Load() > 0 || l.retBytes.Load() > 0) {
				if _, err := l.EnforceRetention(); err != nil && !errors.Is(err, ErrClosed) {
					l.log.Error("retention failed", "err", err)
				}
			}
			if err == nil {
				l.compactDue()
			}
		case <-l.ckptCh:
			l.mu.Lock()
			due := l.sinceCkpt >= l.opts.CheckpointBytes
			l.mu.Unlock()
			if due {
				if err := l.checkpoint(false); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrFailed) {
					l.log.Error("checkpoint failed", "err", err)
				}
			}
			if _, err := l.EnforceRetention(); err != nil && !errors.Is(err, ErrClosed) {
				l.log.Error("retention failed", "err", err)
			}
			l.compactDue()
		}
	}
}

// StartOffset returns the first offset still in the log: the first
// segment's base, or the start Trim moved past it.
func (l *Log) StartOffset() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.startLocked()
}

// NextOffset returns the offset the next batch will get (the log end,
// including batches written but not yet acknowledged).
func (l *Log) NextOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// Changed returns a channel that is closed when the high watermark next
// moves (or the log closes). Read the high watermark after taking the
// channel, then wait on it: a reader waiting for new data misses nothing.
func (l *Log) Changed() <-chan struct{} {
	l.hwMu.Lock()
	defer l.hwMu.Unlock()
	if l.hwCh == nil {
		l.hwCh = make(chan struct{})
	}
	return l.hwCh
}

// HighWatermark returns the offset after the last acknowledged batch;
// readers see the log up to it.
func (l *Log) HighWatermark() int64 {
	l.hwMu.Lock()
	defer l.hwMu.Unlock()
	return l.hw.next
}

// Size returns the bytes held by the log's segments.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// Segments returns the number of segments.
func (l *Log) Segments() int {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return len(l.segs)
}

// Close makes everything appended durable, writes a checkpoint, and closes
// the files. Appends that race with Close may fail with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.mu.Unlock()
	close(l.quit)
	l.wg.Wait()
	// A compaction pass stops at its next batch (it watches quit).
	l.compactMu.Lock()
	l.compactMu.Unlock() //lint:ignore SA2001 waits for a pass to end
	err := l.checkpoint(true)
	if errors.Is(err, ErrFailed) {
		err = nil // already reported; nothing more can be made durable
	}
	// A roll after that checkpoint may have left a seal.
	l.ckptMu.Lock()
	l.lockSettled(true)
	// closed is written under segMu as well as mu: readers (Read, Locate,
	// OffsetForTime) check it holding only segMu.
	l.segMu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.hwMu.Lock()
	if l.hwCh != nil {
		close(l.hwCh)
		l.hwCh = nil
	}
	l.hwMu.Unlock()
	for _, s := range l.segs {
		s.deleted.Store(true)
		s.maybeClose()
	}
	l.segMu.Unlock()
	l.mu.Unlock()
	l.ckptMu.Unlock()
	return err
}

// findLocked returns the segment holding offset. Called with segMu held.
func (l *Log) findLocked(offset int64) (*segment, int) {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
	if i < 0 {
		return nil, -1
	}
	return l.segs[i], i
}
