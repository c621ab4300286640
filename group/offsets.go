package group

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/bits"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
)

// Committed offsets live in a log of their own under the store's
// directory (<data_dir>/groups), one record per committed partition:
//
//	key:   uvarint len, group, uvarint len, topic, int32 partition (big endian)
//	value: version byte 1, int64 offset, int32 leader epoch, int64 commit
//	       time (ms), then the client's metadata string to the end; a null
//	       value deletes the key
//
// All commits of one request are one record batch, appended and fsynced
// (whatever the node's fsync policy: commits are small and rare, and a
// commit that came back after a crash would replay processed events) before
// the commit is acknowledged, so a request's commits are all kept or none.
// Requests that arrive while a batch's fdatasync runs are written at once
// and made durable together by the next one (group commit); each is
// applied in memory only once durable, in the log's order.
// The store replays the log into memory when it opens. When the log holds
// more than twice the live keys plus compactSlack records, it is rewritten
// with the live keys only into a log of the next generation
// (offsets-<n>), and the file CURRENT, replaced atomically, names the log
// in use; the old one is then removed. Open removes every log CURRENT does
// not name, so a compaction a crash interrupted is either done or undone.
// A directory written before CURRENT existed holds one log, "offsets",
// which is then the current one.
//
// The log holds group, topic and partition names and offsets, never event
// payloads, so it lives outside the hubs.

// TopicPartition names one partition of a topic (a pipeline).
type TopicPartition struct {
	Topic     string
	Partition int32
}

// CommittedOffset is what a group committed for one partition.
type CommittedOffset struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
	CommitMs    int64 // when the node stored it
}

// OffsetCommit is one partition's commit in CommitOffsets.
type OffsetCommit struct {
	TopicPartition
	CommittedOffset
}

// compactSlack is how many superseded records the offsets log may hold
// beyond the live keys before it is rewritten.
const compactSlack = 100_000

// maxOffsetMetadata bounds a commit's metadata string, as Kafka's
// offset.metadata.max.bytes (4096) does.
const maxOffsetMetadata = 4096

// ErrOffsetMetadataTooLarge is returned for a commit whose metadata is
// longer than 4096 bytes.
var ErrOffsetMetadataTooLarge = errors.New("group: offset commit metadata longer than 4096 bytes")

// ErrClosed is returned by the Store's methods after Close.
var ErrClosed = errors.New("group: offsets store closed")

// Store keeps consumer groups' committed offsets durably. It is safe for
// concurrent use.
type Store struct {
	mu      sync.Mutex
	fs      vfs.FS
	dir     string // <data_dir>/groups
	cur     string // name of the current log's directory, in dir
	closed  bool
	log     *seglog.Log
	groups  map[string]map[TopicPartition]CommittedOffset
	records int // records in the log
	live    int // keys in groups
	slack   int // compactSlack; tests lower it
	// prealloc is the log's seglog.Options.PreallocateBytes (Preallocate).
	prealloc int64
	b        batch.Builder
	logger   *slog.Logger
	now      func() time.Time

	// pending holds the local writes that are in the log and not yet
	// applied, oldest first (writeLocked); drained is signalled when it
	// empties.
	pending []*pendingWrite
	drained *sync.Cond

	// side holds the live side records (side.go) by kind and key, and
	// watchers the function each kind's state machine applies them with.
	side     map[string]map[string][]byte
	watchers map[string]func(key, value []byte)

	// In a cluster (OpenReplicated) the records go to rlog, a replicated
	// log, instead of log; every node applies them as they commit.
	rlog      ReplicatedLog
	applied   int64         // the offset after the last batch applied from rlog
	appliedCh chan struct{} // closed, and replaced, when applied moves
	quit      chan struct{} // closed by Close
	done      chan struct{} // closed when the applier has stopped
}

// currentFile names the log in use.
const currentFile = "CURRENT"

// Option configures a Store at Open.
type Option func(*Store)

// Preallocate keeps the active segment of the store's log n bytes ahead
// of its data in written zeros (seglog.Options.PreallocateBytes), so that
// the fdatasync of a commit need not persist a new file size; without it,
// or with 0, there is none (a node passes storage.preallocate_bytes).
func Preallocate(n int64) Option { return func(s *Store) { s.prealloc = n } }

