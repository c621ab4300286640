package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
)

// Committed offsets of consumer groups live in a log of their own,
// <data_dir>/groups/offsets, one record per committed partition:
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
// The node replays the log into memory at start. When the log holds more
// than twice the live keys plus compactSlack records, it is rewritten with
// the live keys only: a new log is written in offsets.new, then swapped in
// by renames; Open finishes or discards a swap a crash interrupted.
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
var ErrOffsetMetadataTooLarge = errors.New("node: offset commit metadata longer than 4096 bytes")

type offsetStore struct {
	mu      sync.Mutex
	dir     string // <data_dir>/groups
	log     *seglog.Log
	groups  map[string]map[TopicPartition]CommittedOffset
	records int // records in the log
	live    int // keys in groups
	slack   int // compactSlack; tests lower it
	b       batch.Builder
	logger  *slog.Logger
	now     func() time.Time
}

func openOffsetStore(dataDir string, logger *slog.Logger) (*offsetStore, error) {
	s := &offsetStore{
		dir:    filepath.Join(dataDir, "groups"),
		groups: map[string]map[TopicPartition]CommittedOffset{},
		logger: logger,
		now:    time.Now,
		slack:  compactSlack,
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("node: create %s: %w", s.dir, err)
	}
	if err := s.finishSwap(); err != nil {
		return nil, err
	}
	l, err := s.openLog("offsets")
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

func (s *offsetStore) openLog(name string) (*seglog.Log, error) {
	l, err := seglog.Open(filepath.Join(s.dir, name), seglog.Options{
		Durability:   seglog.Durability{Mode: seglog.SyncAlways},
		SegmentBytes: 64 << 20,
		Logger:       s.logger,
	})
	if err != nil {
		return nil, fmt.Errorf("node: open the committed-offsets log: %w", err)
	}
	return l, nil
}

// finishSwap completes or undoes a compaction a crash interrupted:
// offsets.new without offsets means the first rename happened (offsets
// became offsets.old) but not the second.
func (s *offsetStore) finishSwap() error {
	cur := filepath.Join(s.dir, "offsets")
	next := filepath.Join(s.dir, "offsets.new")
	old := filepath.Join(s.dir, "offsets.old")
	_, curErr := os.Stat(cur)
	_, nextErr := os.Stat(next)
	if os.IsNotExist(curErr) && nextErr == nil {
		if err := os.Rename(next, cur); err != nil {
			return fmt.Errorf("node: finish compaction of %s: %w", cur, err)
		}
		if err := vfs.Default.SyncDir(s.dir); err != nil {
			return err
		}
	}
	// Either leftover is superseded by offsets now.
	for _, p := range []string{next, old} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("node: remove %s: %w", p, err)
		}
	}
	return nil
}

// replay reads the whole log into groups.
func (s *offsetStore) replay() error {
	var buf []byte
	off := s.log.StartOffset()
	for off < s.log.HighWatermark() {
		var err error
		buf, err = s.log.Read(buf[:0], off, 1<<20)
		if err != nil {
			return fmt.Errorf("node: read the committed-offsets log at offset %d: %w", off, err)
		}
		if len(buf) == 0 {
			break
		}
		for p := buf; len(p) > 0; {
			h, err := batch.ParseHeader(p)
			if err != nil {
				return fmt.Errorf("node: committed-offsets log at offset %d: %w", off, err)
			}
			it, err := batch.NewIter(p[:h.Size()])
			if err != nil {
				return fmt.Errorf("node: committed-offsets log at offset %d: %w", h.BaseOffset, err)
			}
			for it.Next() {
				r := it.Record()
				if err := s.apply(r.Key, r.Value); err != nil {
					return fmt.Errorf("node: committed-offsets log record at offset %d: %w", h.BaseOffset+int64(r.OffsetDelta), err)
				}
				s.records++
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("node: committed-offsets log at offset %d: %w", h.BaseOffset, err)
			}
			off = h.NextOffset()
			p = p[h.Size():]
		}
	}
	return nil
}

