package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/cluster"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/edge/kafka"
	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/internal/follow"
	"github.com/sensehq/sense/internal/tlsconf"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/meta"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/replica"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
)

// clusterRuntime is what a node of a cluster runs besides the node: the
// transport to its peers, the host of its raft groups, and what it knows
// of the other nodes.
type clusterRuntime struct {
	cfg     *config.Config
	tr      *cluster.Transport
	host    *replica.Host
	members *cluster.Members
	offsets *replica.Group // the committed-offsets log; nil before openOffsets
	meta    *metaRuntime   // the cluster metadata; nil before openMeta
	// metaStore is meta's store, for the buffers opened before it.
	metaStore atomic.Pointer[meta.Store]
	// proposer is the node's node.Proposer, bound to meta once open.
	proposer lateProposer
	log      *slog.Logger
	sender   *lateSender
	// node is the node, once open: remote reads are filtered by its hubs.
	node atomic.Pointer[node.Node]
	// aclsChanged, once security is set up, gives the authorizer the
	// ACLs the metadata holds after a change to them.
	aclsChanged atomic.Pointer[func()]
	// txnAdds: transaction version 2's adds of partitions at the
	// coordinator (txnadd.go).
	txnAdds txnAdds
}

// lateSender lets the host and the transport be built in either order.
type lateSender struct {
	t atomic.Pointer[cluster.Transport]
}

func (s *lateSender) Send(to string, kind byte, payload []byte) bool {
	t := s.t.Load()
	return t != nil && t.Send(to, kind, payload)
}

// SendBulk is replica.BulkSender.
func (s *lateSender) SendBulk(to string, kind byte, payload []byte) bool {
	t := s.t.Load()
	return t != nil && t.SendBulk(to, kind, payload)
}

// startCluster starts the transport, the raft host and the member list of
// a cluster node; ni is what the node tells its peers of itself.
func startCluster(cfg *config.Config, ni cluster.NodeInfo, tlsRT *tlsRuntime, log *slog.Logger) (*clusterRuntime, error) {
	var names []string
	var peers []cluster.Peer
	for _, p := range cfg.Cluster.Peers {
		names = append(names, p.ID)
		peers = append(peers, cluster.Peer{ID: p.ID, Addr: p.Addr})
	}
	if err := replica.CheckIDs(names); err != nil {
		return nil, err
	}
	ls := &lateSender{}
	members := cluster.NewMembers(ni, names, ls, membersInterval, log)
	c := &clusterRuntime{cfg: cfg, members: members, log: log, sender: ls}
	c.txnAdds.ctx, c.txnAdds.cancel = context.WithCancel(context.Background())
	host := replica.NewHost(cfg.Node.ID, ls, replica.HostOptions{Logger: log, Alive: c.alive, ReadFilter: c.readFilter, Isolator: isolator{c}})
	host.HoldRetention(true) // until the metadata is applied (meta.go)
	c.host = host
	var trTLS *tlsconf.Source
	if t := cfg.Cluster.TLS; t.Enabled() {
		src, err := tlsRT.source(tlsconf.Files{CertFile: t.CertFile, KeyFile: t.KeyFile, CAFile: t.CAFile})
		if err != nil {
			host.Close()
			return nil, fmt.Errorf("TLS for the cluster transport: %w (cluster.tls)", err)
		}
		trTLS = src
		log.Info("cluster transport speaks mutual TLS", "cert_file", t.CertFile, "ca_file", t.CAFile, "sha256", src.Fingerprint())
	}
	tr, err := cluster.New(cluster.Config{
		TLS:    trTLS,
		Self:   cfg.Node.ID,
		Listen: cfg.Cluster.Listen,
		Peers:  peers,
		Handler: cluster.HandlerFunc(func(from string, kind byte, payload []byte) {
			switch kind {
			case cluster.KindNodeInfo:
				members.Handle(from, payload)
			case kindTxnAdd:
				c.handleTxnAdd(from, payload)
			case kindTxnAddResp:
				c.handleTxnAddResp(from, payload)
			default:
				host.HandleFrame(from, kind, payload)
			}
		}),
		Logger: log,
	})
	if err != nil {
		host.Close()
		return nil, err
	}
	if err := tr.Start(); err != nil {
		host.Close()
		return nil, fmt.Errorf("listen for cluster peers on %s: %w (set cluster.listen)", cfg.Cluster.Listen, err)
	}
	ls.t.Store(tr)
	c.tr = tr
	members.Start()
	log.Info("cluster transport listening", "addr", tr.Addr(), "peers", len(peers))
	return c, nil
}