// Open opens (creating) the store in dir on fs (vfs.Default when nil).
func Open(fs vfs.FS, dir string, logger *slog.Logger, opts ...Option) (*Store, error) {
	if fs == nil {
		fs = vfs.Default
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{
		fs:     fs,
		dir:    dir,
		groups: map[string]map[TopicPartition]CommittedOffset{},
		logger: logger,
		now:    time.Now,
		slack:  compactSlack,
	}
	s.drained = sync.NewCond(&s.mu)
	for _, o := range opts {
		o(s)
	}
	if err := fs.MkdirAll(s.dir); err != nil {
		return nil, fmt.Errorf("group: create %s: %w", s.dir, err)
	}
	if err := s.findCurrent(); err != nil {
		return nil, err
	}
	l, err := s.openLog(s.cur)
	if err != nil {
		return nil, err
	}
	s.log = l
	if err := s.replay(); err != nil {
		l.Close()
		return nil, err
	}
	if s.records > 2*s.live+s.slack {
		if err := s.compactLocked(); err != nil {
			s.log.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Store) openLog(name string) (*seglog.Log, error) {
	l, err := seglog.Open(filepath.Join(s.dir, name), seglog.Options{
		FS:               s.fs,
		Durability:       seglog.Durability{Mode: seglog.SyncAlways},
		SegmentBytes:     64 << 20,
		Logger:           s.logger,
		PreallocateBytes: s.prealloc,
	})
	if err != nil {
		return nil, fmt.Errorf("group: open the committed-offsets log %s: %w", name, err)
	}
	return l, nil
}

// findCurrent reads CURRENT (or, in a directory written before it existed,
// takes the log "offsets", or "offsets.new" when an interrupted compaction
// of that version left only it) and removes every other log.
func (s *Store) findCurrent() error {
	names, err := s.fs.List(s.dir)
	if err != nil {
		return fmt.Errorf("group: list %s: %w", s.dir, err)
	}
	raw, err := vfs.ReadFile(s.fs, filepath.Join(s.dir, currentFile))
	switch {
	case err == nil:
		s.cur = strings.TrimSpace(string(raw))
		if !isLogName(s.cur) {
			return fmt.Errorf("group: %s names %q, which is not an offsets log; restore the directory from a backup", filepath.Join(s.dir, currentFile), s.cur)
		}
	case vfs.IsNotExist(err):
		s.cur = "offsets"
		if !slices.Contains(names, "offsets") && slices.Contains(names, "offsets.new") {
			s.cur = "offsets.new"
		}
		if err := vfs.WriteFileAtomic(s.fs, filepath.Join(s.dir, currentFile), []byte(s.cur+"\n")); err != nil {
			return fmt.Errorf("group: write %s: %w", currentFile, err)
		}
	default:
		return fmt.Errorf("group: read %s: %w", filepath.Join(s.dir, currentFile), err)
	}
	removed := false
	for _, name := range names {
		if name == s.cur || name == currentFile {
			continue
		}
		if err := vfs.RemoveAll(s.fs, filepath.Join(s.dir, name)); err != nil {
			return fmt.Errorf("group: remove the superseded %s: %w", filepath.Join(s.dir, name), err)
		}
		removed = true
	}
	if removed {
		return s.fs.SyncDir(s.dir)
	}
	return nil
}

// isLogName reports whether name can be an offsets log's directory:
// offsets, offsets.new or offsets-<n>.
func isLogName(name string) bool {
	if name == "offsets" || name == "offsets.new" {
		return true
	}
	gen, ok := strings.CutPrefix(name, "offsets-")
	_, err := strconv.ParseUint(gen, 10, 32)
	return ok && err == nil
}

// nextLogName is the name of the log a compaction writes.
func (s *Store) nextLogName() string {
	gen := uint64(0)
	if g, ok := strings.CutPrefix(s.cur, "offsets-"); ok {
		gen, _ = strconv.ParseUint(g, 10, 32)
	}
	return "offsets-" + strconv.FormatUint(gen+1, 10)
}

// replay reads the whole log into groups.
func (s *Store) replay() error {
	var buf []byte
	off := s.log.StartOffset()
	for off < s.log.HighWatermark() {
		var err error
		buf, err = s.log.Read(buf[:0], off, 1<<20)
		if err != nil {
			return fmt.Errorf("group: read the committed-offsets log at offset %d: %w", off, err)
		}
		if len(buf) == 0 {
			break
		}
		next, err := s.applyBatches(buf, off)
		if err != nil {
			return err
		}
		off = next
	}
	return nil
}

// applyBatches applies the records of the whole batches in buf, read at
// offset off, skipping control batches (a replicated log's leader-change
// and configuration entries), and returns the offset after the last.
// The caller holds s.mu or owns s alone.
func (s *Store) applyBatches(buf []byte, off int64) (int64, error) {
	for p := buf; len(p) > 0; {
		h, err := batch.ParseHeader(p)
		if err != nil {
			return off, fmt.Errorf("group: committed-offsets log at offset %d: %w", off, err)
		}
		if h.Attributes&batch.AttrControl != 0 {
			off = h.NextOffset()
			p = p[h.Size():]
			continue
		}
		it, err := batch.NewIter(p[:h.Size()])
		if err != nil {
			return off, fmt.Errorf("group: committed-offsets log at offset %d: %w", h.BaseOffset, err)
		}
		for it.Next() {
			r := it.Record()
			if kind := sideKind(r); kind != "" {
				s.applySide(kind, r.Key, r.Value)
				s.records++
				continue
			}
			if err := s.apply(r.Key, r.Value); err != nil {
				return off, fmt.Errorf("group: committed-offsets log record at offset %d: %w", h.BaseOffset+int64(r.OffsetDelta), err)
			}
			s.records++
		}
		if err := it.Err(); err != nil {
			return off, fmt.Errorf("group: committed-offsets log at offset %d: %w", h.BaseOffset, err)
		}
		off = h.NextOffset()
		p = p[h.Size():]
	}
	return off, nil
}

// apply sets or deletes one key in memory.
func (s *Store) apply(key, value []byte) error {
	group, tp, err := decodeOffsetKey(key)
	if err != nil {
		return err
	}
	g := s.groups[group]
	if value == nil {
		if g != nil {
			if _, ok := g[tp]; ok {
				delete(g, tp)
				s.live--
			}
			if len(g) == 0 {
				delete(s.groups, group)
			}
		}
		return nil
	}
	c, err := decodeOffsetValue(value)
	if err != nil {
		return err
	}
	if g == nil {
		g = map[TopicPartition]CommittedOffset{}
		s.groups[group] = g
	}
	if _, ok := g[tp]; !ok {
		s.live++
	}
	g[tp] = c
	return nil
}

func appendOffsetKey(dst []byte, group string, tp TopicPartition) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(group)))
	dst = append(dst, group...)
	dst = binary.AppendUvarint(dst, uint64(len(tp.Topic)))
	dst = append(dst, tp.Topic...)
	return binary.BigEndian.AppendUint32(dst, uint32(tp.Partition))
}

