package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/group"
)

// Errors of the coordinator's operations, which an edge maps to its own
// codes (edge/kafka/txn.go).
var (
	// ErrNotCoordinator: this node does not coordinate transactions now
	// (in a cluster it does not lead the committed-offsets log, or has not
	// finished recovering it). Retriable: find the coordinator again.
	ErrNotCoordinator = errors.New("txn: this node does not coordinate transactions now; find the coordinator and retry")
	// ErrInvalidTimeout: a transaction timeout of 0 or less, or above the
	// node's maximum.
	ErrInvalidTimeout = errors.New("txn: invalid transaction timeout")
	// ErrInvalidMapping: the producer id is not the transactional id's,
	// or the transactional id is unknown (InitProducerId first).
	ErrInvalidMapping = errors.New("txn: the producer id does not belong to the transactional id")
	// ErrFenced: the producer epoch is not the transactional id's current
	// one: another producer initialized the id since, or the coordinator
	// aborted the transaction (timeout, restart) and fenced the epoch.
	ErrFenced = errors.New("txn: producer fenced: a newer producer epoch exists for this transactional id")
	// ErrInvalidState: the request does not fit the transaction's state
	// (EndTxn without a transaction, commit after abort, a produce to a
	// partition not added, offsets for a group not added).
	ErrInvalidState = errors.New("txn: invalid transaction state")
	// ErrStaleEndTxn is an ErrInvalidState: an EndTxn that arrived on a
	// connection that carried nothing of the ongoing transaction and was
	// opened before it began, so it was sent for an earlier transaction
	// (fence.go).
	ErrStaleEndTxn = fmt.Errorf("%w: the EndTxn was sent before the ongoing transaction began (it ends an earlier one)", ErrInvalidState)
	// ErrConcurrent: the previous transaction of the id is still being
	// completed. Retriable.
	ErrConcurrent = errors.New("txn: the previous transaction is still being completed; retry")
	// ErrClosed: the coordinator was closed.
	ErrClosed = errors.New("txn: coordinator closed")
)

// MarkerWriter writes a transaction marker to a partition and returns once
// it is durable; nil too when the partition no longer exists (nothing is
// left to mark).
type MarkerWriter func(ctx context.Context, tp TopicPartition, m batch.Marker) error

// OpenTxnInfo is a producer's transaction open in a partition
// (Config.OpenTxn): a transactional batch with no marker after it.
type OpenTxnInfo struct {
	Open bool
	// Epoch and First are the producer epoch and the offset of the
	// transaction's first batch.
	Epoch int16
	First int64
}

// MarkerAck is a marker appended to its partition (Config.StartMarker):
// Ready reports whether it is durable, Wait makes it so (a group commit of
// its partition) and returns its offset, or why it cannot be durable.
type MarkerAck interface {
	Ready() bool
	Wait() (int64, error)
}

// Config configures a Coordinator.
type Config struct {
	// Store keeps the coordinator's state (side records of kind Kind) and
	// the groups' committed offsets.
	Store *group.Store
	// WriteMarker writes commit and abort markers (node.AppendMarker).
	WriteMarker MarkerWriter
	// NewProducerID gives a producer id never given before
	// (node.NewProducerID).
	NewProducerID func() (int64, error)
	// OpenTxn reports whether producer pid has a transaction open in
	// partition tp: a transactional batch with no marker after it, and the
	// producer epoch of its first batch (node.OpenTransaction). With it,
	// on a node alone, a transaction's partitions stay added for the id's
	// next transaction (see "Partitions kept for the next transaction" in
	// doc.go); nil turns that off.
	OpenTxn func(tp TopicPartition, pid int64) (OpenTxnInfo, error)
	// PartitionEnd returns a partition's next offset (node.NextOffset);
	// with StartMarker and OpenTxn, on a node alone, an EndTxn of
	// transaction version 1 is answered as one that bumps the epoch (see
	// StartMarker), the partitions' ends stored with its outcome.
	PartitionEnd func(tp TopicPartition) (int64, error)
	// StartMarker appends a marker to a partition without waiting for it
	// to be durable (node.StartMarker); a nil MarkerAck when the partition
	// no longer exists. With it and OpenTxn, on a node alone, an EndTxn
	// that bumps the epoch answers once its outcome is durable and its
	// markers are appended (see "Markers made durable after the answer"
	// in doc.go); nil turns that off.
	StartMarker func(tp TopicPartition, m batch.Marker) (MarkerAck, error)
	// MarkerLinger: the markers of a producer that began its last
	// transaction before the markers of the one before were durable (one
	// running transactions back to back) wait that long for a group
	// commit of their partitions (its next transaction's appends, which
	// follow them) before the coordinator runs one; the others' are made
	// durable at once. A producer whose next transaction needs the last
	// one to be visible (a consume-transform-produce stage whose input
	// follows its output) never waits so. Default 1 ms; negative: always
	// at once.
	MarkerLinger time.Duration
	// MaxTimeout bounds the transaction timeout a producer may ask for
	// (Kafka's transaction.max.timeout.ms); default 15 minutes.
	MaxTimeout time.Duration
	// IDExpiration forgets a transactional id whose last transaction
	// ended (or that began none) and whose state has not been written
	// for that long (Kafka's transactional.id.expiration.ms); default 7
	// days. A producer that comes back after it gets a new producer id.
	IDExpiration time.Duration
	// Tick is how often timeouts and unfinished completions are looked
	// at; default 500 ms.
	Tick   time.Duration
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultMaxTimeout is Kafka's default transaction.max.timeout.ms.
const DefaultMaxTimeout = 15 * time.Minute

// DefaultIDExpiration is Kafka's default transactional.id.expiration.ms.
const DefaultIDExpiration = 7 * 24 * time.Hour

// DefaultMarkerLinger is Config.MarkerLinger's default.
const DefaultMarkerLinger = time.Millisecond

// markerTimeout bounds one round of marker writes.
const markerTimeout = 30 * time.Second

// Coordinator runs the transactions of transactional producers (KIP-98).
// It is safe for concurrent use; operations on one transactional id are
// serialized.
type Coordinator struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	ids     map[string]*entry
	byPID   map[int64]*entry
	changed chan struct{} // closed, and replaced, when a state is applied

	// clock orders sessions' openings and transactions' beginnings (fence.go).
	clock     atomic.Uint64
	recovered atomic.Bool
	// startedMs is when this coordinator started: the write time it takes
	// for states written before records had one (Txn.UpdatedMs 0).
	startedMs int64

	quit chan struct{}
	done chan struct{}
	bg   sync.WaitGroup // completions written after their answer
}

// entry is one transactional id: its applied state and what is in memory
// only.
type entry struct {
	op sync.Mutex // serializes the operations on the id

	// Guarded by Coordinator.mu:
	// completing is closed once the record that completes the id's last
	// transaction is written (decide writes it after answering); the next
	// operation on the id, Describe and List wait for it.
	completing chan struct{}
	t          *Txn // applied state; replaced, never changed
	parts      map[TopicPartition]bool
	beganAt    uint64 // clock when the ongoing transaction began here
	inflight   int    // transactional appends under way (BeginProduce)
	idle       chan struct{}
	// kept: the partitions the log holds for the id's next transaction
	// (a completed state's Partitions), which it may add without a
	// write. mem: the ongoing transaction in t began without a write (the
	// log still holds the completed one before it, with kept). landed: the
	// number (Seq) of the last transaction a batch was appended to.
	kept   map[TopicPartition]bool
	mem    bool
	landed uint64
	// logged: the id's last transaction as the log holds it (PrepareCommit
	// or PrepareAbort) while t holds its completion in memory only, its
	// markers appended (decideLazy); nil once the log moves on. unsynced:
	// markers of it not yet known durable; every write of the id's state
	// waits for them first (settle), so the log never holds a later state
	// of the id while a marker of the decided transaction may be lost.
	logged   *Txn
	unsynced []MarkerAck
	// quick: the id's last transaction began before the markers of the
	// one before were durable (begin).
	quick bool
	// ending: an EndTxn of transaction version 1 is noting the
	// partitions' ends (noteEnds): no batch of the transaction may start.
	ending bool
}