// alive reports whether node is up as far as this node can tell. A node is
// presumed alive until proven gone: once heard from, it is gone when its
// connection to this node closes or it has not been heard from within
// aliveWindow (see the liveness constants). A node never heard from yet
// (this node just started, or it did) is presumed alive, so that nothing
// is given up on, nor re-sent, in the first moments of a cluster.
func (c *clusterRuntime) alive(node string) bool {
	t := c.sender.t.Load()
	m, ok := c.members.Get(node)
	switch {
	case t == nil || !ok:
		return false
	case m.Self || m.LastHeard.IsZero():
		return true
	}
	return t.InboundConnected(node) && m.Up(time.Now(), aliveWindow)
}

// offsetsKey names the raft group of consumer groups' committed offsets.
// It cannot be a buffer's key: those are pipeline/hub/partition, and a
// pipeline name has no '_' at its start.
const offsetsKey = "__offsets"

// openOffsets opens this node's replica of the committed-offsets log, a
// raft group of every node of the cluster, and the store over it.
func (c *clusterRuntime) openOffsets() (*group.Store, error) {
	g, err := c.openEverywhere(offsetsKey, "groups-replicated")
	if err != nil {
		return nil, fmt.Errorf("open the replicated committed-offsets log: %w", err)
	}
	c.offsets = g
	return group.OpenReplicated(replicatedLog{g, false}, c.log), nil
}

// openEverywhere opens this node's replica of a raft group of the cluster's
// own state, with a replica on every node, in <data_dir>/<dir>, fsynced on
// every write.
// With voters, only those vote and the other nodes hold learner replicas;
// without, every node votes.
func (c *clusterRuntime) openEverywhere(key, dir string, voters ...string) (*replica.Group, error) {
	var all, learners []string
	for _, p := range c.cfg.Cluster.Peers {
		switch {
		case len(voters) == 0 || slices.Contains(voters, p.ID):
			all = append(all, p.ID)
		default:
			learners = append(learners, p.ID)
		}
	}
	return c.host.Open(replica.GroupOptions{
		Key:      key,
		Dir:      filepath.Join(c.cfg.Node.DataDir, dir),
		Replicas: all,
		Learners: learners,
		Log:      seglog.Options{Durability: seglog.Durability{Mode: seglog.SyncAlways}, Logger: c.log, PreallocateBytes: c.cfg.PreallocateBytes()},
	})
}

// replicatedLog is a raft group as the log of a state machine's store
// (follow.Replicated); with forward, a follower's appends go to the
// leader, else they are refused.
type replicatedLog struct {
	*replica.Group
	forward bool
}

