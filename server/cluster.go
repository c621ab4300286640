package server

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/sensehq/sense/cluster"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/replica"
)

// clusterRuntime is what a node of a cluster runs besides the node: the
// transport to its peers and the host of its raft groups.
type clusterRuntime struct {
	cfg  *config.Config
	tr   *cluster.Transport
	host *replica.Host
	log  *slog.Logger
}

// lateSender lets the host and the transport be built in either order.
type lateSender struct {
	t atomic.Pointer[cluster.Transport]
}

func (s *lateSender) Send(to string, kind byte, payload []byte) bool {
	t := s.t.Load()
	return t != nil && t.Send(to, kind, payload)
}

// startCluster starts the transport and the raft host of a cluster node.
func startCluster(cfg *config.Config, log *slog.Logger) (*clusterRuntime, error) {
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
	host := replica.NewHost(cfg.Node.ID, ls, replica.HostOptions{Logger: log})
	tr, err := cluster.New(cluster.Config{
		Self:    cfg.Node.ID,
		Listen:  cfg.Cluster.Listen,
		Peers:   peers,
		Handler: host,
		Logger:  log,
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
	log.Info("cluster transport listening", "addr", tr.Addr(), "peers", len(peers))
	return &clusterRuntime{cfg: cfg, tr: tr, host: host, log: log}, nil
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
		return remoteBuffer{r}, nil
	}
	lo := bs.Log
	if lo.RetentionAge > 0 || lo.RetentionBytes > 0 {
		c.log.Warn("retention is not applied to replicated buffers yet; the pipeline's events are kept",
			"pipeline", bs.Pipeline, "partition", bs.Partition)
		lo.RetentionAge, lo.RetentionBytes = 0, 0
	}
	g, err := c.host.Open(replica.GroupOptions{Key: key, Dir: bs.Dir, Replicas: replicas, Log: lo})
	if err != nil {
		return nil, err
	}
	return groupBuffer{g}, nil
}

func (c *clusterRuntime) close() error {
	err := c.host.Close()
	return errors.Join(err, c.tr.Close())
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

// remoteBuffer is a replica.Remote as the node's Buffer.
type remoteBuffer struct{ *replica.Remote }

func (b remoteBuffer) Append(p []byte, f node.AppendFlags) (node.Ack, error) {
	if f&node.AppendLocal != 0 {
		return nil, b.Remote.Truncate(0) // the NOT_LEADER that names the replicas
	}
	return b.Remote.Append(p, f&node.AppendSparse != 0), nil
}

func (remoteBuffer) SetEpoch(int32) {}
func (remoteBuffer) IsLeader() bool { return false }
func (remoteBuffer) Term() uint64   { return 0 }

var (
	_ node.Buffer     = groupBuffer{}
	_ node.Leadership = groupBuffer{}
	_ node.Buffer     = remoteBuffer{}
	_ node.Leadership = remoteBuffer{}
)