// New returns a coordinator over cfg.Store. It applies the state the store
// holds, then, while this node coordinates, finishes what a crash or a
// failover interrupted: an ongoing transaction is aborted (and its
// producer fenced), one whose outcome was logged is completed. A goroutine,
// stopped by Close, aborts transactions that outlive their timeout.
func New(cfg Config) (*Coordinator, error) {
	if cfg.Store == nil || cfg.WriteMarker == nil || cfg.NewProducerID == nil {
		return nil, errors.New("txn: New needs a Store, a WriteMarker and a NewProducerID")
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = DefaultMaxTimeout
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 500 * time.Millisecond
	}
	if cfg.MarkerLinger == 0 {
		cfg.MarkerLinger = DefaultMarkerLinger
	}
	if cfg.IDExpiration <= 0 {
		cfg.IDExpiration = DefaultIDExpiration
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Coordinator{cfg: cfg, log: cfg.Logger, ids: map[string]*entry{}, byPID: map[int64]*entry{},
		changed: make(chan struct{}), quit: make(chan struct{}), done: make(chan struct{}), startedMs: cfg.Now().UnixMilli()}
	cfg.Store.Watch(Kind, c.apply)
	c.tick()
	go c.loop()
	return c, nil
}

// Close stops the coordinator's goroutine and waits for it.
func (c *Coordinator) Close() {
	select {
	case <-c.quit:
	default:
		close(c.quit)
	}
	<-c.done
	c.bg.Wait()
}

// expired reports whether t's id has had no transaction and no write for
// Config.IDExpiration at now (ms).
func (c *Coordinator) expired(t *Txn, now int64) bool {
	switch t.State {
	case Empty, CompleteCommit, CompleteAbort:
	default:
		return false
	}
	return now-c.writtenMs(t) > c.cfg.IDExpiration.Milliseconds()
}

// writtenMs is when t was written; for a state written before records had
// the time, when this coordinator started.
func (c *Coordinator) writtenMs(t *Txn) int64 {
	if t.UpdatedMs == 0 {
		return c.startedMs
	}
	return t.UpdatedMs
}

// expire forgets id if it is still expired at now: a null record in the
// log (compaction then drops the id's records), and its entry. A producer
// of the id that comes back gets a new producer id, as from Kafka.
func (c *Coordinator) expire(id string, now int64) {
	e, cur := c.lock(id)
	defer e.op.Unlock()
	if cur == nil || !c.expired(cur, now) {
		return
	}
	err := c.settle(id)
	if err == nil {
		err = c.cfg.Store.Write([]group.SideRecord{{Kind: Kind, Key: []byte(id)}})
	}
	if err != nil {
		c.log.Warn("txn: could not forget an expired transactional id; retrying", "transactional_id", id, "err", err)
		return
	}
	c.log.Info("txn: transactional id expired", "transactional_id", id, "producer_id", cur.ProducerID,
		"idle_for", time.Duration(now-c.writtenMs(cur))*time.Millisecond, "expiration", c.cfg.IDExpiration)
	c.mu.Lock()
	if c.ids[id] == e && e.t == nil && e.inflight == 0 && e.completing == nil {
		delete(c.ids, id)
	}
	c.mu.Unlock()
}

// forgetLocked drops the entry of an id whose state is gone (expired),
// unless an operation holds it or a write of it is on its way. Called
// with mu held.
func (c *Coordinator) forgetLocked(id string, e *entry) {
	if e == nil || e.t != nil || e.inflight != 0 || e.completing != nil || c.ids[id] != e || !e.op.TryLock() {
		return
	}
	delete(c.ids, id)
	e.op.Unlock()
}

// apply is the store's watcher: it applies one record of the log.
func (c *Coordinator) apply(key, value []byte) {
	id := string(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		close(c.changed)
		c.changed = make(chan struct{})
	}()
	e := c.ids[id]
	if value == nil {
		if e != nil && e.t != nil {
			delete(c.byPID, e.t.ProducerID)
			e.t, e.parts, e.kept, e.mem = nil, nil, nil, false
		}
		c.forgetLocked(id, e)
		return
	}
	t, err := decodeValue(id, value)
	if err != nil {
		c.log.Error("txn: a transaction coordinator record does not decode; the transactional id keeps its previous state", "transactional_id", id, "err", err)
		return
	}
	if e == nil {
		e = &entry{}
		c.ids[id] = e
	}
	if e.t != nil && e.t.ProducerID != t.ProducerID && c.byPID[e.t.ProducerID] == e {
		delete(c.byPID, e.t.ProducerID)
	}
	if t.State == Ongoing && (e.t == nil || e.t.State != Ongoing || e.t.Seq != t.Seq) {
		e.beganAt = c.clock.Add(1)
	}
	e.logged = nil
	c.byPID[t.ProducerID] = e
	e.setLocked(t)
}

// setLocked makes t, as the log holds it or as decideLazy completes it,
// e's state: an ongoing transaction's partitions are added, a completed
// one's kept for the next. The caller holds Coordinator.mu.
func (e *entry) setLocked(t *Txn) {
	set := make(map[TopicPartition]bool, len(t.Partitions))
	for _, tp := range t.Partitions {
		set[tp] = true
	}
	e.t, e.mem, e.kept, e.parts = t, false, nil, set
	if t.State == CompleteCommit || t.State == CompleteAbort {
		e.kept, e.parts = set, nil
	}
}

// ready reports whether this node may run transactions now.
func (c *Coordinator) ready() bool {
	return c.cfg.Store.Ready() && c.recovered.Load()
}

// Ready reports whether this node coordinates transactions now.
func (c *Coordinator) Ready() bool { return c.ready() }

// current returns the id's entry and a copy of its state (nil if the id
// has none).
func (c *Coordinator) current(id string) (*entry, *Txn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.ids[id]
	if e == nil || e.t == nil {
		return e, nil
	}
	t := *e.t
	return e, &t
}

// lock returns the id's entry (created when missing) with its operation
// lock held, and the id's state.
func (c *Coordinator) lock(id string) (*entry, *Txn) {
	for {
		c.mu.Lock()
		e := c.ids[id]
		if e == nil {
			e = &entry{}
			c.ids[id] = e
		}
		c.mu.Unlock()
		e.op.Lock()
		c.mu.Lock()
		same := c.ids[id] == e
		c.mu.Unlock()
		if !same {
			// The id expired while this waited (forget): its entry is
			// gone; take the one that serves it now.
			e.op.Unlock()
			continue
		}
		c.waitCompleted(e)
		_, t := c.current(id)
		return e, t
	}
}

// waitCompleted waits until the record completing e's last transaction is
// written, if one is on its way.
func (c *Coordinator) waitCompleted(e *entry) {
	c.mu.Lock()
	ch := e.completing
	c.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// write stores t as its id's state, with the groups' commits, durably,
// once the markers of the id's last transaction are (settle).
func (c *Coordinator) write(t *Txn, commits ...group.GroupCommits) error {
	if err := c.settle(t.ID); err != nil {
		return err
	}
	if t.State != PrepareCommit && t.State != PrepareAbort {
		t.Ends = nil // a decision's only
	}
	t.UpdatedMs = c.cfg.Now().UnixMilli()
	err := c.cfg.Store.Write([]group.SideRecord{{Kind: Kind, Key: []byte(t.ID), Value: appendValue(nil, t)}}, commits...)
	if errors.Is(err, group.ErrNotReady) {
		return ErrNotCoordinator
	}
	if err != nil {
		return fmt.Errorf("txn: store the state of transactional id %q: %w", t.ID, err)
	}
	return nil
}

// settle waits until every marker of id's last transaction that was
// appended without a wait (decideLazy) is durable. The caller holds the
// id's e.op.
func (c *Coordinator) settle(id string) error {
	c.mu.Lock()
	e := c.ids[id]
	var acks []MarkerAck
	if e != nil {
		acks = e.unsynced
	}
	c.mu.Unlock()
	if err := c.syncMarkers(e, acks); err != nil {
		return fmt.Errorf("txn: a marker of transactional id %q's last transaction could not be made durable: %w", id, err)
	}
	return nil
}

// syncMarkers makes acks, markers decideLazy appended for e, durable, and
// then forgets them unless e has newer ones.
func (c *Coordinator) syncMarkers(e *entry, acks []MarkerAck) error {
	if len(acks) == 0 {
		return nil
	}
	for _, a := range acks {
		if _, err := a.Wait(); err != nil {
			return err
		}
	}
	c.mu.Lock()
	if len(e.unsynced) > 0 && &e.unsynced[0] == &acks[0] {
		e.unsynced = nil
	}
	c.mu.Unlock()
	return nil
}

// check verifies that pid and epoch are the id's current ones.
func check(t *Txn, pid int64, epoch int16) error {
	switch {
	case t == nil || t.ProducerID != pid:
		return ErrInvalidMapping
	case t.Epoch != epoch:
		return ErrFenced
	}
	return nil
}

// InitProducerID returns the producer id and a new epoch for transactional
// id, fencing the epochs before it: the id's ongoing transaction is
// aborted, one whose outcome was logged is completed first. timeout is the
// producer's transaction timeout.
func (c *Coordinator) InitProducerID(ctx context.Context, s *Session, id string, timeout time.Duration) (int64, int16, error) {
	return c.RecoverProducerID(ctx, s, id, timeout, -1, -1)
}

// RecoverProducerID is InitProducerID for a producer that says which
// producer id and epoch it has (KIP-360, KIP-588; pid and epoch -1 for
// none, which is InitProducerID). When they are the id's current ones the
// producer goes on with a new epoch as InitProducerID gives it (its
// ongoing transaction aborted). When they are the ones the id had before
// its last bump (the producer did not hear of a bump it asked for, or the
// coordinator aborted its transaction on a timeout or a restart), the
// producer gets the current epoch, without another bump. Anything else is
// ErrFenced: another producer initialized the id since.
func (c *Coordinator) RecoverProducerID(ctx context.Context, s *Session, id string, timeout time.Duration, pid int64, epoch int16) (int64, int16, error) {
	if timeout <= 0 || timeout > c.cfg.MaxTimeout {
		return -1, -1, fmt.Errorf("%w: %v (at most %v, the node's transaction max timeout)", ErrInvalidTimeout, timeout, c.cfg.MaxTimeout)
	}
	if !c.ready() {
		return -1, -1, ErrNotCoordinator
	}
	e, cur := c.lock(id)
	defer e.op.Unlock()
	var next Txn
	switch {
	case cur == nil:
		pid, err := c.cfg.NewProducerID()
		if err != nil {
			return -1, -1, fmt.Errorf("%w: no producer id to give: %v", ErrNotCoordinator, err)
		}
		next = Txn{ID: id, ProducerID: pid}
	case pid >= 0 && (pid != cur.ProducerID || epoch != cur.Epoch):
		if cur.PrevProducerID < 0 || pid != cur.PrevProducerID || epoch != cur.PrevEpoch {
			return -1, -1, fmt.Errorf("%w: producer id %d with epoch %d is not transactional id %q's current producer (%d, epoch %d): another producer initialized it since",
				ErrFenced, pid, epoch, id, cur.ProducerID, cur.Epoch)
		}
		if cur.State == PrepareCommit || cur.State == PrepareAbort {
			if err := c.complete(ctx, e, cur, false); err != nil {
				c.log.Warn("txn: completing the previous transaction failed; InitProducerId answered CONCURRENT_TRANSACTIONS", "transactional_id", id, "err", err)
				return -1, -1, ErrConcurrent
			}
			_, cur = c.current(id)
		}
		s.note(id, cur.Seq)
		return cur.ProducerID, cur.Epoch, nil
	default:
		bumped := false
		switch cur.State {
		case PrepareCommit, PrepareAbort:
			if err := c.complete(ctx, e, cur, false); err != nil {
				c.log.Warn("txn: completing the previous transaction failed; InitProducerId answered CONCURRENT_TRANSACTIONS", "transactional_id", id, "err", err)
				return -1, -1, ErrConcurrent
			}
		case Ongoing:
			if err := c.abort(ctx, e, cur, "a producer initialized the transactional id again", false); err != nil {
				return -1, -1, err
			}
			bumped = true
		}
		_, cur = c.current(id)
		next = *cur
		if !bumped {
			next.Epoch++
		}
		if next.Epoch >= math.MaxInt16-1 {
			pid, err := c.cfg.NewProducerID()
			if err != nil {
				return -1, -1, fmt.Errorf("%w: no producer id to give: %v", ErrNotCoordinator, err)
			}
			next.ProducerID, next.Epoch = pid, 0
		}
	}
	next.State = Empty
	next.TimeoutMs = int32(timeout / time.Millisecond)
	next.StartMs, next.Partitions, next.Groups = 0, nil, nil
	// A producer that named its id and epoch may ask again with them if it
	// does not hear of this bump; a new producer fences every older one.
	next.PrevProducerID, next.PrevEpoch = pid, epoch
	if cur == nil {
		next.PrevProducerID, next.PrevEpoch = -1, -1
	}
	if err := c.write(&next); err != nil {
		return -1, -1, err
	}
	s.note(id, next.Seq)
	return next.ProducerID, next.Epoch, nil
}

// begin returns the state of a transaction that the id's producer adds
// to: the ongoing one, or a new one. The caller holds e.op.
func (c *Coordinator) begin(e *entry, cur *Txn) (Txn, error) {
	next := *cur
	switch cur.State {
	case Ongoing:
	case Empty, CompleteCommit, CompleteAbort:
		c.mu.Lock()
		e.quick = slices.ContainsFunc(e.unsynced, func(a MarkerAck) bool { return !a.Ready() })
		c.mu.Unlock()
		next.State = Ongoing
		next.Seq++
		next.StartMs = c.cfg.Now().UnixMilli()
		next.Partitions, next.Groups, next.Ends = nil, nil, nil
		// The EndTxn that ended the last transaction is no longer
		// answered as a retry: from now on it would end this one.
		next.PrevProducerID, next.PrevEpoch = -1, -1
	default:
		return next, ErrConcurrent
	}
	next.Partitions = slices.Clone(next.Partitions)
	next.Groups = slices.Clone(next.Groups)
	return next, nil
}

// AddPartitions adds partitions to the producer's transaction, beginning
// one if none is ongoing.
func (c *Coordinator) AddPartitions(ctx context.Context, s *Session, id string, pid int64, epoch int16, parts []TopicPartition) error {
	if seq, ok := c.holds(id, pid, epoch, parts); ok && c.ready() {
		// Nothing to add or write: every Produce of transaction
		// version 2 asks, the first of a transaction adds.
		s.note(id, seq)
		return nil
	}
	return c.extend(s, id, pid, epoch, parts, func(next *Txn) bool {
		added := false
		for _, tp := range parts {
			if !slices.Contains(next.Partitions, tp) {
				next.Partitions = append(next.Partitions, tp)
				added = true
			}
		}
		return added
	})
}

// holds reports whether the producer pid at epoch has an ongoing
// transaction under id that holds every partition of parts, and its
// number. An EndTxn under way may end that transaction right after: a
// produce then fails at BeginProduce, or EndTxn waits for it, as after
// an add that wrote.
func (c *Coordinator) holds(id string, pid int64, epoch int16, parts []TopicPartition) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.ids[id]
	if e == nil || e.t == nil || e.t.State != Ongoing || e.t.ProducerID != pid || e.t.Epoch != epoch {
		return 0, false
	}
	for _, tp := range parts {
		if !e.parts[tp] {
			return 0, false
		}
	}
	return e.t.Seq, true
}

// AddOffsets adds a consumer group's offsets to the producer's
// transaction (TxnOffsetCommit then stores them), beginning one if none is
// ongoing.
func (c *Coordinator) AddOffsets(ctx context.Context, s *Session, id string, pid int64, epoch int16, groupID string) error {
	return c.extend(s, id, pid, epoch, nil, func(next *Txn) bool {
		if slices.ContainsFunc(next.Groups, func(p Pending) bool { return p.Group == groupID }) {
			return false
		}
		next.Groups = append(next.Groups, Pending{Group: groupID})
		return true
	})
}

// extend adds to the producer's transaction what add adds (it reports
// whether it added anything), beginning one if none is ongoing, and writes
// the transaction when it changed or began; in memory only when parts
// (the partitions AddPartitions adds) were all kept for it by the log
// (kept).
func (c *Coordinator) extend(s *Session, id string, pid int64, epoch int16, parts []TopicPartition, add func(next *Txn) bool) error {
	if !c.ready() {
		return ErrNotCoordinator
	}
	e, cur := c.lock(id)
	defer e.op.Unlock()
	if err := check(cur, pid, epoch); err != nil {
		return err
	}
	next, err := c.begin(e, cur)
	if err != nil {
		return err
	}
	switch changed := add(&next); {
	case !changed && cur.State == Ongoing:
	case c.kept(e, cur, parts):
		c.mu.Lock()
		if cur.State != Ongoing {
			e.beganAt = c.clock.Add(1)
		}
		e.t, e.mem = &next, true
		e.parts = make(map[TopicPartition]bool, len(next.Partitions))
		for _, tp := range next.Partitions {
			e.parts[tp] = true
		}
		c.mu.Unlock()
	default:
		if err := c.write(&next); err != nil {
			return err
		}
	}
	s.note(id, next.Seq)
	return nil
}

// kept reports whether parts may be added to the id's transaction cur
// without a write: the log holds every one of them for it, kept by the
// id's last completed transaction (Config.OpenTxn), and cur is that
// completed state or the transaction begun from it in memory. The caller
// holds e.op.
func (c *Coordinator) kept(e *entry, cur *Txn, parts []TopicPartition) bool {
	if len(parts) == 0 || c.cfg.OpenTxn == nil || c.cfg.Store.Replicated() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case cur.State == CompleteCommit || cur.State == CompleteAbort:
	case cur.State == Ongoing && e.mem:
	default:
		return false
	}
	for _, tp := range parts {
		if !e.kept[tp] {
			return false
		}
	}
	return true
}

