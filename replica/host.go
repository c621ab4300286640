package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
)

// KindRaft is the transport frame kind of raft messages: a 2-byte length
// and the group's key, then one raftpb.Message in protobuf encoding.
const KindRaft byte = 1

// maxKeyLen bounds a group key in a frame.
const maxKeyLen = 512

// Sender is the transport as a host uses it (cluster.Transport).
type Sender interface {
	// Send queues a frame for the node named to; false if it was dropped.
	Send(to string, kind byte, payload []byte) bool
}

// BulkSender is implemented by a Sender that can hold bulk frames back
// while a peer's queue is busy (cluster.Transport.SendBulk): the host
// sends the answers of remote reads through it when it can.
type BulkSender interface {
	SendBulk(to string, kind byte, payload []byte) bool
}

// HostOptions tune a host's raft groups. The zero value is valid.
type HostOptions struct {
	// Tick is raft's clock period; default 25ms.
	Tick time.Duration
	// ElectionTicks: a follower that hears nothing from its leader for
	// between this many and twice this many ticks campaigns; default 12
	// (300 to 600 ms with the default tick).
	ElectionTicks int
	// HeartbeatTicks: a leader's heartbeat period; default 3.
	HeartbeatTicks int
	// Logger; default slog.Default().
	Logger *slog.Logger
	// FS holds the state files; default vfs.Default. The logs use
	// seglog.Options.FS.
	FS vfs.FS
	// MaxSizePerMsg bounds the entries of one append message; default 1 MiB.
	MaxSizePerMsg uint64
	// ForwardTimeout bounds the wait for a forwarded append's answer;
	// default DefaultForwardTimeout.
	ForwardTimeout time.Duration
	// RetryFor bounds how long an idempotent batch appended on a node that
	// does not lead (Append with forward) is tried again, the same bytes,
	// after an answer that leaves its fate unknown (the leader went down,
	// lost its lead, did not answer); default DefaultRetryFor.
	RetryFor time.Duration
	// Alive reports whether a node is up as far as this one can tell
	// (the cluster's member list and transport). With it, idle groups go
	// quiet (see quiesce.go): their leader stops heartbeating and every
	// replica stops its clock, and a quiet follower whose leader is no
	// longer alive starts its clock again and so elects a new one. Nil
	// means groups never go quiet.
	Alive func(node string) bool
	// QuiesceTicks is how many ticks a leader's group must have been idle
	// and fully replicated before it goes quiet; default 2 heartbeat
	// periods.
	QuiesceTicks int
	// ReadFilter, when set, passes the batches a remote read (remoteread.go)
	// is about to send to node to: it appends to dst what that node may
	// receive. Sense filters by the records' jurisdiction masks, so that no
	// event byte reaches a node outside them. Nil sends the batches as read.
	ReadFilter func(to string, dst, batches []byte) ([]byte, error)
	// Isolator applies a remote read's isolation (remoteread.go): the
	// last stable offset and the aborted transactions are the node's to
	// know. Nil refuses every read with one other than ReadUncommitted.
	Isolator Isolator
}