var errOffsetRecord = errors.New("malformed committed-offset record")

func decodeOffsetKey(p []byte) (string, TopicPartition, error) {
	var tp TopicPartition
	str := func() (string, bool) {
		n, k := binary.Uvarint(p)
		// Only the shortest encoding of a length is accepted: a key has
		// one spelling, as appendOffsetKey writes it.
		if k <= 0 || k != max(1, (bits.Len64(n)+6)/7) || n > uint64(len(p)-k) {
			return "", false
		}
		s := string(p[k : k+int(n)])
		p = p[k+int(n):]
		return s, true
	}
	group, ok1 := str()
	topic, ok2 := str()
	if !ok1 || !ok2 || len(p) != 4 {
		return "", tp, errOffsetRecord
	}
	tp.Topic = topic
	tp.Partition = int32(binary.BigEndian.Uint32(p))
	return group, tp, nil
}

func appendOffsetValue(dst []byte, c CommittedOffset) []byte {
	dst = append(dst, 1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.Offset))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.LeaderEpoch))
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.CommitMs))
	return append(dst, c.Metadata...)
}

func decodeOffsetValue(p []byte) (CommittedOffset, error) {
	var c CommittedOffset
	if len(p) < 21 || p[0] != 1 {
		return c, errOffsetRecord
	}
	c.Offset = int64(binary.BigEndian.Uint64(p[1:]))
	c.LeaderEpoch = int32(binary.BigEndian.Uint32(p[9:]))
	c.CommitMs = int64(binary.BigEndian.Uint64(p[13:]))
	c.Metadata = string(p[21:])
	return c, nil
}