// CommitOffsets stores a group's offsets in the producer's ongoing
// transaction: they are applied to the group when it commits, dropped when
// it aborts. The group must have been added (AddOffsets).
func (c *Coordinator) CommitOffsets(ctx context.Context, id string, pid int64, epoch int16, groupID string, offsets []group.OffsetCommit) error {
	return c.commitOffsets(nil, id, pid, epoch, groupID, offsets, false)
}

// AddAndCommitOffsets is AddOffsets and CommitOffsets in one durable
// write, on behalf of the connection s: a TxnOffsetCommit of transaction
// version 2 (KIP-890) adds its group to the producer's transaction
// implicitly, beginning one if none is ongoing.
func (c *Coordinator) AddAndCommitOffsets(ctx context.Context, s *Session, id string, pid int64, epoch int16, groupID string, offsets []group.OffsetCommit) error {
	return c.commitOffsets(s, id, pid, epoch, groupID, offsets, true)
}

func (c *Coordinator) commitOffsets(s *Session, id string, pid int64, epoch int16, groupID string, offsets []group.OffsetCommit, add bool) error {
	if !c.ready() {
		return ErrNotCoordinator
	}
	e, cur := c.lock(id)
	defer e.op.Unlock()
	if err := check(cur, pid, epoch); err != nil {
		return err
	}
	var next Txn
	if add {
		var err error
		if next, err = c.begin(e, cur); err != nil {
			return err
		}
		if !slices.ContainsFunc(next.Groups, func(p Pending) bool { return p.Group == groupID }) {
			next.Groups = append(next.Groups, Pending{Group: groupID})
		}
	} else {
		if cur.State != Ongoing {
			return fmt.Errorf("%w: no transaction is ongoing (state %s)", ErrInvalidState, cur.State)
		}
		next = *cur
		next.Groups = slices.Clone(cur.Groups)
	}
	i := slices.IndexFunc(next.Groups, func(p Pending) bool { return p.Group == groupID })
	if i < 0 {
		return fmt.Errorf("%w: group %q was not added to the transaction (AddOffsetsToTxn first)", ErrInvalidState, groupID)
	}
	merged := slices.Clone(next.Groups[i].Offsets)
	for _, o := range offsets {
		j := slices.IndexFunc(merged, func(m group.OffsetCommit) bool { return m.TopicPartition == o.TopicPartition })
		if j < 0 {
			merged = append(merged, o)
		} else {
			merged[j] = o
		}
	}
	next.Groups[i] = Pending{Group: groupID, Offsets: merged}
	if cur.State == Ongoing && c.mayKeep(e, cur) {
		c.keep(e, &next)
	} else if err := c.write(&next); err != nil {
		return err
	}
	if add {
		s.note(id, next.Seq)
	}
	return nil
}

