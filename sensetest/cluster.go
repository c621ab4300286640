package sensetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/internal/loopback"
	"github.com/sensehq/sense/server"
)

// Cluster is N in-process nodes of one cluster (n1, n2, ...) on loopback
// ports fixed at StartCluster, so that a node stopped and started again
// keeps its addresses and its data directory.
type Cluster struct {
	t    testing.TB
	cfgs []*config.Config
	// Nodes are the running servers, by index (node n<i+1>); nil while a
	// node is stopped.
	Nodes []*server.Server
	// links[i][j] carries node i's cluster traffic to node j (WithLinks).
	links [][]*Link
}

// ClusterOption changes how StartCluster builds the cluster.
type ClusterOption func(*clusterOptions)

type clusterOptions struct {
	links  bool
	voters []string
	mods   []func(i int, cfg *config.Config)
}

// WithNodeConfig changes node i's configuration (index i is node
// n<i+1>) before it is validated and the node starts: for settings that
// differ per node, such as each node's certificate in cluster.tls.
func WithNodeConfig(mod func(i int, cfg *config.Config)) ClusterOption {
	return func(o *clusterOptions) { o.mods = append(o.mods, mod) }
}

// WithLinks puts a Link (an in-process proxy that can be cut or delayed)
// on every directed path of cluster traffic between two nodes: each node's
// config names, as its peers' addresses, the proxies that lead to them.
func WithLinks() ClusterOption { return func(o *clusterOptions) { o.links = true } }

// WithMetadataVoters names the voters of the cluster metadata log
// (cluster.metadata_voters); the other nodes are learners.
func WithMetadataVoters(ids ...string) ClusterOption {
	return func(o *clusterOptions) { o.voters = ids }
}

// StartCluster starts n nodes of one cluster. body is the YAML every node's
// configuration shares besides its node and cluster sections (jurisdictions,
// hubs, pipelines). The nodes stop when the test ends.
func StartCluster(t testing.TB, n int, body string, opts ...ClusterOption) *Cluster {
	t.Helper()
	var o clusterOptions
	for _, f := range opts {
		f(&o)
	}
	c := &Cluster{t: t, Nodes: make([]*server.Server, n)}
	// Every address at once, so that no two are the same port.
	addrs, err := loopback.Addrs(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	listen := addrs[:n]
	clients := addrs[n:]
	if o.links {
		c.links = make([][]*Link, n)
		for i := range n {
			c.links[i] = make([]*Link, n)
			for j := range n {
				if i != j {
					c.links[i][j] = NewLink(t, fmt.Sprintf("n%d", i+1), fmt.Sprintf("n%d", j+1), listen[j])
				}
			}
		}
	}
	for i := range n {
		var peers []string
		for j := range n {
			addr := listen[j]
			if o.links && i != j {
				addr = c.links[i][j].Addr()
			}
			peers = append(peers, fmt.Sprintf("{id: n%d, addr: %s}", j+1, addr))
		}
		yaml := fmt.Sprintf("node: {id: n%d}\ncluster: {listen: %s, peers: [%s]}\n%s", i+1, listen[i], strings.Join(peers, ", "), body)
		cfg, err := config.Parse(fmt.Sprintf("n%d.yaml", i+1), []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Node.DataDir = t.TempDir()
		cfg.Listeners.Native = clients[3*i]
		cfg.Listeners.HTTP = clients[3*i+1]
		cfg.Listeners.Kafka = clients[3*i+2]
		cfg.Listeners.QUIC = config.ListenerOff
		cfg.Cluster.MetadataVoters = o.voters
		for _, mod := range o.mods {
			mod(i, cfg)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	for i := range n {
		c.Start(i)
	}
	t.Cleanup(func() {
		for i := range c.Nodes {
			c.Stop(i)
		}
	})
	return c
}

// Start starts node i (again), on its addresses and data.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	if c.Nodes[i] != nil {
		c.t.Fatalf("sensetest: node n%d is running already", i+1)
	}
	srv, err := server.Start(c.cfgs[i], slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		c.t.Fatalf("start node n%d: %v", i+1, err)
	}
	c.Nodes[i] = srv
}

// Stop shuts node i down (gracefully: it hands its leaderships over); a
// stopped node is left alone.
func (c *Cluster) Stop(i int) {
	if c.Nodes[i] == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.Nodes[i].Shutdown(ctx)
	c.Nodes[i] = nil
}

// KafkaAddrs returns every node's Kafka address, stopped ones included.
func (c *Cluster) KafkaAddrs() []string {
	var out []string
	for _, cfg := range c.cfgs {
		out = append(out, cfg.Listeners.Kafka)
	}
	return out
}

// Config returns node i's config: a test may change it while the node is
// stopped, and Start uses it.
func (c *Cluster) Config(i int) *config.Config { return c.cfgs[i] }

// NativeAddr returns node i's native protocol address.
func (c *Cluster) NativeAddr(i int) string { return c.cfgs[i].Listeners.Native }

// HTTPAddr returns node i's HTTP address.
func (c *Cluster) HTTPAddr(i int) string { return c.cfgs[i].Listeners.HTTP }

// Leader waits up to timeout for a running node to lead partition of
// pipeline and returns its index, or -1.
func (c *Cluster) Leader(pipeline string, partition int32, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for i, s := range c.Nodes {
			if s == nil {
				continue
			}
			if l, ok := s.Node.Leadership(pipeline, partition); ok && l.IsLeader() {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -1
}

// Link returns the link that carries node from's cluster traffic to node
// to (indexes); the cluster must have been started WithLinks.
func (c *Cluster) Link(from, to int) *Link {
	if c.links == nil {
		c.t.Fatal("sensetest: Link on a cluster started without WithLinks")
	}
	return c.links[from][to]
}

// Isolate cuts every link to and from node i; Rejoin heals them.
func (c *Cluster) Isolate(i int) { c.eachLinkOf(i, (*Link).Cut) }

// Rejoin heals every link to and from node i.
func (c *Cluster) Rejoin(i int) { c.eachLinkOf(i, (*Link).Heal) }

func (c *Cluster) eachLinkOf(i int, f func(*Link)) {
	for j := range c.Nodes {
		if j != i {
			f(c.Link(i, j))
			f(c.Link(j, i))
		}
	}
}
