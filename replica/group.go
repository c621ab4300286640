package replica

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
)

// A Group is this node's replica of one buffer's raft group. It implements
// the node's Buffer: Append proposes a batch and its Ack resolves once a
// quorum holds the batch durably and it is committed; reads never see past
// the commit point (the high watermark).
//
// One goroutine (run) owns the raft state machine: it takes ticks,
// messages and proposals from channels, and handles each Ready by
// sending the messages that vouch for nothing (a leader's appends go out
// before its own write), persisting its entries (one record batch per
// entry, one fsync per Ready), saving the term and vote when they change,
// sending the answers that vouch for durable state and advancing the high
// watermark over the committed entries.
type Group struct {
	h        *Host
	key      string
	dir      string
	id       uint64
	replicas map[uint64]string // voters and learners
	logStart atomic.Int64      // the first offset readers see (trim.go)
	// retAge, retBytes: the retention limits (retention.go); retNext:
	// when the leader checks them next (Unix nanoseconds).
	retAge, retBytes, retNext atomic.Int64
	// Compaction (compact.go): the policy, the next time the leader
	// checks it, the end of the last pass it proposed; the pass wanted and
	// whether one runs; how many ran.
	compMu            sync.Mutex
	compPolicy        seglog.CompactPolicy
	compNext          atomic.Int64
	compProposed      int64
	compWant          compactPoint
	compRunning       bool
	compWG            sync.WaitGroup
	compactions       atomic.Uint64
	observeCompaction func(seglog.CompactStats, error)
	reapply           *compactPoint // the last compaction record, run again at start
	dropTo            int64         // segments below this offset are still to drop (trim.go); owned by run
	learners          []uint64      // replicas that follow without voting
	fs                vfs.FS
	log               *seglog.Log
	st                *storage
	lg                *slog.Logger
	rn                *raft.RawNode // owned by run

	// chains keep each producer's forwarded batches in order (order.go).
	chains chains

	inbox chan *pb.Message
	props chan *proposal
	tickc chan struct{}
	quit  chan struct{}
	done  chan struct{}

	// Owned by run.
	waiting  map[uint64]*Ack // proposal id → ack: proposed, not in the log yet
	byIndex  map[uint64]*Ack // raft index → ack: in the log, not committed
	byOffset []*Ack          // repeats of stored batches, waiting for the commit point
	inflight map[int64]*inflight
	propID   uint64
	saved    struct{ term, vote uint64 }
	isLeader bool
	applied  uint64

	// batched: proposals checked and numbered in this round of run, to be
	// stepped into raft together at its end (flushProposals), in term.
	// Owned by run.
	batched     []*proposal
	batchedTerm uint64

	// The state others read.
	leader atomic.Uint64 // raft id of the leader as last known, 0 if none
	term   atomic.Uint64
	// appliedTerm is the term of the last committed entry applied.
	appliedTerm atomic.Uint64
	// quiet: the group is idle and its clock stands still (quiesce.go).
	// Set and cleared by run; read by the host's ticker.
	quiet atomic.Bool
	// idleTicks counts a leader's ticks with everything replicated and
	// nothing pending. Owned by run.
	idleTicks int
	// repairing: this replica cut a damaged batch and what followed from
	// its log and neither votes nor campaigns until it has applied the
	// leader's commit index (repairTarget, from the first append the
	// leader sent since). Owned by run. See repair.go.
	repairing    bool
	repairTarget uint64
	repairTerm   uint64      // the term when the log was cut
	repairState  atomic.Bool // repairing, for other goroutines
	repairs      atomic.Uint64
	snapshots    atomic.Uint64 // snapshots installed (snapshot.go)
	failed       atomic.Pointer[error]
	hwMu         sync.Mutex
	hw           int64
	hwCh         chan struct{}
	closeMu      sync.Mutex
	closed       bool
	stopOnce     sync.Once
}

// proposal is a batch on its way into raft.
type proposal struct {
	op     int                      // opPropose, opCampaign, opTransfer, opStatus
	status chan<- []ReplicaProgress // opStatus: the answer
	// opQuiesce: the leader's term and last index, and its raft id.
	qterm, qindex, qfrom uint64
	// opRepair: where a reader found a damaged batch, and what was wrong.
	qoffset int64
	qerr    error
	data    []byte
	h       batch.Header
	sparse  bool
	ack     *Ack
	id      uint64 // its proposal id, once numbered
}

const (
	opPropose = iota
	opCampaign
	opTransfer
	opStatus
	opQuiesce
	opRepair
	opPeerRepair
)

// inflight remembers a producer's idempotent batches proposed but not yet
// written to the log, newest last (the log's own state covers the rest).
type inflight struct {
	epoch int16
	ents  []inflightBatch
}

type inflightBatch struct {
	first, last int32
	ack         *Ack
}

// Ack is a pending append. It resolves once; others may follow it
// (retries of the same batch).
type Ack struct {
	done      chan struct{}
	base, end int64
	err       error
	followers []*Ack
}