// keep makes next (the id's ongoing transaction with a group's offsets
// changed) its state in memory only, without a write. It serves
// TxnOffsetCommit when the log already holds the transaction as ongoing
// (begin always writes): the offsets matter only if it commits, and the record
// of its commit decision stores them (decide); a restart aborts a
// transaction that is ongoing in the log and fences its producer (tick),
// so its commit can never need offsets that were lost. This takes
// one write of the log off a consume-transform-produce transaction. Only
// on a node alone, whose state is lost only with the process (and New
// then recovers): in a cluster the coordinator may move and come back
// between two ticks without recovering, and another node's memory is not
// this one's. The caller holds e.op.
//
// A transaction begun in memory from partitions the log kept for it
// (extend) is not in the log as ongoing: its offsets are kept only once
// a batch of it was appended, which a restart finds open in a kept
// partition and aborts (tick); before that they are written.
func (c *Coordinator) keep(e *entry, next *Txn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.t = next
}

// mayKeep reports whether keep may serve a TxnOffsetCommit for the
// ongoing transaction cur. The caller holds e.op.
func (c *Coordinator) mayKeep(e *entry, cur *Txn) bool {
	if c.cfg.Store.Replicated() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !e.mem || e.landed == cur.Seq
}

// EndTxn commits or aborts the producer's ongoing transaction, on behalf
// of the connection s: the outcome is logged (for a commit in the same
// write as the group offsets it holds, which become the groups'), then a
// marker is written to each of its partitions, then a record completes
// it. A retry of an ended
// transaction's EndTxn with the same outcome succeeds; an EndTxn that was
// sent before the ongoing transaction began is refused (ErrStaleEndTxn,
// fence.go).
func (c *Coordinator) EndTxn(ctx context.Context, s *Session, id string, pid int64, epoch int16, commit bool) error {
	if !c.ready() {
		return ErrNotCoordinator
	}
	e, cur := c.lock(id)
	defer e.op.Unlock()
	if err := check(cur, pid, epoch); err != nil {
		return err
	}
	want := "abort"
	if commit {
		want = "commit"
	}
	switch cur.State {
	case Ongoing:
		c.mu.Lock()
		began := e.beganAt
		c.mu.Unlock()
		if !s.mayEnd(id, cur.Seq, began) {
			c.log.Warn("txn: EndTxn refused: it was sent before the ongoing transaction began, for an earlier one (a delayed request)",
				"transactional_id", id, "producer_id", pid, "epoch", epoch, "outcome", want, "transaction", cur.Seq)
			return ErrStaleEndTxn
		}
	case PrepareCommit, PrepareAbort:
		if (cur.State == PrepareCommit) == commit {
			return ErrConcurrent
		}
		return fmt.Errorf("%w: cannot %s a transaction being %s", ErrInvalidState, want, map[bool]string{true: "committed", false: "aborted"}[cur.State == PrepareCommit])
	case CompleteCommit, CompleteAbort:
		if (cur.State == CompleteCommit) == commit {
			return nil // a retry of the EndTxn that ended it
		}
		return fmt.Errorf("%w: cannot %s a transaction that was %s", ErrInvalidState, want, map[bool]string{true: "committed", false: "aborted"}[cur.State == CompleteCommit])
	default:
		return fmt.Errorf("%w: no transaction is ongoing", ErrInvalidState)
	}
	next := *cur
	return c.decide(ctx, s, e, cur, &next, commit)
}

