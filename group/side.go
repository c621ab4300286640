package group

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/sensehq/sense/batch"
)

// Side records are the records of a state machine other than committed
// offsets that keeps its state in the store's log: package txn's
// transaction coordinator. Sharing the log lets one batch hold both a
// transaction's outcome and the offsets it commits, so they are stored
// together or not at all, and lets the node that coordinates consumer
// groups (the leader of the replicated log, in a cluster) coordinate
// transactions too.
//
// A side record carries a record header "sense.kind" naming its kind;
// its key and value are the kind's own. The latest value of each (kind,
// key) is live, and kept by a compaction; a null value deletes the key.
// Offset records carry no header.

// sideHeader names a side record's kind.
const sideHeader = "sense.kind"

// maxSideRecord bounds a side record's key and value together.
const maxSideRecord = 1 << 20

// SideRecord is one record of a state machine kept in the store's log.
type SideRecord struct {
	Kind  string
	Key   []byte
	Value []byte // nil deletes the key
}

// ErrSideRecordTooLarge is returned by Write for a side record larger
// than 1 MiB.
var ErrSideRecordTooLarge = errors.New("group: side record larger than 1 MiB")

// Watch calls fn with every live side record of kind, then with every side
// record of kind the store applies from now on (its own writes and, in a
// cluster, the leader's as they commit), in log order, until the store is
// closed. fn runs under the store's lock: it must not call the store, and
// must not keep key or value.
func (s *Store) Watch(kind string, fn func(key, value []byte)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watchers == nil {
		s.watchers = map[string]func(key, value []byte){}
	}
	s.watchers[kind] = fn
	for _, k := range slices.Sorted(maps.Keys(s.side[kind])) {
		fn([]byte(k), s.side[kind][k])
	}
}

// GroupCommits are one group's commits in Write.
type GroupCommits struct {
	Group   string
	Commits []OffsetCommit
}

// Write stores side records and groups' commits in one batch, durably, all
// or none, then applies them: when it returns nil, the watchers have seen
// the side records and Committed shows the commits.
func (s *Store) Write(side []SideRecord, groups ...GroupCommits) error {
	n := len(side)
	for _, g := range groups {
		for _, c := range g.Commits {
			if len(c.Metadata) > maxOffsetMetadata {
				return fmt.Errorf("%w: partition %d of %q has %d bytes", ErrOffsetMetadataTooLarge, c.Partition, c.Topic, len(c.Metadata))
			}
		}
		n += len(g.Commits)
	}
	for _, r := range side {
		if len(r.Key)+len(r.Value) > maxSideRecord || r.Kind == "" {
			return fmt.Errorf("%w (kind %q, %d bytes)", ErrSideRecordTooLarge, r.Kind, len(r.Key)+len(r.Value))
		}
	}
	if n == 0 {
		return nil
	}
	var b batch.Builder
	b.Reset(-1, -1, -1)
	now := s.now().UnixMilli()
	for _, r := range side {
		b.Add(now, r.Key, r.Value, batch.RecordHeader{Key: sideHeader, Value: []byte(r.Kind)})
	}
	var kbuf, vbuf []byte
	for _, g := range groups {
		for i := range g.Commits {
			g.Commits[i].CommitMs = now
			kbuf = appendOffsetKey(kbuf[:0], g.Group, g.Commits[i].TopicPartition)
			vbuf = appendOffsetValue(vbuf[:0], g.Commits[i].CommittedOffset)
			b.Add(now, kbuf, vbuf)
		}
	}
	if s.rlog != nil {
		if !s.Ready() {
			return ErrNotReady
		}
		return s.replicate(b.Finish(), n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeLocked(b.Finish(), func() {
		for _, r := range side {
			s.applySide(r.Kind, r.Key, r.Value)
		}
		for _, gc := range groups {
			if len(gc.Commits) > 0 {
				s.applyCommits(gc.Group, gc.Commits)
			}
		}
		s.records += n
	})
}

// applySide applies one side record in memory and hands it to its kind's
// watcher. The caller holds s.mu or owns s alone.
func (s *Store) applySide(kind string, key, value []byte) {
	if s.side == nil {
		s.side = map[string]map[string][]byte{}
	}
	m := s.side[kind]
	if value == nil {
		if _, ok := m[string(key)]; ok {
			delete(m, string(key))
			s.live--
		}
	} else {
		if m == nil {
			m = map[string][]byte{}
			s.side[kind] = m
		}
		if _, ok := m[string(key)]; !ok {
			s.live++
		}
		m[string(key)] = append([]byte(nil), value...)
	}
	if fn := s.watchers[kind]; fn != nil {
		fn(key, value)
	}
}

// sideKind returns the kind of a record read from the log, "" for an
// offset record.
func sideKind(r *batch.Record) string {
	hi := r.Headers()
	for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
		if string(k) == sideHeader {
			return string(v)
		}
	}
	return ""
}

// addLiveSide adds every live side record to b, for a compaction.
func (s *Store) addLiveSide(b *batch.Builder, now int64, flush func() error) error {
	for _, kind := range slices.Sorted(maps.Keys(s.side)) {
		for _, k := range slices.Sorted(maps.Keys(s.side[kind])) {
			b.Add(now, []byte(k), s.side[kind][k], batch.RecordHeader{Key: sideHeader, Value: []byte(kind)})
			if b.Size() > 512<<10 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