func newAck() *Ack { return &Ack{done: make(chan struct{})} }

// Wait returns the batch's base offset once it is committed.
func (a *Ack) Wait() (int64, error) {
	<-a.done
	if a.err != nil {
		return -1, a.err
	}
	return a.base, nil
}

// Ready reports whether the append is resolved, so that Wait would
// return at once.
func (a *Ack) Ready() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

func (a *Ack) resolve(base int64, err error) {
	a.base, a.err = base, err
	close(a.done)
	for _, f := range a.followers {
		f.resolve(base, err)
	}
	a.followers = nil
}

// propBase starts proposal ids far above any offset: a proposal carries
// its id in its batch's base-offset field until it is written to the log.
const propBase = 1 << 62

func openGroup(h *Host, o GroupOptions) (*Group, error) {
	fs := h.opts.FS
	st, have, err := readState(fs, o.Dir)
	if err != nil {
		return nil, fmt.Errorf("replica: open group %s: %w", o.Key, err)
	}
	voters := make([]uint64, 0, len(o.Replicas))
	replicas := make(map[uint64]string, len(o.Replicas)+len(o.Learners))
	for _, r := range o.Replicas {
		id := RaftID(r)
		voters = append(voters, id)
		replicas[id] = r
	}
	var learners []uint64
	for _, r := range o.Learners {
		id := RaftID(r)
		learners = append(learners, id)
		replicas[id] = r
	}
	if have && !sameSet(st.voters, voters) {
		return nil, fmt.Errorf("replica: group %s in %s was created with other replicas than %v; changing a buffer's replicas is not supported yet", o.Key, o.Dir, o.Replicas)
	}
	if err := fs.MkdirAll(o.Dir); err != nil {
		return nil, fmt.Errorf("replica: open group %s: %w", o.Key, err)
	}
	if !have {
		st = state{voters: voters}
		if err := writeState(fs, o.Dir, &st); err != nil {
			return nil, fmt.Errorf("replica: create group %s: %w", o.Key, err)
		}
	}
	lo := o.Log
	lo.CutCorrupt = true // the other replicas fill in what a cut removes (repair.go)
	l, err := seglog.Open(o.Dir, lo)
	if err != nil {
		return nil, fmt.Errorf("replica: open group %s: %w", o.Key, err)
	}
	g := &Group{
		h:                 h,
		observeCompaction: o.Log.ObserveCompaction,
		key:               o.Key,
		dir:               o.Dir,
		id:                h.id,
		replicas:          replicas,
		fs:                fs,
		log:               l,
		lg:                h.log.With("group", o.Key),
		inbox:             make(chan *pb.Message, 1024),
		props:             make(chan *proposal, 1024),
		tickc:             make(chan struct{}, 1),
		quit:              make(chan struct{}),
		done:              make(chan struct{}),
		waiting:           map[uint64]*Ack{},
		byIndex:           map[uint64]*Ack{},
		inflight:          map[int64]*inflight{},
		propID:            propBase + rand.Uint64N(1<<60),
	}
	g.learners = learners
	if err := g.recover(st); err != nil {
		l.Close()
		return nil, fmt.Errorf("replica: open group %s: %w", o.Key, err)
	}
	if at, cut := l.CutAt(); cut {
		// Recovery cut a damaged batch and what followed: repair from the
		// leader, without voting meanwhile (repair.go).
		g.lg.Error("this replica's log was cut at a damaged batch on open; it is filled in again from the leader", "offset", at)
		g.repairing, g.repairTerm = true, st.term
		g.repairState.Store(true)
		g.repairs.Add(1)
	}
	return g, nil
}

func sameSet(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	in := map[uint64]bool{}
	for _, v := range a {
		in[v] = true
	}
	for _, v := range b {
		if !in[v] {
			return false
		}
	}
	return true
}