func (l replicatedLog) Append(b []byte) (follow.Ack, error) {
	a, err := l.Group.Append(b, false, false, l.forward)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Brokers is kafka.Cluster: every node whose Kafka address is known, with
// its place in the peer list as its broker id.
func (c *clusterRuntime) Brokers() []kafka.Broker {
	var out []kafka.Broker
	for i, p := range c.cfg.Cluster.Peers {
		if m, ok := c.members.Get(p.ID); ok && m.Kafka != "" {
			out = append(out, kafka.SplitBroker(int32(i), m.Kafka))
		}
	}
	return out
}

// BrokerID is kafka.Cluster.
func (c *clusterRuntime) BrokerID(name string) (int32, bool) {
	for i, p := range c.cfg.Cluster.Peers {
		if p.ID == name {
			return int32(i), true
		}
	}
	return -1, false
}

// Self is kafka.Cluster.
func (c *clusterRuntime) Self() int32 {
	id, _ := c.BrokerID(c.cfg.Node.ID)
	return id
}

// Coordinator is kafka.Cluster: every group is coordinated by the leader
// of the committed-offsets log, once it has applied the log (this node),
// or as last known (another node, which answers NOT_COORDINATOR if it
// lost the lead meanwhile).
func (c *clusterRuntime) Coordinator(string) (kafka.Broker, bool) {
	g := c.offsets
	if g == nil {
		return kafka.Broker{}, false
	}
	leader := g.Leader()
	if leader == "" || leader == c.cfg.Node.ID && !g.LeaderReady() || leader != c.cfg.Node.ID && !c.alive(leader) {
		return kafka.Broker{}, false
	}
	m, ok := c.members.Get(leader)
	id, known := c.BrokerID(leader)
	if !ok || !known || m.Kafka == "" {
		return kafka.Broker{}, false
	}
	return kafka.SplitBroker(id, m.Kafka), true
}

// replicasOf returns the nodes that hold partition p of a pipeline in a
// hub: the pipeline's replication factor of the hub's nodes, starting at
// a node that rotates with the partition so leaders and replicas spread.
func (c *clusterRuntime) replicasOf(pipeline, hub string, partition int32) []string {
	nodes := c.cfg.HubNodes(hub)
	r := config.Pipeline{}.ReplicationIn(len(nodes))
	for _, p := range c.cfg.Pipelines {
		if p.Name == pipeline {
			r = p.ReplicationIn(len(nodes))
		}
	}
	out := make([]string, 0, r)
	for i := range r {
		out = append(out, nodes[(int(partition)+i)%len(nodes)])
	}
	return out
}

// openBuffer is node.Options.OpenBuffer for a cluster node: a raft group
// where this node holds a replica, else a Remote that forwards.
func (c *clusterRuntime) openBuffer(bs node.BufferSpec) (node.Buffer, error) {
	key := bs.Pipeline + "/" + bs.Hub + "/" + strconv.Itoa(int(bs.Partition))
	replicas := c.replicasOf(bs.Pipeline, bs.Hub, bs.Partition)
	held := false
	for _, r := range replicas {
		held = held || r == c.cfg.Node.ID
	}
	if !held {
		r, err := c.host.Remote(key, replicas)
		if err != nil {
			return nil, err
		}
		return remoteBuffer{Remote: r, key: key, c: c}, nil
	}
	// The buffer's retention is its leader's to enforce for every replica
	// (replica/retention.go), not each segment log's.
	// So is its compaction (replica/compact.go).
	lo := bs.Log
	lo.RetentionAge, lo.RetentionBytes = 0, 0
	lo.Compaction = seglog.CompactPolicy{}
	g, err := c.host.Open(replica.GroupOptions{Key: key, Dir: bs.Dir, Replicas: replicas, Log: lo,
		RetentionAge: bs.Log.RetentionAge, RetentionBytes: bs.Log.RetentionBytes, Compaction: bs.Log.Compaction})
	if err != nil {
		return nil, err
	}
	return groupBuffer{g}, nil
}

func (c *clusterRuntime) close() error {
	c.txnAdds.stop()
	if c.meta != nil {
		c.meta.close()
	}
	c.members.Close()
	err := c.host.Close()
	return errors.Join(err, c.tr.Close())
}

// readFilter is replica.HostOptions.ReadFilter: a node receives only the
// records whose masks hold the jurisdiction of every hub it is a node of
// (none when it is in no hub).
func (c *clusterRuntime) readFilter(to string, dst, batches []byte) ([]byte, error) {
	n := c.node.Load()
	if n == nil {
		return dst, errors.New("the node is still starting")
	}
	var want jurisdiction.Mask
	for _, h := range n.Hubs() {
		if !slices.Contains(c.cfg.HubNodes(h.Name), to) {
			continue
		}
		m, err := n.Registry().Parse(h.Jurisdiction)
		if err != nil {
			return dst, fmt.Errorf("hub %s: %w", h.Name, err)
		}
		want |= m
	}
	var f node.MaskFilter
	return f.Filter(dst, batches, func(m jurisdiction.Mask) bool { return want != 0 && want&^m == 0 })
}

// groupBuffer is a replica.Group as the node's Buffer.
type groupBuffer struct{ *replica.Group }

func (b groupBuffer) Append(p []byte, f node.AppendFlags) (node.Ack, error) {
	a, err := b.Group.Append(p, f&node.AppendChecked != 0, f&node.AppendSparse != 0, f&node.AppendLocal == 0)
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (groupBuffer) SetEpoch(int32) {} // the raft term is the epoch

// SetRetention is node.RetentionSetter: the leader enforces the new
// limits for every replica.
func (b groupBuffer) SetRetention(age time.Duration, size int64) error {
	return b.Group.SetRetention(age, size)
}

// SetCompaction is node.CompactionSetter: the leader has every replica
// compact under the new policy.
func (b groupBuffer) SetCompaction(p seglog.CompactPolicy) error {
	return b.Group.SetCompaction(p)
}

// Trim is node.Trimmer.
func (b groupBuffer) Trim(offset int64) (node.Ack, error) {
	a, err := b.Group.Trim(offset)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Digest is node.Digester: summed by the group's leader.
func (b groupBuffer) Digest(from, pid int64) (node.Digest, error) {
	d, err := b.Group.DigestLeader(from, pid)
	return node.Digest(d), err
}

// remoteBuffer is a replica.Remote as the node's Buffer; its Leader and
// Term come from the cluster metadata (leaders.go).
type remoteBuffer struct {
	*replica.Remote
	key string
	c   *clusterRuntime
}

func (b remoteBuffer) Append(p []byte, f node.AppendFlags) (node.Ack, error) {
	if f&node.AppendLocal != 0 {
		return nil, b.Remote.Truncate(0) // the NOT_LEADER that names the replicas
	}
	return b.Remote.Append(p, f&node.AppendSparse != 0), nil
}

func (remoteBuffer) SetEpoch(int32) {}

// Digest is node.Digester: summed by a node of the buffer's hub.
func (b remoteBuffer) Digest(from, pid int64) (node.Digest, error) {
	d, err := b.Remote.Digest(from, pid)
	return node.Digest(d), err
}

// HoldsData is node.Local: a remote buffer's log is on other nodes.
func (remoteBuffer) HoldsData() bool { return false }
func (remoteBuffer) IsLeader() bool  { return false }

var (
	_ node.Buffer          = groupBuffer{}
	_ node.Leadership      = groupBuffer{}
	_ node.Trimmer         = groupBuffer{}
	_ node.Digester        = groupBuffer{}
	_ node.RetentionSetter = groupBuffer{}
	_ node.Digester        = remoteBuffer{}
	_ node.Buffer          = remoteBuffer{}
	_ node.Leadership      = remoteBuffer{}
	_ node.Local           = remoteBuffer{}
)

// Liveness. Every node sends its node info to every peer each
// membersInterval. For `sense cluster status` a node is up while heard from
// within upWindow. For the raft groups (replica.HostOptions.Alive) a node
// is alive while its connection to this one is open and it was heard from
// within aliveWindow: a killed node's connection closes at once, a paused
// one is noticed after aliveWindow, and then the quiet groups it led wake
// and elect another leader.
const (
	membersInterval = 500 * time.Millisecond
	upWindow        = 3 * time.Second
	aliveWindow     = 1500 * time.Millisecond
)

// status is this node's view of the cluster: its peers, and every raft
// group it holds a replica of, with the replicas' progress where it leads.
func (c *clusterRuntime) status() *admin.ClusterInfo {
	now := time.Now()
	ci := &admin.ClusterInfo{Self: c.cfg.Node.ID}
	for _, p := range c.cfg.Cluster.Peers {
		ns := admin.NodeStatus{ID: p.ID, Cluster: p.Addr, LastHeardMs: -1}
		if m, ok := c.members.Get(p.ID); ok {
			ns.Kafka, ns.Native, ns.HTTP = m.Kafka, m.Native, m.HTTP
			ns.Up = m.Up(now, upWindow)
			ns.TableVersion = m.Table
			switch {
			case m.Self:
				ns.LastHeardMs = 0
			case !m.LastHeard.IsZero():
				ns.LastHeardMs = now.Sub(m.LastHeard).Milliseconds()
			}
		}
		ci.Nodes = append(ci.Nodes, ns)
	}
	for _, g := range c.host.Groups() {
		bs := admin.BufferStatus{Key: g.Key(), Leader: g.Leader(), Term: g.Term(), HighWatermark: g.HighWatermark(), Held: true}
		var progress map[string]replica.ReplicaProgress
		var end int64
		if g.IsLeader() {
			progress = map[string]replica.ReplicaProgress{}
			for _, pr := range g.Progress() {
				progress[pr.Node] = pr
				if pr.Node == c.cfg.Node.ID {
					end = pr.Match
				}
			}
		}
		for _, r := range g.Replicas() {
			rs := admin.ReplicaStatus{Node: r, Match: -1, Lag: -1}
			if pr, ok := progress[r]; ok {
				rs.Match, rs.Lag, rs.Active = pr.Match, max(end-pr.Match, 0), pr.Active
			}
			bs.Replicas = append(bs.Replicas, rs)
		}
		ci.Buffers = append(ci.Buffers, bs)
	}
	c.addMetaLeaders(ci)
	slices.SortFunc(ci.Buffers, func(a, b admin.BufferStatus) int { return strings.Compare(a.Key, b.Key) })
	return ci
}

// ReadFrom is node.RemoteReader: a replica of the buffer answers, with
// the isolation applied by its node (isolator).
func (b remoteBuffer) ReadFrom(ctx context.Context, offset int64, maxBytes int, wait time.Duration, iso node.Isolation) (node.RemoteRead, error) {
	r, err := b.Remote.ReadRemote(ctx, replica.ReadBatches, isolationWire[iso], offset, maxBytes, wait)
	out := node.RemoteRead{Batches: r.Batches, Offset: r.Offset, Start: r.Start, HighWatermark: r.Watermark, LSO: r.Stable}
	for _, a := range r.Aborted {
		out.Aborted = append(out.Aborted, node.AbortedTxn(a))
	}
	return out, err
}

// isolationWire spells each node.Isolation on the cluster transport (the
// remote read's isolation byte, docs/cluster.md); isolationOf reads it.
var isolationWire = map[node.Isolation]byte{
	node.ReadUncommitted:    replica.ReadUncommitted,
	node.ReadCommitted:      replica.ReadCommitted,
	node.ReadCommittedKafka: replica.ReadCommittedKafka,
}

func isolationOf(wire byte) (node.Isolation, bool) {
	for iso, w := range isolationWire {
		if w == wire {
			return iso, true
		}
	}
	return 0, false
}

// isolator is replica.Isolator: the node's transaction index of a buffer
// it holds a replica of applies a remote read's isolation.
type isolator struct{ c *clusterRuntime }

func (z isolator) node() (*node.Node, error) {
	n := z.c.node.Load()
	if n == nil {
		return nil, result.New(result.NotReady, "the node is still starting")
	}
	return n, nil
}

func (z isolator) StableOffset(g *replica.Group) (int64, error) {
	n, err := z.node()
	if err != nil {
		return -1, err
	}
	return n.BufferStableOffset(groupBuffer{g})
}

func (z isolator) Isolate(g *replica.Group, wire byte, b []byte, offset int64) ([]byte, int64, []replica.AbortedTxn, error) {
	n, err := z.node()
	if err != nil {
		return nil, -1, nil, err
	}
	iso, ok := isolationOf(wire)
	if !ok {
		return nil, -1, nil, fmt.Errorf("server: unknown read isolation %d", wire)
	}
	b, lso, aborted, err := n.Isolate(groupBuffer{g}, iso, b, offset)
	var out []replica.AbortedTxn
	for _, a := range aborted {
		out = append(out, replica.AbortedTxn(a))
	}
	return b, lso, out, err
}

var (
	_ node.RemoteReader = remoteBuffer{}
	_ replica.Isolator  = isolator{}
)