// decide logs the outcome of the transaction cur as next (cur with the
// producer id and epoch it keeps), with a commit's group offsets, then
// writes its markers and completes it. The caller holds e.op.
func (c *Coordinator) decide(ctx context.Context, s *Session, e *entry, cur, next *Txn, commit bool) error {
	next.State = PrepareAbort
	var commits []group.GroupCommits
	if commit {
		// The decision and the offsets are one write: from here the
		// transaction commits whatever happens (a restart completes it),
		// so its offsets are the group's at once. A member that takes
		// the input over reads them, never the ones before, even while
		// the markers are on their way.
		next.State = PrepareCommit
		for _, g := range cur.Groups {
			if len(g.Offsets) > 0 {
				commits = append(commits, group.GroupCommits{Group: g.Group, Commits: slices.Clone(g.Offsets)})
			}
		}
	}
	next.Ends = nil
	if next.PrevProducerID < 0 && len(next.Partitions) > 0 && c.mayLazy() && c.cfg.PartitionEnd != nil {
		defer func() {
			c.mu.Lock()
			e.ending = false
			c.mu.Unlock()
		}()
		c.noteEnds(ctx, e, next)
	}
	if err := c.write(next, commits...); err != nil {
		return err
	}
	s.note(cur.ID, cur.Seq)
	if err := c.waitIdle(ctx, e); err != nil {
		return nil // the outcome is logged; the background completes it
	}
	if c.lazy(next) {
		c.decideLazy(e, next)
		return nil
	}
	// Once its markers are durable the transaction is decided and
	// visible: the record that completes it is written after the answer,
	// and the id's next operation waits for it (lock).
	if err := c.writeMarkers(ctx, next, false); err != nil {
		c.log.Warn("txn: writing the transaction's markers failed; retrying in the background", "transactional_id", cur.ID, "commit", commit, "err", err)
		return nil
	}
	ch := make(chan struct{})
	c.mu.Lock()
	e.completing = ch
	c.mu.Unlock()
	c.bg.Go(func() {
		defer func() {
			c.mu.Lock()
			e.completing = nil
			c.mu.Unlock()
			close(ch)
		}()
		if err := c.write(c.completed(next)); err != nil {
			c.log.Warn("txn: storing the transaction's completion failed; it is completed again in the background", "transactional_id", cur.ID, "commit", commit, "err", err)
		}
	})
	return nil
}

// lazy reports whether the markers of t, decided, may be made durable after
// the answer (decideLazy): on a node alone, with StartMarker and OpenTxn,
// for a transaction whose markers carry a newer epoch than its batches
// (an EndTxn of transaction version 2 bumped it) or whose decision holds
// its partitions' ends (noteEnds), which is how a start tells its
// batches from those of the id's next transaction.
func (c *Coordinator) lazy(t *Txn) bool {
	return c.mayLazy() && (t.PrevProducerID >= 0 || t.hasEnds())
}

// mayLazy reports whether this coordinator may make markers durable after
// the answer (decideLazy).
func (c *Coordinator) mayLazy() bool {
	return c.cfg.StartMarker != nil && c.cfg.OpenTxn != nil && !c.cfg.Store.Replicated()
}

// noteEnds stores in next, a transaction of version 1 being decided, each
// of its partitions' next offset (Txn.Ends), once no batch of it is under
// way; BeginProduce refuses its batches from now on. When they cannot be
// known next gets none, and its markers are made durable before the
// answer. The caller holds e.op and clears e.ending once the decision is
// written.
func (c *Coordinator) noteEnds(ctx context.Context, e *entry, next *Txn) {
	c.mu.Lock()
	e.ending = true
	c.mu.Unlock()
	if err := c.waitIdle(ctx, e); err != nil {
		return
	}
	ends := make([]int64, len(next.Partitions))
	for i, tp := range next.Partitions {
		end, err := c.cfg.PartitionEnd(tp)
		if err != nil {
			c.log.Warn("txn: a partition's end is unknown; the transaction's markers are made durable before EndTxn is answered", "transactional_id", next.ID, "topic", tp.Topic, "partition", tp.Partition, "err", err)
			return
		}
		ends[i] = end
	}
	next.Ends = ends
}