// recover rebuilds the storage's entry table from the log's batch headers
// and starts the raft state machine.
func (g *Group) recover(st state) error {
	s := &storage{
		log:       g.log,
		baseIndex: st.baseIndex,
		baseTerm:  st.baseTerm,
		baseNext:  st.baseNext,
		start:     st.start,
	}
	if l := g.log; l.NextOffset() == l.StartOffset() && l.StartOffset() != st.baseNext {
		// A log that holds nothing, and starts elsewhere than the state
		// says: a snapshot's install stopped after emptying the log, before
		// or after saving the new base (snapshot.go). Start it there.
		g.lg.Warn("the log holds nothing and does not start where its raft state says: starting it there", "offset", st.baseNext, "was", l.StartOffset())
		if err := l.Reset(st.baseNext); err != nil {
			return fmt.Errorf("start the empty log at offset %d: %w", st.baseNext, err)
		}
	}
	if start := g.log.StartOffset(); start < st.baseNext {
		// A trim saved its state, then stopped before dropping every
		// segment below its new base: drop them now (trim.go).
		got, err := g.log.DropBefore(st.baseNext)
		if err != nil {
			return fmt.Errorf("finish the trim to %d: %w", st.start, err)
		}
		g.lg.Info("finished a trim a stop interrupted", "start", st.start, "segments_start", got)
	}
	if start := g.log.StartOffset(); start != st.baseNext {
		return fmt.Errorf("the log starts at offset %d but its raft state expects %d", start, st.baseNext)
	}
	g.logStart.Store(st.start)
	var controls []int64 // control batches, for lastCompaction
	err := g.log.ScanHeaders(st.baseNext, func(h *batch.Header) error {
		s.ents = append(s.ents, meta{term: uint64(max(h.LeaderEpoch, 0)), next: h.NextOffset()})
		if h.Attributes&batch.AttrControl != 0 {
			controls = append(controls, h.BaseOffset)
		}
		return nil
	})
	if err != nil {
		return err
	}
	last := s.lastLocked()
	commit := min(st.commit, last)
	term, vote := st.term, st.vote
	s.hard = &pb.HardState{Term: &term, Vote: &vote, Commit: &commit}
	s.conf = &pb.ConfState{Voters: st.voters, Learners: g.learners}
	g.st = s
	g.saved.term, g.saved.vote = st.term, st.vote
	g.hw = s.endOf(commit)
	g.applied = commit
	if p, ok := g.lastCompaction(controls, g.hw); ok {
		g.reapply = &p
	}
	rn, err := g.newRawNode(commit)
	if err != nil {
		return err
	}
	g.rn = rn
	return nil
}

func (g *Group) start() {
	if p := g.reapply; p != nil {
		g.reapply = nil
		g.applyCompaction(*p)
	}
	go g.run()
}

func (g *Group) isReplica(id uint64) bool { _, ok := g.replicas[id]; return ok }

// deliver hands an inbound message to run; a full inbox drops it (raft
// sends again).
func (g *Group) deliver(m *pb.Message) {
	select {
	case g.inbox <- m:
	default:
		g.h.dropped.Add(1)
	}
}

// Key returns the group's key.
func (g *Group) Key() string { return g.key }

// Leader returns the name of the replica that leads the group as last
// known, or "" when none is known.
func (g *Group) Leader() string {
	return g.replicas[g.leader.Load()]
}

// IsLeader reports whether this replica leads the group.
func (g *Group) IsLeader() bool { return g.leader.Load() == g.id }

// Term returns the raft term as last seen.
func (g *Group) Term() uint64 { return g.term.Load() }

// LeaderReady reports whether this replica leads the group and has
// committed an entry of its own term: only then does its high watermark
// cover every entry an earlier leader committed, so a state machine it
// has applied up to the high watermark is complete (raft's rule that a
// leader serves reads only after committing in its term).
func (g *Group) LeaderReady() bool {
	t := g.term.Load()
	return g.IsLeader() && t != 0 && g.appliedTerm.Load() == t
}

// Campaign makes this replica stand for election now (tests, start-up).
func (g *Group) Campaign() {
	select {
	case g.props <- &proposal{op: opCampaign}:
	case <-g.quit:
	}
}

// TransferLeadership asks raft to hand this replica's leadership to the
// most up-to-date follower; it returns at once (see Host.TransferAll).
func (g *Group) TransferLeadership() {
	select {
	case g.props <- &proposal{op: opTransfer}:
	case <-g.quit:
	}
}

// ReplicaProgress is what a leader knows of one replica's copy of the
// log.
type ReplicaProgress struct {
	Node string
	// Match is the offset after the last batch the replica is known to
	// have (the leader's own: its log's end).
	Match int64
	// Active says the replica answered within the election timeout.
	Active bool
}

// Progress returns, on the leader, each replica's progress in replica
// order; nil on a follower, or when the group is closed or failed.
func (g *Group) Progress() []ReplicaProgress {
	if g.failed.Load() != nil {
		return nil
	}
	// A failed group's goroutine stops reading proposals: give up after a
	// while rather than wait for Close.
	t := time.NewTimer(time.Second)
	defer t.Stop()
	ch := make(chan []ReplicaProgress, 1)
	select {
	case g.props <- &proposal{op: opStatus, status: ch}:
	case <-g.quit:
		return nil
	case <-t.C:
		return nil
	}
	select {
	case pr := <-ch:
		return pr
	case <-g.quit:
		return nil
	case <-t.C:
		return nil
	}
}

// progress answers Progress from the group's goroutine.
func (g *Group) progress() []ReplicaProgress {
	if !g.isLeader {
		return nil
	}
	st := g.rn.Status()
	var out []ReplicaProgress
	for _, name := range g.Replicas() {
		id := RaftID(name)
		pr, ok := st.Progress[id]
		if !ok {
			continue
		}
		m := g.st.endOf(pr.Match)
		if id == g.id {
			m = g.log.NextOffset()
		}
		out = append(out, ReplicaProgress{Node: name, Match: m, Active: pr.RecentActive || id == g.id})
	}
	return out
}

func (g *Group) transfer() { g.transferExcept(0) }