// apply sets or deletes one key in memory.
func (s *offsetStore) apply(key, value []byte) error {
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
		if k <= 0 || n > uint64(len(p)-k) {
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

// commit stores commits durably (nil for a deletion, see deleteGroup) and
// then applies them in memory.
func (s *offsetStore) commit(group string, commits []OffsetCommit) error {
	for _, c := range commits {
		if len(c.Metadata) > maxOffsetMetadata {
			return fmt.Errorf("%w: partition %d of %q has %d bytes", ErrOffsetMetadataTooLarge, c.Partition, c.Topic, len(c.Metadata))
		}
	}
	if len(commits) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UnixMilli()
	s.b.Reset(-1, -1, -1)
	var kbuf, vbuf []byte
	for i := range commits {
		commits[i].CommitMs = now
		kbuf = appendOffsetKey(kbuf[:0], group, commits[i].TopicPartition)
		vbuf = appendOffsetValue(vbuf[:0], commits[i].CommittedOffset)
		s.b.Add(now, kbuf, vbuf)
	}
	if err := s.appendLocked(); err != nil {
		return err
	}
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
	s.records += len(commits)
	return s.maybeCompactLocked()
}

// deleteGroup removes every committed offset of group.
func (s *offsetStore) deleteGroup(group string) error {
	return s.deleteWhere(func(g string, _ TopicPartition) bool { return g == group })
}

// deleteTopic removes every group's committed offsets of topic.
func (s *offsetStore) deleteTopic(topic string) error {
	return s.deleteWhere(func(_ string, tp TopicPartition) bool { return tp.Topic == topic })
}

// deleteWhere removes the committed offsets that match, durably, in one
// batch of tombstones.
func (s *offsetStore) deleteWhere(match func(group string, tp TopicPartition) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
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
	if len(gone) == 0 {
		return nil
	}
	now := s.now().UnixMilli()
	s.b.Reset(-1, -1, -1)
	var kbuf []byte
	for _, k := range gone {
		kbuf = appendOffsetKey(kbuf[:0], k.group, k.tp)
		s.b.Add(now, kbuf, nil)
	}
	if err := s.appendLocked(); err != nil {
		return err
	}
	for _, k := range gone {
		delete(s.groups[k.group], k.tp)
		if len(s.groups[k.group]) == 0 {
			delete(s.groups, k.group)
		}
	}
	s.records += len(gone)
	s.live -= len(gone)
	return s.maybeCompactLocked()
}

// appendLocked appends the builder's batch. A write or fsync error fails
// the log for good (seglog never retries one): later commits fail too.
func (s *offsetStore) appendLocked() error {
	if _, err := s.log.Append(s.b.Finish()); err != nil {
		return fmt.Errorf("node: store committed offsets: %w", err)
	}
	return nil
}

func (s *offsetStore) maybeCompactLocked() error {
	if s.records <= 2*s.live+s.slack {
		return nil
	}
	return s.compactLocked()
}

// compactLocked rewrites the log with the live keys only and swaps it in.
func (s *offsetStore) compactLocked() error {
	next := filepath.Join(s.dir, "offsets.new")
	if err := os.RemoveAll(next); err != nil {
		return fmt.Errorf("node: compact committed offsets: %w", err)
	}
	nl, err := s.openLog("offsets.new")
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
					return fmt.Errorf("node: compact committed offsets: %w", err)
				}
			}
		}
	}
	if err := flush(); err != nil {
		nl.Close()
		return fmt.Errorf("node: compact committed offsets: %w", err)
	}
	if err := nl.Close(); err != nil {
		return fmt.Errorf("node: compact committed offsets: %w", err)
	}
	if err := s.log.Close(); err != nil && !errors.Is(err, seglog.ErrClosed) {
		return fmt.Errorf("node: compact committed offsets: %w", err)
	}
	cur := filepath.Join(s.dir, "offsets")
	old := filepath.Join(s.dir, "offsets.old")
	if err := os.Rename(cur, old); err != nil {
		return fmt.Errorf("node: compact committed offsets: %w", err)
	}
	if err := os.Rename(next, cur); err != nil {
		return fmt.Errorf("node: compact committed offsets: %w", err)
	}
	if err := vfs.Default.SyncDir(s.dir); err != nil {
		return fmt.Errorf("node: compact committed offsets: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		s.logger.Warn("could not remove the old committed-offsets log", "dir", old, "err", err)
	}
	l, err := s.openLog("offsets")
	if err != nil {
		return err
	}
	s.log = l
	s.records = s.live
	return nil
}

// fetch returns group's committed offsets.
func (s *offsetStore) fetch(group string) map[TopicPartition]CommittedOffset {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	out := make(map[TopicPartition]CommittedOffset, len(g))
	for tp, c := range g {
		out[tp] = c
	}
	return out
}

// groupNames returns the groups with committed offsets, sorted.
func (s *offsetStore) groupNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.groups))
}

func (s *offsetStore) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Close()
}

// CommitOffsets stores a group's commits durably; when it returns nil they
// survive a crash. All of them are kept or none.
func (n *Node) CommitOffsets(group string, commits []OffsetCommit) error {
	if n.closed.Load() {
		return errClosed
	}
	return n.offsets.commit(group, commits)
}

// CommittedOffsets returns a group's committed offsets (a copy).
func (n *Node) CommittedOffsets(group string) map[TopicPartition]CommittedOffset {
	return n.offsets.fetch(group)
}

// OffsetGroups returns the names of the groups that have committed
// offsets, sorted.
func (n *Node) OffsetGroups() []string { return n.offsets.groupNames() }

// DeleteGroupOffsets forgets every committed offset of a group, durably.
func (n *Node) DeleteGroupOffsets(group string) error {
	if n.closed.Load() {
		return errClosed
	}
	return n.offsets.deleteGroup(group)
}

// lagCollector exports sense_consumer_group_lag: for every group and
// committed partition, the partition's high watermark minus the committed
// offset, computed when scraped.
type lagCollector struct {
	n    *Node
	desc *prometheus.Desc
}

func newLagCollector(n *Node) *lagCollector {
	return &lagCollector{n: n, desc: prometheus.NewDesc("sense_consumer_group_lag",
		"Records between a consumer group's committed offset and the partition's high watermark.",
		[]string{"group", "pipeline", "partition"}, nil)}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	for _, g := range c.n.OffsetGroups() {
		for tp, co := range c.n.CommittedOffsets(g) {
			l, code := c.n.Log(tp.Topic, tp.Partition)
			if code != OK {
				continue // the pipeline was deleted
			}
			lag := max(l.HighWatermark()-co.Offset, 0)
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(lag),
				g, tp.Topic, strconv.Itoa(int(tp.Partition)))
		}
	}
}
