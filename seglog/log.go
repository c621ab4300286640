package seglog

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
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
// Lock order: ckptMu, mu, segMu, hwMu, segment.idxMu.
type Log struct {
	dir  string
	opts Options
	fs   vfs.FS
	log  *slog.Logger

	// ckptMu serializes checkpoints, rolls, truncation and index-file
	// writes.
	ckptMu sync.Mutex

	// mu guards the append path.
	mu          sync.Mutex
	cond        sync.Cond // on mu: signals commit, failure, end of a sync
	active      *segment
	next        int64 // offset of the next batch
	epoch       int32 // leader epoch stamped by Append
	prods       producers
	failed      error
	closed      bool   // written holding mu and segMu; read holding either
	syncing     bool   // a group-commit fdatasync is in flight
	commit      int64  // offsets below are acknowledged
	durable     int64  // offsets below are known fdatasynced
	sinceCkpt   int64  // bytes appended since the last checkpoint
	truncations uint64 // bumped by Truncate, failing waiters of removed batches

	// segMu guards the segment list and, for segments other than the
	// active one, their size and next.
	segMu sync.RWMutex
	segs  []*segment

	hwMu sync.Mutex
	hw   commitPoint
	hwCh chan struct{} // closed and replaced when the high watermark moves

	ckptCh chan struct{}
	quit   chan struct{}
	wg     sync.WaitGroup
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
		quit:   make(chan struct{}),
	}
	l.cond.L = &l.mu
	if err := l.recover(); err != nil {
		for _, s := range l.segs {
			s.f.Close()
		}
		return nil, err
	}
	l.wg.Add(1)
	go l.background()
	return l, nil
}

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
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	if !l.needsRollLocked(n) {
		return nil
	}
	// Rolling writes index files and a checkpoint, under ckptMu, which
	// comes before mu in the lock order.
	l.mu.Unlock()
	l.ckptMu.Lock()
	l.mu.Lock()
	var err error
	if err = l.usableLocked(); err == nil && l.needsRollLocked(n) {
		err = l.rollLocked()
	}
	l.ckptMu.Unlock()
	if err != nil {
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
		return 0, l.failLocked(fmt.Errorf("write %d bytes to %s at byte %d: %w", len(b), s.path(logSuffix), pos, err))
	}
	if s.firstAppend.IsZero() {
		s.firstAppend = l.opts.Now()
	}
	s.addBatch(h, pos, l.opts.IndexIntervalBytes)
	l.next = s.next
	if h.Idempotent() {
		l.prods.record(h)
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
		l.syncLocked()
	}
	return nil
}

// syncLocked runs one group-commit fdatasync of the active segment,
// releasing mu while it runs so appenders keep writing.
func (l *Log) syncLocked() {
	l.syncing = true
	s, pos, next := l.active, l.active.size, l.next
	l.mu.Unlock()
	t0 := time.Now()
	err := s.f.Sync()
	if l.opts.ObserveSync != nil {
		l.opts.ObserveSync(time.Since(t0))
	}
	l.mu.Lock()
	l.syncing = false
	if err != nil {
		l.failLocked(fmt.Errorf("fdatasync %s: %w", s.path(logSuffix), err))
		return
	}
	l.durable = max(l.durable, next)
	l.setCommitLocked(next, s, pos)
	l.cond.Broadcast()
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
		l.syncLocked()
	}
	err := l.failed
	l.mu.Unlock()
	return err
}

// rollLocked seals the active segment and starts a new one. Called with
// ckptMu and mu held.
func (l *Log) rollLocked() error {
	old := l.active
	if err := old.f.Sync(); err != nil {
		return l.failLocked(fmt.Errorf("fdatasync %s before rolling: %w", old.path(logSuffix), err))
	}
	l.durable = l.next
	l.setCommitLocked(l.next, old, old.size)
	old.sealTimeIndex()
	if err := l.flushIndexes(old); err != nil {
		return l.failLocked(err)
	}
	s, err := l.createSegment(l.next)
	if err != nil {
		return l.failLocked(err)
	}
	l.segMu.Lock()
	l.segs = append(l.segs, s)
	l.segMu.Unlock()
	l.active = s
	if err := l.writeCheckpointLocked(s, 0, l.next); err != nil {
		return l.failLocked(err)
	}
	l.sinceCkpt = 0
	if l.opts.RetentionAge > 0 || l.opts.RetentionBytes > 0 {
		select {
		case l.ckptCh <- struct{}{}:
		default:
		}
	}
	return nil
}

// flushIndexes writes the segment's indexes as they are now. Called with
// ckptMu held.
func (l *Log) flushIndexes(s *segment) error {
	s.idxMu.RLock()
	idx, tidx := s.index, s.tindex
	s.idxMu.RUnlock()
	return s.writeIndexes(l.fs, idx, tidx)
}

func (l *Log) createSegment(base int64) (*segment, error) {
	s := &segment{dir: l.dir, base: base, next: base, maxTS: -1, lastIndexPos: -1}
	f, err := l.fs.Create(s.path(logSuffix))
	if err != nil {
		return nil, fmt.Errorf("create segment %s: %w", s.path(logSuffix), err)
	}
	s.f = f
	if err := l.fs.SyncDir(l.dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync directory %s after creating a segment: %w", l.dir, err)
	}
	return s, nil
}

// writeCheckpointLocked records (s, pos, next) and the producer state as
// the recovery point. The data up to pos must already be durable. Called
// with mu (for the producer state) and ckptMu held.
func (l *Log) writeCheckpointLocked(s *segment, pos, next int64) error {
	return writeCheckpoint(l.fs, l.dir, encodeCheckpoint(next, s.base, pos, l.prods))
}

// checkpoint makes everything written so far durable, writes the active
// segment's new index entries, and records a checkpoint, so a recovery
// scans only what follows.
func (l *Log) checkpoint() error {
	l.ckptMu.Lock()
	defer l.ckptMu.Unlock()
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	s, pos, next := l.active, l.active.size, l.next
	data := encodeCheckpoint(next, s.base, pos, l.prods)
	l.sinceCkpt = 0
	l.mu.Unlock()

	if err := s.f.Sync(); err != nil {
		return l.fail(fmt.Errorf("fdatasync %s for a checkpoint: %w", s.path(logSuffix), err))
	}
	l.mu.Lock()
	l.durable = max(l.durable, next)
	l.setCommitLocked(next, s, pos)
	l.mu.Unlock()
	if err := l.flushIndexes(s); err != nil {
		return l.fail(err)
	}
	if err := writeCheckpoint(l.fs, l.dir, data); err != nil {
		return l.fail(err)
	}
	return nil
}

// background runs checkpoints, interval syncs and retention.
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
				l.syncLocked()
			}
			l.mu.Unlock()
		case <-l.ckptCh:
			l.mu.Lock()
			due := l.sinceCkpt >= l.opts.CheckpointBytes
			l.mu.Unlock()
			if due {
				if err := l.checkpoint(); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrFailed) {
					l.log.Error("checkpoint failed", "err", err)
				}
			}
			if _, err := l.EnforceRetention(); err != nil && !errors.Is(err, ErrClosed) {
				l.log.Error("retention failed", "err", err)
			}
		}
	}
}

// StartOffset returns the first offset still in the log.
func (l *Log) StartOffset() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.segs[0].base
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
	err := l.checkpoint()
	if errors.Is(err, ErrFailed) {
		err = nil // already reported; nothing more can be made durable
	}
	l.ckptMu.Lock()
	l.mu.Lock()
	for l.syncing {
		l.cond.Wait()
	}
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