// transferExcept hands the lead to the most up-to-date active follower
// other than not.
func (g *Group) transferExcept(not uint64) {
	if !g.isLeader {
		return
	}
	var best, match uint64
	for id, pr := range g.rn.Status().Progress {
		if id != g.id && id != not && !pr.IsLearner && pr.Match >= match && pr.RecentActive {
			best, match = id, pr.Match
		}
	}
	if best != 0 {
		g.rn.TransferLeader(best)
	}
}

func (g *Group) notLeader() error {
	if l := g.Leader(); l != "" {
		return result.New(result.NotLeader, fmt.Sprintf("node %s does not lead %s; its leader is %s", g.h.self, g.key, l))
	}
	return result.New(result.NotLeader, fmt.Sprintf("%s has no leader at the moment (an election is running); retry shortly", g.key))
}

// Append proposes the batch b (see node.Buffer): b's CRC is checked
// unless checked says the caller built or checked it; sparse relaxes the
// producer-sequence check. On a follower, with forward, the batch goes to
// the leader over the cluster transport and the Ack resolves with its
// answer; without, or with no leader known, Append refuses with
// NOT_LEADER (retriable).
func (g *Group) Append(b []byte, checked, sparse, forward bool) (*Ack, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	if forward {
		if h, err := batch.ParseHeader(b); err == nil && h.Idempotent() {
			return g.appendRetrying(h.ProducerID, b, checked, sparse), nil
		}
	}
	return g.appendOrForward(b, checked, sparse, forward, false)
}

// appendOnce makes one attempt at an append that may be forwarded; b is
// appendRetrying's own copy.
func (g *Group) appendOnce(b []byte, checked, sparse bool) (*Ack, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	return g.appendOrForward(b, checked, sparse, true, true)
}

// appendOrForward appends b here when this replica leads, else forwards it to
// the leader (with forward) or refuses with NOT_LEADER. owned says that b
// is not changed until the append is answered (see forwardAck).
func (g *Group) appendOrForward(b []byte, checked, sparse, forward, owned bool) (*Ack, error) {
	if !g.IsLeader() {
		// A write on a quiet follower starts its clock: should the leader
		// be gone, the group elects another.
		g.nudge()
		l := g.Leader()
		if !forward || l == "" || l == g.h.self {
			return nil, g.notLeader()
		}
		if alive := g.h.opts.Alive; alive != nil && !alive(l) {
			// Its leader is gone: an election is under way (or starts now);
			// the caller retries, rather than wait out a forward to a dead
			// node.
			return nil, result.New(result.NotLeader, fmt.Sprintf("node %s, which led %s, is down; a new leader is being elected; retry shortly", l, g.key))
		}
		return g.h.forwardAck(g.key, l, b, sparse, owned), nil
	}
	return g.appendLocal(b, checked, sparse)
}

// appendLocal proposes b here; it refuses if this replica does not lead.
func (g *Group) appendLocal(b []byte, checked, sparse bool) (*Ack, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	if !g.IsLeader() {
		return nil, g.notLeader()
	}
	var h batch.Header
	var err error
	if checked {
		h, err = batch.CheckFraming(b)
	} else {
		h, err = batch.Check(b)
	}
	if err != nil {
		return nil, fmt.Errorf("replica: append to %s: %w", g.key, err)
	}
	if int64(len(b)) > g.log.SegmentBytes() {
		// Refused here, before raft commits it: every replica's log
		// would refuse to write it, and fail.
		return nil, result.New(result.RequestTooLarge, fmt.Sprintf("%s: a batch of %d bytes is larger than a segment (durability.segment_bytes %d); send smaller batches or raise the segment size",
			g.key, len(b), g.log.SegmentBytes()))
	}
	p := &proposal{data: append([]byte(nil), b...), h: h, sparse: sparse, ack: newAck()}
	select {
	case g.props <- p:
	case <-g.quit:
		return nil, seglog.ErrClosed
	}
	return p.ack, nil
}

func (g *Group) usable() error {
	if e := g.failed.Load(); e != nil {
		return *e
	}
	g.closeMu.Lock()
	defer g.closeMu.Unlock()
	if g.closed {
		return seglog.ErrClosed
	}
	return nil
}

// run is the group's goroutine.
func (g *Group) run() {
	defer close(g.done)
	for {
		if g.runOnce() {
			return
		}
		if g.failed.Load() != nil {
			// The log failed: this replica stops taking part; the others go
			// on without it.
			g.failAll(*g.failed.Load())
			<-g.quit
			return
		}
	}
}