func (o *HostOptions) fill() {
	if o.Tick <= 0 {
		o.Tick = 25 * time.Millisecond
	}
	if o.RetryFor <= 0 {
		o.RetryFor = DefaultRetryFor
	}
	if o.QuiesceTicks <= 0 {
		o.QuiesceTicks = 2 * max(o.HeartbeatTicks, 3)
	}
	if o.ElectionTicks <= 0 {
		o.ElectionTicks = 12
	}
	if o.HeartbeatTicks <= 0 {
		o.HeartbeatTicks = 3
	}
	if o.HeartbeatTicks >= o.ElectionTicks {
		o.HeartbeatTicks = max(1, o.ElectionTicks/4)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.ForwardTimeout <= 0 {
		o.ForwardTimeout = DefaultForwardTimeout
	}
	if o.MaxSizePerMsg == 0 {
		o.MaxSizePerMsg = 1 << 20
	}
}

// RaftID is the raft id of the node named id: a hash of the name, so that
// it does not depend on the order nodes are listed in. Config validation
// refuses names whose ids collide (CheckIDs).
func RaftID(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	v := h.Sum64()
	if v == 0 {
		v = 1
	}
	return v
}

// CheckIDs returns an error if two of the node names share a raft id.
func CheckIDs(nodes []string) error {
	seen := map[uint64]string{}
	for _, n := range nodes {
		id := RaftID(n)
		if o, ok := seen[id]; ok && o != n {
			return fmt.Errorf("replica: nodes %q and %q have the same raft id; rename one", o, n)
		}
		seen[id] = n
	}
	return nil
}

// Host runs the raft groups of one node: it delivers their messages from
// the transport, drives their clocks, and opens and closes them.
type Host struct {
	self string
	id   uint64
	send Sender
	opts HostOptions
	log  *slog.Logger

	mu     sync.RWMutex
	groups map[string]*Group
	names  map[uint64]string // raft id → node name, of every replica met
	closed bool

	dropped atomic.Uint64 // inbound messages refused

	fwdID atomic.Uint64
	fwdMu sync.Mutex
	fwd   map[uint64]pendingFwd // forwarded appends awaiting their answer
	// retentionHeld: HoldRetention (retention.go).
	retentionHeld atomic.Bool
	// digests are the digests asked of other nodes awaiting their answer
	// (digest.go), by request id: chan digestResult.
	digests sync.Map
	// reads are the reads asked of other nodes awaiting their answer
	// (remoteread.go), by request id: *pendingRead; served counts the
	// reads this node serves for others.
	reads  sync.Map
	served atomic.Int64
	// hb gathers heartbeats per peer (heartbeat.go).
	hb heartbeats

	quit chan struct{}
	wg   sync.WaitGroup
}

// NewHost returns the host of node self, sending through send. Close it.
func NewHost(self string, send Sender, opts HostOptions) *Host {
	opts.fill()
	h := &Host{
		self:   self,
		id:     RaftID(self),
		send:   send,
		opts:   opts,
		log:    opts.Logger.With("node", self),
		groups: map[string]*Group{},
		names:  map[uint64]string{},
		fwd:    map[uint64]pendingFwd{},
		quit:   make(chan struct{}),
	}
	h.wg.Add(1)
	go h.ticker()
	return h
}

// Self returns the host's node name.
func (h *Host) Self() string { return h.self }

func (h *Host) ticker() {
	defer h.wg.Done()
	t := time.NewTicker(h.opts.Tick)
	defer t.Stop()
	var gs []*Group
	for {
		select {
		case <-h.quit:
			return
		case <-t.C:
		}
		gs = gs[:0]
		h.mu.RLock()
		for _, g := range h.groups {
			gs = append(gs, g)
		}
		h.mu.RUnlock()
		h.failForwardsToDead()
		now := time.Now()
		for _, g := range gs {
			g.enforceRetention(now)
			g.enforceCompaction(now)
		}
		for _, g := range gs {
			if g.quiet.Load() && h.leaderAlive(g) {
				continue // a quiet group's clock stands still while its leader lives
			}
			select {
			case g.tickc <- struct{}{}:
			default:
			}
		}
	}
}

// GroupOptions describe one raft group to open.
type GroupOptions struct {
	// Key names the group on every replica, such as "payments/0".
	Key string
	// Dir is the replica's directory: its segments and state file.
	Dir string
	// Replicas are the node names holding the group and voting in it,
	// this host's included unless it is a learner. They are fixed when
	// the group is first created.
	Replicas []string
	// Learners are nodes that hold the group and apply it without voting
	// (raft learners): they never lead it and do not count for a quorum.
	// They are not recorded in the group's state; every node must give
	// the same ones.
	Learners []string
	// Log configures the segment log. Its retention must be off: a
	// replicated buffer's is RetentionAge and RetentionBytes, enforced by
	// its leader for every replica (retention.go).
	Log seglog.Options
	// RetentionAge and RetentionBytes bound the buffer (0: no limit), as
	// seglog's retention bounds a lone log; Group.SetRetention changes
	// them.
	RetentionAge   time.Duration
	RetentionBytes int64
	// Compaction is the buffer's compaction policy (compact.go): its
	// leader has every replica compact; Group.SetCompaction changes it.
	// Log.ObserveCompaction, if set, is told of each pass.
	Compaction seglog.CompactPolicy
}

// Open opens (recovering, or creating) this node's replica of a group.
func (h *Host) Open(o GroupOptions) (*Group, error) {
	if len(o.Key) == 0 || len(o.Key) > maxKeyLen {
		return nil, fmt.Errorf("replica: group key of %d bytes; give 1 to %d", len(o.Key), maxKeyLen)
	}
	if o.Log.RetentionAge > 0 || o.Log.RetentionBytes > 0 {
		return nil, fmt.Errorf("replica: group %s: the segment log's own retention must be off; give the buffer's as GroupOptions.RetentionAge and RetentionBytes", o.Key)
	}
	if o.Log.Compaction.Enabled {
		return nil, fmt.Errorf("replica: group %s: the segment log's own compaction must be off; give the buffer's policy as GroupOptions.Compaction", o.Key)
	}
	if o.RetentionAge < 0 || o.RetentionBytes < 0 {
		return nil, fmt.Errorf("replica: group %s: retention %v and %d bytes: neither may be negative", o.Key, o.RetentionAge, o.RetentionBytes)
	}
	if err := CheckIDs(append(slices.Clone(o.Replicas), o.Learners...)); err != nil {
		return nil, err
	}
	self := false
	for _, r := range append(slices.Clone(o.Replicas), o.Learners...) {
		self = self || r == h.self
	}
	if !self {
		return nil, fmt.Errorf("replica: group %s: node %s is not among its replicas %v", o.Key, h.self, o.Replicas)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, seglog.ErrClosed
	}
	if h.groups[o.Key] != nil {
		h.mu.Unlock()
		return nil, fmt.Errorf("replica: group %s is open already", o.Key)
	}
	h.mu.Unlock()

	g, err := openGroup(h, o)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.groups[o.Key] != nil {
		g.Close()
		return nil, fmt.Errorf("replica: group %s: the host closed or opened it meanwhile", o.Key)
	}
	for _, r := range append(slices.Clone(o.Replicas), o.Learners...) {
		h.names[RaftID(r)] = r
	}
	h.groups[o.Key] = g
	_ = g.SetRetention(o.RetentionAge, o.RetentionBytes) // its limits were checked above
	if err := g.SetCompaction(o.Compaction); err != nil {
		g.lg.Error("compaction stays off", "err", err)
	}
	g.start()
	return g, nil
}

// forget removes a closed group.
func (h *Host) forget(g *Group) {
	h.mu.Lock()
	if h.groups[g.key] == g {
		delete(h.groups, g.key)
	}
	h.mu.Unlock()
}

// Group returns the open group named key, or nil.
func (h *Host) Group(key string) *Group {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.groups[key]
}

// Groups returns the open groups sorted by key.
func (h *Host) Groups() []*Group {
	h.mu.RLock()
	gs := make([]*Group, 0, len(h.groups))
	for _, g := range h.groups {
		gs = append(gs, g)
	}
	h.mu.RUnlock()
	sort.Slice(gs, func(i, j int) bool { return gs[i].key < gs[j].key })
	return gs
}

// Dropped returns how many inbound messages were refused (malformed, for
// an unknown group, from a node that holds no replica of it).
func (h *Host) Dropped() uint64 { return h.dropped.Load() }

// errFrame reports a malformed raft frame.
var errFrame = errors.New("replica: malformed raft frame")

// encodeFrame returns the frame payload carrying m for group key.
func encodeFrame(key string, m *pb.Message) ([]byte, error) {
	b := make([]byte, 2+len(key), 2+len(key)+proto.Size(m))
	binary.BigEndian.PutUint16(b, uint16(len(key)))
	copy(b[2:], key)
	return proto.MarshalOptions{}.MarshalAppend(b, m)
}

// decodeFrame parses a raft frame payload. The message does not alias p.
func decodeFrame(p []byte) (string, *pb.Message, error) {
	if len(p) < 2 {
		return "", nil, fmt.Errorf("%w: %d bytes", errFrame, len(p))
	}
	n := int(binary.BigEndian.Uint16(p))
	if n == 0 || n > maxKeyLen || len(p) < 2+n {
		return "", nil, fmt.Errorf("%w: key of %d bytes in a frame of %d", errFrame, n, len(p))
	}
	key := string(p[2 : 2+n])
	m := new(pb.Message)
	if err := proto.Unmarshal(p[2+n:], m); err != nil {
		return "", nil, fmt.Errorf("%w: group %s: %v", errFrame, key, err)
	}
	return key, m, nil
}

// frameHandlers serve the frames of every kind but KindRaft.
var frameHandlers = map[byte]func(h *Host, from string, payload []byte){
	KindForward:     (*Host).handleForward,
	KindForwardResp: (*Host).handleForwardResp,
	KindQuiesce:     (*Host).handleQuiesce,
	KindRepair:      (*Host).handleRepair,
	KindDigest:      (*Host).handleDigest,
	KindDigestResp:  (*Host).handleDigestResp,
	KindRead:        (*Host).handleRead,
	KindReadResp:    (*Host).handleReadResp,
	KindHeartbeats:  (*Host).handleHeartbeats,
}

// HandleFrame delivers a frame from the transport (cluster.Handler).
func (h *Host) HandleFrame(from string, kind byte, payload []byte) {
	if handle := frameHandlers[kind]; handle != nil {
		handle(h, from, payload)
		return
	}
	if kind != KindRaft {
		h.dropped.Add(1)
		h.log.Warn("dropping a cluster frame of unknown kind", "from", from, "kind", kind)
		return
	}
	key, m, err := decodeFrame(payload)
	if err != nil {
		h.dropped.Add(1)
		h.log.Warn("dropping a raft frame", "from", from, "err", err)
		return
	}
	h.deliverRaft(from, key, m)
}

// deliverRaft hands a raft message from node from to the group key, once
// it is checked: addressed to this replica by a replica of the group, and
// not one raft keeps local or a forwarded proposal.
func (h *Host) deliverRaft(from, key string, m *pb.Message) {
	g := h.Group(key)
	if g == nil {
		h.dropped.Add(1)
		return // not open here (yet): raft sends again
	}
	if m.GetTo() != h.id || m.GetFrom() != RaftID(from) || !g.isReplica(m.GetFrom()) {
		h.dropped.Add(1)
		h.log.Warn("dropping a raft message not meant for this replica", "from", from, "group", key,
			"msg_from", m.GetFrom(), "msg_to", m.GetTo())
		return
	}
	if m.GetType() == pb.MsgSnap {
		if err := checkSnapshot(m.GetSnapshot()); err != nil {
			h.dropped.Add(1)
			h.log.Warn("dropping a raft snapshot", "from", from, "group", key, "err", err)
			return
		}
	}
	if t := m.GetType(); raft.IsLocalMsg(t) || t == pb.MsgProp {
		// No replica forwards a proposal (DisableProposalForwarding): a
		// leader appends one without checking its producer sequences, so
		// one that comes anyway is dropped; its proposer answers
		// NOT_LEADER and the producer retries with the leader itself.
		h.dropped.Add(1)
		return
	}
	g.deliver(m)
}

// TransferAll hands the leadership of every group this node leads to a
// follower and waits, up to timeout, until it leads none (a clean stop:
// writes move on at once instead of after an election timeout). It
// returns how many groups it still leads.
func (h *Host) TransferAll(timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		n := 0
		for _, g := range h.Groups() {
			if g.IsLeader() {
				n++
				g.TransferLeadership()
			}
		}
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Close closes every group and stops the host.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	gs := make([]*Group, 0, len(h.groups))
	for _, g := range h.groups {
		gs = append(gs, g)
	}
	h.mu.Unlock()
	var errs []error
	for _, g := range gs {
		if err := g.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	close(h.quit)
	h.wg.Wait()
	return errors.Join(errs...)
}