// decideLazy appends the markers of next, whose outcome the log holds, and
// completes it in memory: the id's next transaction may begin at once (in
// memory, from the partitions it keeps), and its batches follow the
// markers in each partition, so their group commit makes the markers
// durable too. A goroutine makes sure they are durable within
// Config.MarkerLinger; any write of the id's state waits for them
// (settle); a tick writes the completion once they are, if nothing of the
// id was written since. A start that finds the decision without its
// completion writes the markers missing, telling them by epoch (complete).
// When a marker cannot be appended, the decision stays the id's state and
// the tick completes it, as when EndTxn's markers fail. The caller holds
// e.op.
func (c *Coordinator) decideLazy(e *entry, next *Txn) {
	pid, epoch := markerOf(next)
	m := batch.Marker{ProducerID: pid, ProducerEpoch: epoch, Commit: next.State == PrepareCommit}
	acks := make([]MarkerAck, 0, len(next.Partitions))
	for _, tp := range next.Partitions {
		a, err := c.cfg.StartMarker(tp, m)
		if err != nil {
			c.log.Warn("txn: writing the transaction's markers failed; retrying in the background", "transactional_id", next.ID, "commit", m.Commit, "err", err)
			return
		}
		if a != nil {
			acks = append(acks, a)
		}
	}
	c.mu.Lock()
	linger := c.cfg.MarkerLinger > 0 && e.quick
	e.setLocked(c.completed(next))
	e.logged, e.unsynced = next, acks
	c.mu.Unlock()
	if len(acks) == 0 {
		return
	}
	c.bg.Go(func() {
		if linger {
			// The producer began its last transaction before the markers
			// of the one before were durable: its next one's appends
			// will most likely make these durable meanwhile, and Wait
			// returns at once.
			t := time.NewTimer(c.cfg.MarkerLinger)
			select {
			case <-t.C:
			case <-c.quit:
				t.Stop()
			}
		}
		if err := c.syncMarkers(e, acks); err != nil {
			c.log.Warn("txn: a transaction marker could not be made durable; the next write of the transactional id fails, a restart completes the transaction", "transactional_id", next.ID, "commit", m.Commit, "err", err)
		}
	})
}

// EndTxnBump is EndTxn of transaction version 2 (KIP-890 part 2, EndTxn
// version 5): the producer's epoch is bumped at every transaction, and the
// new producer id and epoch are returned, for the producer's next
// transaction (its sequences start again at 0). The markers carry the
// bumped epoch, so a batch of the ended transaction that arrives late is
// fenced at its partition as well as here. Past epoch 32766 the producer
// gets a new producer id at epoch 0 (Kafka's rule): the markers then carry
// the old id at epoch 32767.
//
// A retry of the EndTxn that ended the id's last transaction (same
// producer id, epoch and outcome) is answered again with the same new id
// and epoch, until a new transaction begins; so is an abort by the
// producer of a transaction the coordinator aborted on its timeout or at a
// restart (not for another producer's InitProducerId), as Kafka answers
// it: the producer learns the new epoch. An EndTxn with an older epoch
// than the current one is refused (ErrFenced): an EndTxn delayed past the
// end of its transaction cannot end the next one, which runs at a newer
// epoch. The connection fence of EndTxn (fence.go) is not applied: it is
// what stands in for this before KIP-890, and it would refuse a client
// that adds its partitions on another connection (its produce
// connection). An abort with no transaction ongoing is accepted and bumps
// the epoch (KIP-890 lets a client abort an empty transaction); a commit
// is ErrInvalidState.
func (c *Coordinator) EndTxnBump(ctx context.Context, s *Session, id string, pid int64, epoch int16, commit bool) (int64, int16, error) {
	if !c.ready() {
		return -1, -1, ErrNotCoordinator
	}
	e, cur := c.lock(id)
	defer e.op.Unlock()
	want := "abort"
	if commit {
		want = "commit"
	}
	// A retry of the EndTxn that ended the last transaction carries the
	// producer id and epoch it came with (or, after an abort by the
	// coordinator on a timeout or a restart, which bumped the epoch, the
	// epoch of the producer it aborted: abort).
	if cur != nil && cur.State >= PrepareCommit && cur.PrevProducerID >= 0 && cur.PrevProducerID == pid && cur.PrevEpoch == epoch {
		switch cur.State {
		case CompleteCommit, CompleteAbort:
			if (cur.State == CompleteCommit) == commit {
				return cur.ProducerID, cur.Epoch, nil
			}
		case PrepareCommit, PrepareAbort:
			if (cur.State == PrepareCommit) == commit {
				return -1, -1, ErrConcurrent
			}
		}
		return -1, -1, fmt.Errorf("%w: cannot %s the transaction that epoch %d ended (%s)", ErrInvalidState, want, epoch, cur.State)
	}
	if err := check(cur, pid, epoch); err != nil {
		if errors.Is(err, ErrFenced) && epoch < cur.Epoch {
			c.log.Warn("txn: EndTxn refused: its epoch is older than the producer's, so it was sent for an earlier transaction (a delayed request)",
				"transactional_id", id, "producer_id", pid, "epoch", epoch, "current_epoch", cur.Epoch, "outcome", want)
			return -1, -1, fmt.Errorf("%w: epoch %d ended an earlier transaction; the current epoch is %d", ErrFenced, epoch, cur.Epoch)
		}
		return -1, -1, err
	}
	switch cur.State {
	case Ongoing:
	case PrepareCommit, PrepareAbort:
		return -1, -1, ErrConcurrent
	default: // Empty, CompleteCommit, CompleteAbort
		if commit {
			return -1, -1, fmt.Errorf("%w: no transaction is ongoing to commit", ErrInvalidState)
		}
	}
	next := *cur
	next.PrevProducerID, next.PrevEpoch = pid, epoch
	if cur.State != Ongoing {
		next.Partitions, next.Groups = nil, nil // an empty abort
	}
	if epoch >= math.MaxInt16-1 {
		npid, err := c.cfg.NewProducerID()
		if err != nil {
			return -1, -1, fmt.Errorf("%w: the epoch is exhausted and no producer id is left to give: %v", ErrNotCoordinator, err)
		}
		next.ProducerID, next.Epoch = npid, 0
	} else {
		next.Epoch = epoch + 1
	}
	if err := c.decide(ctx, s, e, cur, &next, commit); err != nil {
		return -1, -1, err
	}
	return next.ProducerID, next.Epoch, nil
}

// markerOf returns the producer id and epoch t's markers are written with:
// the epoch bumped by the EndTxn of transaction version 2 that ended it
// (of the producer id it ended, which an exhausted epoch replaced), else
// the id's current ones.
func markerOf(t *Txn) (int64, int16) {
	if t.PrevProducerID < 0 {
		return t.ProducerID, t.Epoch
	}
	if t.PrevEpoch == math.MaxInt16 {
		return t.PrevProducerID, t.PrevEpoch
	}
	return t.PrevProducerID, t.PrevEpoch + 1
}

// abort aborts the ongoing transaction cur and bumps the id's epoch, so the
// producer that ran it is fenced. With learn (a timeout, a restart, not
// another producer's InitProducerId) the producer may learn the new epoch
// by aborting too, with an EndTxn of transaction version 2 (EndTxnBump
// answers it as a retry of an EndTxn that bumped the epoch, as Kafka
// does). The caller holds e.op.
func (c *Coordinator) abort(ctx context.Context, e *entry, cur *Txn, reason string, learn bool) error {
	next := *cur
	next.State = PrepareAbort
	if next.Epoch < math.MaxInt16 {
		next.Epoch++
		if learn {
			next.PrevProducerID, next.PrevEpoch = cur.ProducerID, cur.Epoch
		}
	}
	if err := c.write(&next); err != nil {
		return err
	}
	c.log.Info("txn: transaction aborted", "transactional_id", cur.ID, "producer_id", cur.ProducerID, "fenced_epoch", cur.Epoch, "reason", reason)
	wctx, cancel := context.WithTimeout(ctx, markerTimeout)
	defer cancel()
	if err := c.waitIdle(wctx, e); err != nil {
		return ErrConcurrent
	}
	if err := c.complete(wctx, e, &next, false); err != nil {
		c.log.Warn("txn: writing abort markers failed; retrying in the background", "transactional_id", cur.ID, "err", err)
		return ErrConcurrent
	}
	return nil
}