// runOnce waits for one event, handles it and whatever else is queued, and
// processes raft's Ready. It reports whether the group is closing. A
// damaged batch found in this replica's own log while raft reads it (a
// damagePanic, see repair.go) ends the round: the log is cut there and
// raft restarted over it, to fetch the rest again from the leader.
func (g *Group) runOnce() (closing bool) {
	defer func() {
		if r := recover(); r != nil {
			d, ok := r.(damagePanic)
			if !ok {
				panic(r)
			}
			g.repair(d.offset, d.err)
		}
	}()
	select {
	case <-g.quit:
		g.failAll(seglog.ErrClosed)
		return true
	case <-g.tickc:
		g.wake()
		if !g.repairing {
			g.rn.Tick()
		}
		g.maybeQuiesce()
		if err := g.dropSegments(); err != nil {
			g.lg.Error("dropping the segments below the log's start failed; retried", "err", err)
		}
	case m := <-g.inbox:
		g.step(m)
	case p := <-g.props:
		g.propose(p)
	}
drain:
	for range 512 {
		select {
		case m := <-g.inbox:
			g.step(m)
		case p := <-g.props:
			g.propose(p)
		default:
			break drain
		}
	}
	g.flushProposals()
	for g.failed.Load() == nil && g.rn.HasReady() {
		if err := g.handleReady(g.rn.Ready()); err != nil {
			g.fail(err)
		}
	}
	g.checkRepaired()
	return false
}

func (g *Group) step(m *pb.Message) {
	if m.GetType() == pb.MessageType_MsgHeartbeat {
		if !g.repairing {
			g.checkLost(m)
		}
		// Raft panics on a heartbeat whose commit index lies past the
		// log's end, which a leader's count of what this replica
		// acknowledged can be after the log was lost or cut (a repair
		// under way meets a leader of a later term too): such a heartbeat
		// commits nothing new here.
		if last, _ := g.st.LastIndex(); m.GetCommit() > last {
			have := g.rn.BasicStatus().GetCommit()
			m.Commit = &have
		}
	}
	if g.repairing && !g.repairStep(m) {
		return
	}
	if wakes(m.GetType()) {
		g.wake()
	}
	if err := g.rn.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
		g.lg.Debug("raft step", "type", m.GetType().String(), "err", err)
	}
}

func (g *Group) fail(err error) {
	e := fmt.Errorf("replica: group %s failed; this replica no longer takes part: %w", g.key, err)
	if g.failed.CompareAndSwap(nil, &e) {
		g.lg.Error("replica failed", "err", err)
	}
}

// propose checks the batch's producer sequences against the log and what
// is in flight, then proposes it.
func (g *Group) propose(p *proposal) {
	if p.op != opPropose {
		g.flushProposals() // in order with what came before
	}
	switch p.op {
	case opCampaign:
		g.rn.Campaign()
		return
	case opTransfer:
		g.transfer()
		return
	case opStatus:
		p.status <- g.progress()
		return
	case opQuiesce:
		g.followQuiesce(p.qterm, p.qindex, p.qfrom)
		return
	case opRepair:
		g.repair(p.qoffset, p.qerr)
		return
	case opPeerRepair:
		g.peerRepaired(p.qfrom)
		return
	}
	g.wake()
	g.idleTicks = 0
	if !g.leads() {
		p.ack.resolve(-1, g.notLeader())
		return
	}
	if p.h.Idempotent() {
		if done := g.checkSequence(p); done {
			return
		}
	}
	p.id = g.propID
	g.propID++
	batch.SetBaseOffset(p.data, int64(p.id))
	if len(g.batched) == 0 {
		g.batchedTerm = g.rn.BasicStatus().GetTerm()
	}
	g.batched = append(g.batched, p)
	g.waiting[p.id] = p.ack
	if p.h.Idempotent() {
		f := g.inflight[p.h.ProducerID]
		if f == nil || f.epoch != p.h.ProducerEpoch {
			f = &inflight{epoch: p.h.ProducerEpoch}
			g.inflight[p.h.ProducerID] = f
		}
		f.ents = append(f.ents, inflightBatch{first: p.h.BaseSequence, last: p.h.LastSequence(), ack: p.ack})
	}
}

// flushProposals steps the proposals of this round into raft as one
// message: raft appends them together and sends each follower one append
// for all of them, rather than one per batch. They were checked against
// the producer state as the leader of batchedTerm; if this replica no
// longer leads in that term (a message stepped since made it a follower),
// or raft drops them (a leadership transfer under way), they fail with
// NOT_LEADER, as a refused proposal always has. Called by run.
func (g *Group) flushProposals() {
	if len(g.batched) == 0 {
		return
	}
	props := g.batched
	g.batched = g.batched[:0]
	ents := make([]*pb.Entry, len(props))
	for i, p := range props {
		ents[i] = &pb.Entry{Data: p.data}
	}
	err := g.notLeader()
	if g.leads() && g.rn.BasicStatus().GetTerm() == g.batchedTerm {
		err = g.rn.Step(&pb.Message{Type: pb.MsgProp.Enum(), From: &g.id, Entries: ents})
	}
	if err == nil {
		clear(props)
		return
	}
	for i, p := range props {
		props[i] = nil
		if g.waiting[p.id] != p.ack {
			continue // already failed
		}
		delete(g.waiting, p.id)
		g.dropInflight(&p.h, p.ack)
		p.ack.resolve(-1, g.notLeader())
	}
}