// Commit stores a group's commits durably, then applies them in memory;
// when it returns nil they survive a crash. All of them are kept or none.
func (s *Store) Commit(group string, commits []OffsetCommit) error {
	for _, c := range commits {
		if len(c.Metadata) > maxOffsetMetadata {
			return fmt.Errorf("%w: partition %d of %q has %d bytes", ErrOffsetMetadataTooLarge, c.Partition, c.Topic, len(c.Metadata))
		}
	}
	if len(commits) == 0 {
		return nil
	}
	if s.rlog != nil {
		return s.commitReplicated(group, commits)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	now := s.now().UnixMilli()
	s.b.Reset(-1, -1, -1)
	var kbuf, vbuf []byte
	for i := range commits {
		commits[i].CommitMs = now
		kbuf = appendOffsetKey(kbuf[:0], group, commits[i].TopicPartition)
		vbuf = appendOffsetValue(vbuf[:0], commits[i].CommittedOffset)
		s.b.Add(now, kbuf, vbuf)
	}
	return s.writeLocked(s.b.Finish(), func() {
		s.applyCommits(group, commits)
		s.records += len(commits)
	})
}

// applyCommits applies one group's durable commits in memory. The caller
// holds s.mu.
func (s *Store) applyCommits(group string, commits []OffsetCommit) {
	g := s.groups[group]
	if g == nil {
		g = map[TopicPartition]CommittedOffset{}
		s.groups[group] = g
	}
	for _, c := range commits {
		if _, ok := g[c.TopicPartition]; !ok {
			s.live++
		}
		g[c.TopicPartition] = c.CommittedOffset
	}
}

// DeleteGroup forgets every committed offset of group, durably.
func (s *Store) DeleteGroup(group string) error {
	return s.deleteWhere(func(g string, _ TopicPartition) bool { return g == group }, nil)
}

// DeleteGroupWith forgets every committed offset of group and stores side
// records in one batch, durably, all or none (a processor's deletion and
// its group's offsets). Watchers see the side records once it returns nil.
func (s *Store) DeleteGroupWith(group string, side ...SideRecord) error {
	for _, r := range side {
		if len(r.Key)+len(r.Value) > maxSideRecord || r.Kind == "" {
			return fmt.Errorf("%w (kind %q, %d bytes)", ErrSideRecordTooLarge, r.Kind, len(r.Key)+len(r.Value))
		}
	}
	return s.deleteWhere(func(g string, _ TopicPartition) bool { return g == group }, side)
}

// DeleteOffsets forgets group's committed offsets of the partitions tps,
// durably (Kafka's OffsetDelete). Partitions without one are ignored.
func (s *Store) DeleteOffsets(group string, tps []TopicPartition) error {
	set := make(map[TopicPartition]bool, len(tps))
	for _, tp := range tps {
		set[tp] = true
	}
	return s.deleteWhere(func(g string, tp TopicPartition) bool { return g == group && set[tp] }, nil)
}

// DeleteTopic forgets every group's committed offsets of topic, durably
// (a deleted pipeline's commits would point a consumer of a new one of the
// same name past its end).
func (s *Store) DeleteTopic(topic string) error {
	return s.deleteWhere(func(_ string, tp TopicPartition) bool { return tp.Topic == topic }, nil)
}

// deleteWhere removes the committed offsets that match, durably, in one
// batch of tombstones, with the side records side.
func (s *Store) deleteWhere(match func(group string, tp TopicPartition) bool, side []SideRecord) error {
	if !s.Ready() {
		return ErrNotReady
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// What is deleted is worked out from what is applied: the writes
	// still on their way are applied first.
	for len(s.pending) > 0 && !s.closed {
		s.drained.Wait()
	}
	if s.closed {
		return ErrClosed
	}
	type key struct {
		group string
		tp    TopicPartition
	}
	var gone []key
	for g, m := range s.groups {
		for tp := range m {
			if match(g, tp) {
				gone = append(gone, key{g, tp})
			}
		}
	}
	n := len(gone) + len(side)
	if n == 0 {
		return nil
	}
	build := func(b *batch.Builder) {
		b.Reset(-1, -1, -1)
		now := s.now().UnixMilli()
		for _, r := range side {
			b.Add(now, r.Key, r.Value, batch.RecordHeader{Key: sideHeader, Value: []byte(r.Kind)})
		}
		var kbuf []byte
		for _, k := range gone {
			kbuf = appendOffsetKey(kbuf[:0], k.group, k.tp)
			b.Add(now, kbuf, nil)
		}
	}
	if s.rlog != nil {
		var b batch.Builder
		build(&b)
		s.mu.Unlock()
		err := s.replicate(b.Finish(), n)
		s.mu.Lock() // for the deferred Unlock
		return err
	}
	build(&s.b)
	return s.writeLocked(s.b.Finish(), func() {
		for _, r := range side {
			s.applySide(r.Kind, r.Key, r.Value)
		}
		for _, k := range gone {
			if _, ok := s.groups[k.group][k.tp]; !ok {
				continue
			}
			delete(s.groups[k.group], k.tp)
			if len(s.groups[k.group]) == 0 {
				delete(s.groups, k.group)
			}
			s.live--
		}
		s.records += n
	})
}

// pendingWrite is a local write in the log whose durability is awaited.
type pendingWrite struct {
	apply func()
}

// writeLocked appends b, one batch this store built, to the local log and
// returns once it is durable and applied by apply, in log order. The caller
// holds s.mu; writeLocked releases it while the batch's fdatasync runs, so
// the writes of other requests join that one fdatasync (seglog's group
// commit), and holds it again when it returns. When a write is durable,
// every write before it is too: the first waiter to wake applies all of
// them, oldest first, so memory always follows the log's order. A write or
// fsync error fails the log for good (seglog never retries one): this and
// every later write fail.
func (s *Store) writeLocked(b []byte, apply func()) error {
	if s.closed {
		return ErrClosed
	}
	p, err := s.log.AppendWith(b, seglog.AppendOptions{Trusted: true})
	if err != nil {
		return fmt.Errorf("group: store committed offsets: %w", err)
	}
	w := &pendingWrite{apply: apply}
	s.pending = append(s.pending, w)
	s.mu.Unlock()
	_, err = p.Wait()
	s.mu.Lock()
	i := slices.Index(s.pending, w)
	if err != nil {
		s.pending = slices.Delete(s.pending, i, i+1)
		s.drainedLocked()
		return fmt.Errorf("group: store committed offsets: %w", err)
	}
	for _, pw := range s.pending[:i+1] {
		pw.apply()
	}
	s.pending = slices.Delete(s.pending, 0, i+1)
	if !s.drainedLocked() {
		return nil
	}
	return s.maybeCompactLocked()
}

// drainedLocked reports whether no write is pending, and then wakes those
// that wait for it.
func (s *Store) drainedLocked() bool {
	if len(s.pending) > 0 {
		return false
	}
	s.drained.Broadcast()
	return true
}

// maybeCompactLocked compacts the log when it holds enough superseded
// records. It runs only with no write pending: a compaction rewrites what
// is applied.
func (s *Store) maybeCompactLocked() error {
	if s.records <= 2*s.live+s.slack || len(s.pending) > 0 {
		return nil
	}
	return s.compactLocked()
}

// compactLocked rewrites the log with the live keys only into the next
// generation's log, and makes it current.
func (s *Store) compactLocked() error {
	next := s.nextLogName()
	if err := vfs.RemoveAll(s.fs, filepath.Join(s.dir, next)); err != nil {
		return fmt.Errorf("group: compact committed offsets: %w", err)
	}
	nl, err := s.openLog(next)
	if err != nil {
		return err
	}
	var kbuf, vbuf []byte
	now := s.now().UnixMilli()
	groups := slices.Sorted(maps.Keys(s.groups))
	s.b.Reset(-1, -1, -1)
	flush := func() error {
		if s.b.Len() == 0 {
			return nil
		}
		_, err := nl.Append(s.b.Finish())
		s.b.Reset(-1, -1, -1)
		return err
	}
	for _, g := range groups {
		for tp, c := range s.groups[g] {
			kbuf = appendOffsetKey(kbuf[:0], g, tp)
			vbuf = appendOffsetValue(vbuf[:0], c)
			s.b.Add(now, kbuf, vbuf)
			if s.b.Size() > 512<<10 {
				if err := flush(); err != nil {
					nl.Close()
					return fmt.Errorf("group: compact committed offsets: %w", err)
				}
			}
		}
	}
	if err := s.addLiveSide(&s.b, now, flush); err != nil {
		nl.Close()
		return fmt.Errorf("group: compact committed offsets: %w", err)
	}
	if err := flush(); err != nil {
		nl.Close()
		return fmt.Errorf("group: compact committed offsets: %w", err)
	}
	// From this write on, the new log is the store: a crash before it
	// keeps the old one (Open removes the half-written new one), a crash
	// after it keeps the new one.
	if err := vfs.WriteFileAtomic(s.fs, filepath.Join(s.dir, currentFile), []byte(next+"\n")); err != nil {
		nl.Close()
		return fmt.Errorf("group: compact committed offsets: switch %s to %s: %w", currentFile, next, err)
	}
	old := s.cur
	if err := s.log.Close(); err != nil && !errors.Is(err, seglog.ErrClosed) {
		s.logger.Warn("could not close the superseded committed-offsets log", "dir", old, "err", err)
	}
	s.log, s.cur = nl, next
	s.records = s.live
	if err := vfs.RemoveAll(s.fs, filepath.Join(s.dir, old)); err != nil {
		s.logger.Warn("could not remove the superseded committed-offsets log; the next start removes it", "dir", old, "err", err)
	} else if err := s.fs.SyncDir(s.dir); err != nil {
		s.logger.Warn("could not sync the offsets directory", "dir", s.dir, "err", err)
	}
	return nil
}

// Committed returns a group's committed offsets (a copy).
func (s *Store) Committed(group string) map[TopicPartition]CommittedOffset {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[TopicPartition]CommittedOffset, len(s.groups[group]))
	maps.Copy(out, s.groups[group])
	return out
}

// Groups returns the groups with committed offsets, sorted.
func (s *Store) Groups() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.groups))
}