// abortUnlogged aborts, at a start, the transaction the id's producer may
// have begun without a write from the partitions its last one kept (cur,
// completed): if a batch of the producer is open in one of them, the
// transaction is aborted as an ongoing one would be (markers to every
// kept partition, the epoch bumped); else nothing began and the kept
// partitions stay. The caller holds e.op.
func (c *Coordinator) abortUnlogged(ctx context.Context, e *entry, cur *Txn) error {
	// Without OpenTxn (or in a cluster, whose partitions are elsewhere)
	// nothing can tell: abort.
	open := c.cfg.OpenTxn == nil || c.cfg.Store.Replicated()
	for _, tp := range cur.Partitions {
		if open {
			break
		}
		info, err := c.cfg.OpenTxn(tp, cur.ProducerID)
		o := info.Open
		if err != nil {
			c.log.Warn("txn: could not tell whether a transaction is open in a partition; aborting it to be safe", "transactional_id", cur.ID, "topic", tp.Topic, "partition", tp.Partition, "err", err)
			o = true
		}
		open = o
	}
	if !open {
		return nil
	}
	began := *cur
	began.State = Ongoing
	began.Seq++
	return c.abort(ctx, e, &began, "the transaction coordinator started while a transaction that had not been logged was open", true)
}

// complete writes t's markers (t is PrepareCommit or PrepareAbort), then
// the record that completes it (a commit's offsets were stored with its
// PrepareCommit). At a start (starting) only the markers missing are
// written (writeMarkers). The caller holds e.op.
func (c *Coordinator) complete(ctx context.Context, e *entry, t *Txn, starting bool) error {
	if err := c.writeMarkers(ctx, t, starting); err != nil {
		return err
	}
	return c.write(c.completed(t))
}