// leads reports whether raft leads now. g.isLeader follows raft's soft
// state only at the next Ready, and a round of run may have stepped a
// newer leader's message since: a replica that has just become a follower
// must not check and propose as a leader (its log and in-flight state no
// longer decide the producer's sequences; the new leader's do). It also
// updates the leader others read, so that an append made meanwhile is
// refused at once. Called by run.
func (g *Group) leads() bool {
	st := g.rn.BasicStatus()
	if st.RaftState == raft.StateLeader {
		return true
	}
	g.leader.Store(st.Lead)
	return false
}

// checkSequence decides an idempotent proposal as the log would: it
// returns true when the proposal was answered (an error, or a repeat that
// follows the original) and must not be proposed.
func (g *Group) checkSequence(p *proposal) bool {
	h := &p.h
	f := g.inflight[h.ProducerID]
	if f == nil || len(f.ents) == 0 {
		base, last, dup, err := g.log.CheckSequence(h, p.sparse)
		switch {
		case err != nil:
			p.ack.resolve(-1, err)
			return true
		case dup:
			p.ack.base, p.ack.end = base, last+1
			if g.highWatermark() >= p.ack.end {
				p.ack.resolve(base, nil)
			} else {
				g.byOffset = append(g.byOffset, p.ack)
			}
			return true
		}
		return false
	}
	switch {
	case h.ProducerEpoch < f.epoch:
		p.ack.resolve(-1, fmt.Errorf("%w: producer %d sent epoch %d, current is %d; a newer instance of this producer took over",
			seglog.ErrProducerFenced, h.ProducerID, h.ProducerEpoch, f.epoch))
		return true
	case h.ProducerEpoch > f.epoch:
		if h.BaseSequence != 0 && !p.sparse {
			p.ack.resolve(-1, fmt.Errorf("%w: producer %d epoch %d is new here and must start at sequence 0, not %d",
				seglog.ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence))
			return true
		}
		return false
	}
	last := h.LastSequence()
	for _, e := range f.ents {
		if e.first == h.BaseSequence && e.last == last {
			e.ack.followers = append(e.ack.followers, p.ack)
			return true
		}
	}
	expect := int32((int64(f.ents[len(f.ents)-1].last) + 1) & math.MaxInt32)
	switch d := seqDiff(h.BaseSequence, expect); {
	case d < 0:
		p.ack.resolve(-1, fmt.Errorf("%w: producer %d sequences %d..%d are older than the ones in flight",
			seglog.ErrDuplicateSequence, h.ProducerID, h.BaseSequence, last))
		return true
	case d > 0 && !p.sparse:
		p.ack.resolve(-1, fmt.Errorf("%w: producer %d sent sequence %d, expected %d (a batch is missing)",
			seglog.ErrOutOfOrderSequence, h.ProducerID, h.BaseSequence, expect))
		return true
	}
	return false
}

// seqDiff returns a-b in the 31-bit sequence space.
func seqDiff(a, b int32) int64 {
	d := (int64(a) - int64(b)) & math.MaxInt32
	if d >= 1<<30 {
		d -= 1 << 31
	}
	return d
}

// handleReady persists, sends and applies one Ready.
func (g *Group) handleReady(rd raft.Ready) error {
	if rd.SoftState != nil {
		g.leader.Store(rd.SoftState.Lead)
		was := g.isLeader
		g.isLeader = rd.SoftState.RaftState == raft.StateLeader
		if was && !g.isLeader {
			g.failPending(g.notLeader())
		}
	}
	if rd.HardState != nil {
		g.term.Store(rd.HardState.GetTerm())
	}
	// Messages that vouch for nothing go out first, so that followers
	// write new entries while this replica does (raft thesis 10.2.1): a
	// leader's appends, heartbeats, vote requests. The answers that
	// vouch for durable state (appends acknowledged, votes granted) wait
	// for the sync below, and so does the leader's own vote for its
	// entries (raft steps it at Advance): nothing commits until a quorum
	// has it durable. This is raft's own contract for asynchronous
	// storage writes (raft.msgsAfterAppend).
	rd.Messages = coalesceAppends(rd.Messages)
	after := rd.Messages[:0:0]
	for _, m := range rd.Messages {
		if vouches(m) || !raft.IsEmptySnap(rd.Snapshot) {
			after = append(after, m)
			continue
		}
		g.sendMsg(m)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := g.installSnapshot(rd.Snapshot, rd.HardState); err != nil {
			return err
		}
	}
	if len(rd.Entries) > 0 {
		if err := g.persist(rd.Entries); err != nil {
			return err
		}
		if rd.MustSync {
			if err := g.log.Sync(); err != nil {
				return err
			}
		}
	}
	if hs := rd.HardState; hs != nil {
		g.st.mu.Lock()
		g.st.hard = hs
		g.st.mu.Unlock()
		if hs.GetTerm() != g.saved.term || hs.GetVote() != g.saved.vote {
			if err := g.saveState(hs); err != nil {
				return err
			}
		}
	}
	for _, m := range after {
		g.sendMsg(m)
	}
	if len(rd.CommittedEntries) > 0 {
		g.apply(rd.CommittedEntries)
	}
	g.rn.Advance(rd)
	return nil
}

