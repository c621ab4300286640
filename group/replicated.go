package group

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/internal/follow"
	"github.com/sensehq/sense/result"
)

// ReplicatedLog is the log a cluster keeps committed offsets in: a raft
// group of a few nodes (package replica). Only the leader may append.
// Offsets and reads are as node.Buffer's: reads never pass the high
// watermark, the commit point.
type ReplicatedLog = follow.Replicated

// Ack is a pending append to a ReplicatedLog.
type Ack = follow.Ack

// ErrNotReady is returned by a replicated store's writes on a node that
// does not lead its log, or has not applied it fully yet.
var ErrNotReady = errors.New("group: this node does not coordinate consumer groups now (it does not lead the committed-offsets log); find the coordinator and retry")

// OpenReplicated returns a store whose commits go to rlog, a log
// replicated over a few nodes of a cluster. Every node that holds a
// replica applies the log's committed records as they come (a goroutine
// Close stops), so the node that leads it next knows every commit. The
// store never compacts rlog (see docs/cluster.md).
func OpenReplicated(rlog ReplicatedLog, logger *slog.Logger) *Store {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{
		groups:    map[string]map[TopicPartition]CommittedOffset{},
		logger:    logger,
		now:       time.Now,
		slack:     compactSlack,
		rlog:      rlog,
		applied:   rlog.StartOffset(),
		appliedCh: make(chan struct{}),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	s.drained = sync.NewCond(&s.mu)
	go s.applier()
	return s
}

// Replicated reports whether the store is a replicated log (a cluster)
// rather than a file of this node alone.
func (s *Store) Replicated() bool { return s.rlog != nil }

// Ready reports whether this store may answer for the groups: always for a
// store of one node; for a replicated one, when this node leads the log and
// has applied everything committed.
func (s *Store) Ready() bool {
	if s.rlog == nil {
		return true
	}
	if !s.rlog.LeaderReady() {
		return false
	}
	hw := s.rlog.HighWatermark()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied >= hw
}

// applier applies rlog's committed batches in order until Close.
func (s *Store) applier() {
	defer close(s.done)
	follow.Run(s.rlog, s.applied, func(p []byte, off int64) (int64, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		next, err := s.applyBatches(p, off)
		if next > s.applied {
			s.applied = next
			close(s.appliedCh)
			s.appliedCh = make(chan struct{})
		}
		return next, err
	}, func(off int64, err error) {
		s.logger.Error("group: applying the replicated committed-offsets log failed; retrying", "offset", off, "err", err)
	}, s.quit)
}

// commitReplicated builds a group's commits into one batch and replicates
// it.
func (s *Store) commitReplicated(group string, commits []OffsetCommit) error {
	if !s.Ready() {
		return ErrNotReady
	}
	var b batch.Builder
	b.Reset(-1, -1, -1)
	now := s.now().UnixMilli()
	var kbuf, vbuf []byte
	for i := range commits {
		commits[i].CommitMs = now
		kbuf = appendOffsetKey(kbuf[:0], group, commits[i].TopicPartition)
		vbuf = appendOffsetValue(vbuf[:0], commits[i].CommittedOffset)
		b.Add(now, kbuf, vbuf)
	}
	return s.replicate(b.Finish(), len(commits))
}

// replicateErr is the error of a write the log refused or could not
// commit: ErrNotReady when this node lost the lead meanwhile (the client
// finds the coordinator again and retries; a write whose outcome is
// unknown may have been committed by the next leader, and every write
// of the offsets and of the transaction coordinator can be retried).
func replicateErr(err error) error {
	switch result.CodeOf(err) {
	case result.NotLeader, result.NotReady:
		return fmt.Errorf("%w (%v)", ErrNotReady, err)
	}
	return fmt.Errorf("group: store committed offsets: %w", err)
}

// replicate appends a batch of n records to rlog, waits for its commit,
// then for the applier to have applied it, so that what Commit returned
// nil for is what Committed shows. The caller does not hold s.mu.
func (s *Store) replicate(b []byte, n int) error {
	ack, err := s.rlog.Append(b)
	if err != nil {
		return replicateErr(err)
	}
	base, err := ack.Wait()
	if err != nil {
		return replicateErr(err)
	}
	end := base + int64(n)
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.applied < end {
		if s.closed {
			return ErrClosed
		}
		ch := s.appliedCh
		s.mu.Unlock()
		select {
		case <-ch:
		case <-s.quit:
		}
		s.mu.Lock()
	}
	return nil
}