// writeMarkers writes t's markers to each of its partitions, durably. At a
// start of a node alone (starting, with OpenTxn) a partition gets one only
// if a transaction of the producer is open in it that the marker ends:
// with no transaction open, nothing is left to end; with one open at the
// marker's epoch while the marker's epoch was bumped (markers of
// transaction version 2, decideLazy), the marker is already there and
// what is open is the id's next transaction, begun in memory, which the
// start then aborts (abortUnlogged). Writing the marker again would end
// that one with this outcome.
func (c *Coordinator) writeMarkers(ctx context.Context, t *Txn, starting bool) error {
	commit := t.State == PrepareCommit
	pid, epoch := markerOf(t)
	m := batch.Marker{ProducerID: pid, ProducerEpoch: epoch, Commit: commit}
	ctx, cancel := context.WithTimeout(ctx, markerTimeout)
	defer cancel()
	check := starting && c.cfg.OpenTxn != nil && !c.cfg.Store.Replicated()
	bumped := t.PrevProducerID >= 0
	ends := t.hasEnds()
	errs := make([]error, len(t.Partitions))
	var wg sync.WaitGroup
	for i, tp := range t.Partitions {
		if check {
			o, err := c.cfg.OpenTxn(tp, pid)
			switch {
			case err != nil && (bumped || ends):
				errs[i] = fmt.Errorf("txn: whether partition %d of %q holds the marker of transactional id %q: %w", tp.Partition, tp.Topic, t.ID, err)
				continue
			case err != nil:
			case !o.Open:
				continue
			case ends:
				if o.First >= t.Ends[i] {
					continue
				}
			case o.Epoch > epoch, o.Epoch == epoch && bumped:
				continue
			}
		}
		wg.Go(func() { errs[i] = c.cfg.WriteMarker(ctx, tp, m) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// completed returns the state that completes t, whose markers are
// written. On a node alone with Config.OpenTxn it keeps t's partitions,
// for the id's next transaction to add without a write (doc.go).
func (c *Coordinator) completed(t *Txn) *Txn {
	done := *t
	done.State = CompleteAbort
	if t.State == PrepareCommit {
		done.State = CompleteCommit
	}
	// The start is kept, as Kafka keeps it: DescribeTransactions shows
	// when the completed transaction began.
	done.Groups, done.Ends = nil, nil
	if c.cfg.OpenTxn == nil || c.cfg.Store.Replicated() {
		done.Partitions = nil
	}
	return &done
}

// BeginProduce checks that producer pid at epoch may append a
// transactional batch to tp now (its transaction is ongoing and tp was
// added to it) and returns a function to call once the append is over:
// EndTxn writes its markers only after the appends under way, so no batch
// of a transaction lands after its marker. On a node that is not the
// coordinator (a cluster), the state it checks is its replica's, which may
// lag the coordinator's by a moment: it waits up to a second for it.
func (c *Coordinator) BeginProduce(ctx context.Context, pid int64, epoch int16, tp TopicPartition) (func(appended bool), error) {
	deadline := time.NewTimer(time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		e := c.byPID[pid]
		var err error
		switch {
		case e == nil || e.t == nil:
			err = fmt.Errorf("%w: producer id %d has no transactional id (InitProducerId with a transactional.id first)", ErrInvalidMapping, pid)
		case epoch < e.t.Epoch:
			err = ErrFenced
		case epoch > e.t.Epoch:
			err = fmt.Errorf("%w: epoch %d is newer than the coordinator's %d", ErrFenced, epoch, e.t.Epoch)
		case e.t.State != Ongoing:
			err = fmt.Errorf("%w: producer id %d has no ongoing transaction (state %s); AddPartitionsToTxn first", ErrInvalidState, pid, e.t.State)
		case e.ending:
			err = fmt.Errorf("%w: producer id %d is ending its transaction (EndTxn under way): a batch sent with it would follow the end", ErrInvalidState, pid)
		case !e.parts[tp]:
			err = fmt.Errorf("%w: partition %d of %q was not added to the transaction (AddPartitionsToTxn first)", ErrInvalidState, tp.Partition, tp.Topic)
		}
		if err == nil {
			if e.inflight == 0 {
				e.idle = make(chan struct{})
			}
			e.inflight++
			seq := e.t.Seq
			c.mu.Unlock()
			var once sync.Once
			return func(appended bool) { once.Do(func() { c.endProduce(e, seq, appended) }) }, nil
		}
		ch := c.changed
		c.mu.Unlock()
		if c.ready() || errors.Is(err, ErrFenced) {
			return nil, err
		}
		select {
		case <-ch:
		case <-deadline.C:
			return nil, err
		case <-ctx.Done():
			return nil, err
		}
	}
}

func (c *Coordinator) endProduce(e *entry, seq uint64, appended bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if appended {
		e.landed = seq
	}
	e.inflight--
	if e.inflight == 0 {
		close(e.idle)
	}
}

// waitIdle waits until no transactional append of e's producer is under
// way.
func (c *Coordinator) waitIdle(ctx context.Context, e *entry) error {
	c.mu.Lock()
	if e.inflight == 0 {
		c.mu.Unlock()
		return nil
	}
	ch := e.idle
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Describe returns transactional id's state; false for an id that never
// had one (no InitProducerId).
func (c *Coordinator) Describe(id string) (Txn, bool) {
	c.mu.Lock()
	e := c.ids[id]
	c.mu.Unlock()
	if e == nil {
		return Txn{}, false
	}
	c.waitCompleted(e)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e = c.ids[id]; e == nil || e.t == nil {
		return Txn{}, false
	}
	return shownLocked(e), true
}

// shownLocked is the entry's state as DescribeTransactions and
// ListTransactions show it (shown): a transaction completed in memory
// whose markers are not yet known durable shows the state of its decision
// (PrepareCommit, PrepareAbort) and its partitions, as a Kafka
// coordinator shows one until its markers are written. Called with c.mu
// held.
func shownLocked(e *entry) Txn {
	t := *e.t
	if (t.State == CompleteCommit || t.State == CompleteAbort) && e.logged != nil && e.unsynced != nil && e.logged.Seq == t.Seq {
		t.State, t.Partitions = e.logged.State, e.logged.Partitions
	}
	return shown(t)
}

// shown is t as DescribeTransactions and ListTransactions show it: a
// completed transaction lists no partitions (those the log keeps for the
// next one are not its).
func shown(t Txn) Txn {
	if t.State == CompleteCommit || t.State == CompleteAbort {
		t.Partitions = nil
	}
	return t
}

// PendingOffsets returns the partitions of group groupID that an ongoing
// transaction holds offsets for (TxnOffsetCommit, not yet committed or
// aborted): OffsetFetch with RequireStable (KIP-447) answers them
// UNSTABLE_OFFSET_COMMIT rather than the offset committed before. A
// transaction being committed (PrepareCommit) holds none: its offsets
// became the group's in the write that decided it (EndTxn); one being
// aborted holds none either, as they will never be. Nil when none.
func (c *Coordinator) PendingOffsets(groupID string) map[TopicPartition]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out map[TopicPartition]bool
	for _, e := range c.ids {
		if e.t == nil || e.t.State != Ongoing {
			continue
		}
		for _, g := range e.t.Groups {
			if g.Group != groupID {
				continue
			}
			for _, o := range g.Offsets {
				if out == nil {
					out = map[TopicPartition]bool{}
				}
				out[o.TopicPartition] = true
			}
		}
	}
	return out
}

// Filter selects transactional ids for List; the zero value selects
// every one. The rules are Kafka's ListTransactions'.
type Filter struct {
	// States: only ids in one of these states; none: any state.
	States []State
	// ProducerIDs: only ids with one of these producer ids; none: any.
	ProducerIDs []int64
	// StartedBefore, when not zero: only ids whose transaction (ongoing,
	// or the last one, completed) began before it, and those with no
	// transaction since their InitProducerId (Kafka's start of -1 passes
	// its duration filter).
	StartedBefore time.Time
	// ID, when not nil: only ids it accepts.
	ID func(id string) bool
}

func (f *Filter) match(t *Txn) bool {
	switch {
	case len(f.States) > 0 && !slices.Contains(f.States, t.State):
		return false
	case len(f.ProducerIDs) > 0 && !slices.Contains(f.ProducerIDs, t.ProducerID):
		return false
	case !f.StartedBefore.IsZero() && t.StartMs != 0 && t.StartMs >= f.StartedBefore.UnixMilli():
		return false
	case f.ID != nil && !f.ID(t.ID):
		return false
	}
	return true
}

// List returns the state of every transactional id that f selects, sorted
// by id. Like Describe, it reads this node's copy of the state, which in a
// cluster only the coordinator's is sure to be current (Ready).
func (c *Coordinator) List(f Filter) []Txn {
	c.mu.Lock()
	var waits []chan struct{}
	for _, e := range c.ids {
		if e.completing != nil {
			waits = append(waits, e.completing)
		}
	}
	c.mu.Unlock()
	for _, ch := range waits {
		<-ch
	}
	c.mu.Lock()
	var out []Txn
	for _, e := range c.ids {
		if e.t == nil {
			continue
		}
		if t := shownLocked(e); f.match(&t) {
			out = append(out, t)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Txn) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// lazyDone reports whether cur, the id's state, is the completion in memory
// of a transaction decided by decideLazy whose markers are durable, not
// yet written. The caller holds e.op.
func (c *Coordinator) lazyDone(e *entry, cur *Txn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cur != nil && e.logged != nil && e.unsynced == nil && e.t != nil && e.t.Seq == cur.Seq && e.t.State == cur.State &&
		(cur.State == CompleteCommit || cur.State == CompleteAbort)
}

// loop runs tick until Close.
func (c *Coordinator) loop() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			c.tick()
		}
	}
}

// tick recovers the transactions when this node has just become the
// coordinator (at start, after a failover), aborts those past their
// timeout, and completes those whose markers could not be written.
func (c *Coordinator) tick() {
	if !c.cfg.Store.Ready() {
		c.recovered.Store(false)
		return
	}
	recovering := !c.recovered.Load()
	// A node alone that starts aborts the transactions ongoing in its
	// log: it may have kept their offsets in memory only (keep). A
	// cluster's new coordinator holds everything they wrote (every write
	// is replicated): they go on, as at a Kafka coordinator's failover,
	// until their producer ends them or their timeout passes.
	abortOngoing := recovering && !c.cfg.Store.Replicated()
	now := c.cfg.Now().UnixMilli()
	c.mu.Lock()
	var ids, expired []string
	for id, e := range c.ids {
		t := e.t
		if t == nil {
			continue
		}
		switch {
		case t.State == PrepareCommit || t.State == PrepareAbort,
			t.State == Ongoing && (abortOngoing || now-t.StartMs > int64(t.TimeoutMs)),
			recovering && len(e.kept) > 0,
			e.logged != nil && e.unsynced == nil:
			ids = append(ids, id)
		case !recovering && c.expired(t, now):
			expired = append(expired, id)
		}
	}
	c.mu.Unlock()
	slices.Sort(expired)
	for _, id := range expired {
		c.expire(id, now)
	}
	slices.Sort(ids)
	ctx, cancel := context.WithTimeout(context.Background(), markerTimeout)
	defer cancel()
	failed := false
	for _, id := range ids {
		e, cur := c.lock(id)
		var err error
		switch {
		case cur == nil:
		case cur.State == PrepareCommit || cur.State == PrepareAbort:
			err = c.complete(ctx, e, cur, recovering)
			if _, done := c.current(id); err == nil && recovering && done != nil && len(done.Partitions) > 0 {
				// Its partitions are kept for the id's next transaction,
				// which may have begun in memory after the markers
				// (decideLazy).
				err = c.abortUnlogged(ctx, e, done)
			}
		case c.lazyDone(e, cur):
			// The markers of a transaction completed in memory are
			// durable and nothing of the id was written since: the
			// completion is written, so a start need not look for them.
			err = c.write(cur)
		case cur.State == Ongoing && abortOngoing:
			err = c.abort(ctx, e, cur, "the transaction coordinator started while it was ongoing", true)
		case (cur.State == CompleteCommit || cur.State == CompleteAbort) && len(cur.Partitions) > 0 && recovering:
			err = c.abortUnlogged(ctx, e, cur)
		case cur.State == Ongoing && now-cur.StartMs > int64(cur.TimeoutMs):
			err = c.abort(ctx, e, cur, fmt.Sprintf("transaction timeout of %d ms passed", cur.TimeoutMs), true)
		}
		e.op.Unlock()
		if err != nil {
			failed = true
			c.log.Warn("txn: could not finish a transaction; retrying", "transactional_id", id, "err", err)
		}
	}
	if recovering && !failed {
		c.recovered.Store(true)
	} else if recovering && failed {
		// Serve anyway: the transactions left are PrepareCommit or
		// PrepareAbort (their outcome is logged and the ticks finish
		// them) or were fenced; refusing every other id would only
		// stall them.
		c.recovered.Store(true)
	}
}