// coalesceAppends merges, in a Ready's messages, an empty append (one that
// only tells a follower the new commit index, which raft sends to every
// follower as the commit moves) with the append to the same follower, in
// the same term, right before or after it in the log: the one kept takes
// the higher commit index, and the follower answers one message, not two.
// Raising an append's commit index is sound: the follower commits only up
// to the entries the append matched, and the index is the leader's. It
// works in place and returns msgs without the dropped messages.
func coalesceAppends(msgs []*pb.Message) []*pb.Message {
	var last map[uint64]int // follower → where its latest append is in out
	out := msgs[:0]
	for _, m := range msgs {
		if m.GetType() != pb.MsgApp {
			out = append(out, m)
			continue
		}
		if last == nil {
			last = map[uint64]int{}
		}
		if i, ok := last[m.GetTo()]; ok {
			p := out[i]
			commit := max(p.GetCommit(), m.GetCommit())
			switch {
			case p.GetTerm() != m.GetTerm():
			case len(m.GetEntries()) == 0 && p.GetIndex()+uint64(len(p.GetEntries())) == m.GetIndex():
				p.Commit = &commit // m says nothing more
				continue
			case len(p.GetEntries()) == 0 && p.GetIndex() == m.GetIndex():
				m.Commit = &commit // p says nothing more
				out[i] = m
				continue
			}
		}
		last[m.GetTo()] = len(out)
		out = append(out, m)
	}
	clear(msgs[len(out):])
	return out
}

// vouches reports whether m speaks for this replica's durable state, and
// so may leave only once the Ready that produced it is persisted: an
// append's answer, a vote's answer (raft queues these in msgsAfterAppend).
func vouches(m *pb.Message) bool {
	switch m.GetType() {
	case pb.MsgAppResp, pb.MsgVoteResp, pb.MsgPreVoteResp:
		return true
	}
	return false
}

func (g *Group) saveState(hs *pb.HardState) error {
	g.st.mu.Lock()
	s := state{
		term: hs.GetTerm(), vote: hs.GetVote(), commit: hs.GetCommit(),
		baseIndex: g.st.baseIndex, baseTerm: g.st.baseTerm, baseNext: g.st.baseNext, start: max(g.st.start, g.st.baseNext),
		voters: g.st.conf.GetVoters(),
	}
	g.st.mu.Unlock()
	if err := writeState(g.fs, g.dir, &s); err != nil {
		return fmt.Errorf("save raft state: %w", err)
	}
	g.saved.term, g.saved.vote = s.term, s.vote
	return nil
}

// persist writes entries to the log, first cutting any conflicting suffix.
func (g *Group) persist(ents []*pb.Entry) error {
	s := g.st
	first := ents[0].GetIndex()
	s.mu.Lock()
	last, base := s.lastLocked(), s.baseIndex
	s.mu.Unlock()
	if first <= base {
		return fmt.Errorf("raft asked to overwrite entry %d, before the log's start %d", first, base+1)
	}
	if first > last+1 {
		return fmt.Errorf("raft appended entry %d after the log's last %d", first, last)
	}
	if first <= last {
		s.mu.Lock()
		off := s.offsetOf(first)
		s.mu.Unlock()
		if err := g.log.Truncate(off); err != nil {
			return fmt.Errorf("cut the log at entry %d (offset %d): %w", first, off, err)
		}
		s.mu.Lock()
		s.ents = s.ents[:first-base-1]
		s.forgetFromLocked(first)
		s.mu.Unlock()
		for i, a := range g.byIndex {
			if i >= first {
				a.resolve(-1, g.notLeader())
				delete(g.byIndex, i)
			}
		}
	}
	for _, e := range ents {
		if e.GetTerm() > math.MaxInt32 {
			return fmt.Errorf("raft term %d does not fit a batch's leader epoch", e.GetTerm())
		}
		b, trusted := batchOf(e)
		var a *Ack
		if !trusted && len(g.waiting) > 0 {
			if h, err := batch.ParseHeader(b); err == nil {
				id := uint64(h.BaseOffset)
				if a = g.waiting[id]; a != nil {
					delete(g.waiting, id)
					trusted = true // checked by Append
				}
			}
		}
		bo, next, err := g.log.AppendReplicated(b, int32(e.GetTerm()), trusted)
		if err != nil {
			return fmt.Errorf("write entry %d: %w", e.GetIndex(), err)
		}
		s.mu.Lock()
		s.ents = append(s.ents, meta{term: e.GetTerm(), next: next})
		s.remember(e)
		s.mu.Unlock()
		if a != nil {
			a.base, a.end = bo, next
			g.byIndex[e.GetIndex()] = a
			g.written(b, a)
		}
	}
	return nil
}

// written drops a proposal from the in-flight sequences once the log has
// it (the log's producer state covers it from then on).
func (g *Group) written(b []byte, a *Ack) {
	h, err := batch.ParseHeader(b)
	if err != nil {
		return
	}
	g.dropInflight(&h, a)
}