// Close closes the store's log.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	s.drained.Broadcast()
	if s.rlog != nil {
		close(s.quit)
		s.mu.Unlock()
		<-s.done
		s.mu.Lock()
		return nil
	}
	return s.log.Close()
}

// HighWatermarks gives a partition's high watermark, or false for a
// partition that no longer exists; the lag collector asks it.
type HighWatermarks func(topic string, partition int32) (int64, bool)

// lagCollector exports sense_consumer_group_lag: for every group and
// committed partition, the partition's high watermark minus the committed
// offset, computed when scraped.
type lagCollector struct {
	s    *Store
	hw   HighWatermarks
	desc *prometheus.Desc
}

// NewLagCollector returns the collector of sense_consumer_group_lag for
// the store's groups.
func NewLagCollector(s *Store, hw HighWatermarks) prometheus.Collector {
	return &lagCollector{s: s, hw: hw, desc: prometheus.NewDesc("sense_consumer_group_lag",
		"Records between a consumer group's committed offset and the partition's high watermark.",
		[]string{"group", "pipeline", "partition"}, nil)}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	for _, g := range c.s.Groups() {
		for tp, co := range c.s.Committed(g) {
			hw, ok := c.hw(tp.Topic, tp.Partition)
			if !ok {
				continue // the pipeline was deleted
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(max(hw-co.Offset, 0)),
				g, tp.Topic, strconv.Itoa(int(tp.Partition)))
		}
	}
}