// dropInflight drops the batch of a, with header h, from its producer's
// in-flight sequences.
func (g *Group) dropInflight(h *batch.Header, a *Ack) {
	if !h.Idempotent() {
		return
	}
	f := g.inflight[h.ProducerID]
	if f == nil {
		return
	}
	for i, e := range f.ents {
		if e.ack == a {
			f.ents = append(f.ents[:i], f.ents[i+1:]...)
			break
		}
	}
	if len(f.ents) == 0 {
		delete(g.inflight, h.ProducerID)
	}
}

func (g *Group) sendMsg(m *pb.Message) {
	to, ok := g.replicas[m.GetTo()]
	if !ok {
		g.lg.Error("raft addressed a node that holds no replica; not sent", "to", m.GetTo())
		return
	}
	if m.GetTo() == g.id {
		g.step(m)
		return
	}
	if isHeartbeat(m) {
		g.h.queueHeartbeat(to, g.key, m) // one frame per peer (heartbeat.go)
		return
	}
	p, err := encodeFrame(g.key, m)
	if err != nil {
		g.lg.Error("encode raft message", "err", err)
		return
	}
	sent := g.h.send.Send(to, KindRaft, p)
	if !sent {
		g.rn.ReportUnreachable(m.GetTo())
	}
	if m.GetType() == pb.MessageType_MsgSnap {
		g.reportSnapshot(m.GetTo(), sent)
	}
}

// apply moves the high watermark over committed entries and resolves
// their acks.
func (g *Group) apply(ents []*pb.Entry) {
	lastIdx := ents[len(ents)-1].GetIndex()
	g.applied = lastIdx
	g.st.forgetTo(lastIdx) // before a compaction below may rewrite them
	g.appliedTerm.Store(ents[len(ents)-1].GetTerm())
	end := g.st.endOf(lastIdx)
	g.setHighWatermark(end) // before the acks: what is acknowledged is readable
	for _, e := range ents {
		if off, ok := trimOf(e); ok {
			if err := g.applyTrim(off); err != nil {
				// The start readers see moved; the segments stay until the
				// next trim or open finishes the drop.
				g.lg.Error("moving the log's start failed", "start", off, "err", err)
			}
		}
		if p, ok := compactOf(e); ok {
			g.applyCompaction(p)
		}
		if a := g.byIndex[e.GetIndex()]; a != nil {
			delete(g.byIndex, e.GetIndex())
			a.resolve(a.base, nil)
		}
	}
	if len(g.byOffset) > 0 {
		keep := g.byOffset[:0]
		for _, a := range g.byOffset {
			if a.end <= end {
				a.resolve(a.base, nil)
			} else {
				keep = append(keep, a)
			}
		}
		g.byOffset = keep
	}
}

// failPending fails every append not yet committed: this replica stopped
// leading, and what it proposed may or may not be committed by the next
// leader (a producer's retry is recognized by its sequences).
func (g *Group) failPending(err error) {
	for id, a := range g.waiting {
		a.resolve(-1, err)
		delete(g.waiting, id)
	}
	for i, a := range g.byIndex {
		a.resolve(-1, err)
		delete(g.byIndex, i)
	}
	for _, a := range g.byOffset {
		a.resolve(-1, err)
	}
	g.byOffset = nil
	clear(g.inflight)
	clear(g.batched)
	g.batched = g.batched[:0]
}

// failAll fails pending appends and any proposal still queued.
func (g *Group) failAll(err error) {
	g.failPending(err)
	for {
		select {
		case p := <-g.props:
			if p.op == opPropose {
				p.ack.resolve(-1, err)
			}
		default:
			return
		}
	}
}

func (g *Group) highWatermark() int64 {
	g.hwMu.Lock()
	defer g.hwMu.Unlock()
	return g.hw
}

func (g *Group) setHighWatermark(end int64) {
	g.hwMu.Lock()
	if end > g.hw {
		g.hw = end
		if g.hwCh != nil {
			close(g.hwCh)
			g.hwCh = nil
		}
	}
	g.hwMu.Unlock()
}

// Close stops the group's goroutine and closes its log. Appends still
// pending fail with seglog.ErrClosed.
func (g *Group) Close() error {
	g.closeMu.Lock()
	already := g.closed
	g.closed = true
	g.closeMu.Unlock()
	if already {
		return nil
	}
	g.stopOnce.Do(func() { close(g.quit) })
	if g.rn != nil {
		select {
		case <-g.done:
		default:
			if g.h.Group(g.key) == g {
				<-g.done
			}
		}
	}
	g.h.forget(g)
	g.hwMu.Lock()
	if g.hwCh != nil {
		close(g.hwCh)
		g.hwCh = nil
	}
	g.hwMu.Unlock()
	err := g.log.Close()
	g.compWG.Wait() // a pass stops at its next batch once the log closes
	return err
}

// Replicas returns the names of the nodes holding the group, sorted.
func (g *Group) Replicas() []string {
	out := make([]string, 0, len(g.replicas))
	for _, n := range g.replicas {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
