package server

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/meta"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/replica"
	"github.com/sensehq/sense/router"
)

// metaKey names the raft group of the cluster metadata.
const metaKey = "__meta"

// Staleness. A node routes by its routing table only while it can tell the
// table is current: while it leads the metadata log, or its leader is
// alive as far as this node can tell (cluster.go's liveness) and no live
// node says it routes with a newer table than this one. When that has not
// been so for staleAfter, the node refuses new events (NOT_READY, which
// every client retries) until it is again (docs/cluster.md). staleAfter is
// longer than an election, so losing the metadata leader does not stop
// ingestion.
const (
	staleAfter = 2 * time.Second
	staleCheck = 100 * time.Millisecond
)

// metaRuntime is a cluster node's replica of the metadata log, the store
// applying it, and what it changes on the node.
type metaRuntime struct {
	c     *clusterRuntime
	n     *node.Node
	group *replica.Group
	store *meta.Store

	routed    atomic.Uint64 // the routing table version this node routes with
	fresh     atomic.Int64  // Unix nanoseconds when the table was last known current
	propagate prometheus.Histogram
	version   prometheus.GaugeFunc

	// mu guards hubs: the config's hubs, overlaid with the metadata's
	// status and policy when the node routes.
	mu   sync.Mutex
	cfgs []node.HubSpec

	quit chan struct{}
	done chan struct{}
	once sync.Once
}

// openMeta opens this node's replica of the metadata log (a raft group of
// every node of the cluster) and starts applying it to n.
func (c *clusterRuntime) openMeta(n *node.Node) (*metaRuntime, error) {
	g, err := c.openEverywhere(metaKey, "meta")
	if err != nil {
		return nil, fmt.Errorf("open the cluster metadata log: %w", err)
	}
	m := &metaRuntime{c: c, n: n, group: g, cfgs: HubSpecs(c.cfg), quit: make(chan struct{}), done: make(chan struct{})}
	m.fresh.Store(time.Now().UnixNano())
	m.propagate = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sense_routing_change_propagation_seconds",
		Help:    "Time from a cluster metadata change being proposed (on the proposing node's clock) to this node routing with it.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
	m.version = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sense_routing_table_version",
		Help: "The routing table version this node routes with: the offset of the cluster metadata log it has applied.",
	}, func() float64 { return float64(m.routed.Load()) })
	n.Metrics.Registry.MustRegister(m.propagate, m.version)
	m.store = meta.Open(replicatedLog{g, true}, meta.Options{
		Self:    c.cfg.Node.ID,
		Seed:    seedOf(m.cfgs),
		OnApply: m.apply,
		Logger:  c.log,
	})
	go m.watch()
	return m, nil
}

// seedOf is the metadata seed of a config's hubs.
func seedOf(hubs []node.HubSpec) []meta.HubState {
	out := make([]meta.HubState, len(hubs))
	for i, h := range hubs {
		out[i] = meta.HubState{Name: h.Name, Status: h.Status.String(), Deny: h.Deny}
	}
	return out
}

// hubSpecs overlays the config's hubs with the metadata's status and
// policy. A hub the metadata does not know keeps the config's.
func hubSpecs(cfgs []node.HubSpec, st meta.State) []node.HubSpec {
	out := make([]node.HubSpec, len(cfgs))
	for i, h := range cfgs {
		h.Deny = slices.Clone(h.Deny)
		if mh, ok := st.Hub(h.Name); ok && st.Seeded {
			if s, err := router.ParseHubStatus(mh.Status); err == nil {
				h.Status = s
			}
			h.Deny = slices.Clone(mh.Deny)
		}
		out[i] = h
	}
	return out
}

// apply swaps the node's routing table for the metadata's (meta.Options
// OnApply: called in log order).
func (m *metaRuntime) apply(a meta.Applied) {
	if len(a.Changes) > 0 {
		m.mu.Lock()
		hubs := hubSpecs(m.cfgs, a.State)
		m.mu.Unlock()
		if err := m.n.SetHubs(hubs); err != nil {
			m.c.log.Error("the cluster metadata changed but the routing table could not be rebuilt; this node keeps routing by its previous table", "version", a.State.Version, "err", err)
			return
		}
	}
	m.routed.Store(a.State.Version)
	m.c.members.SetTable(a.State.Version)
	now := time.Now()
	for _, ch := range a.Changes {
		m.propagate.Observe(now.Sub(time.Unix(0, ch.At)).Seconds())
		m.c.log.Info("routing changed by the cluster metadata", "op", ch.Op, "hub", ch.Hub, "status", ch.Status,
			"deny", ch.Deny, "allow", ch.Allow, "by", ch.By, "version", a.State.Version)
	}
}

// watch fences the node while its routing table may be stale.
func (m *metaRuntime) watch() {
	defer close(m.done)
	t := time.NewTicker(staleCheck)
	defer t.Stop()
	for {
		select {
		case <-m.quit:
			return
		case <-t.C:
		}
		now := time.Now()
		if why := m.staleness(); why == "" {
			m.fresh.Store(now.UnixNano())
			m.n.Unfence()
		} else if now.Sub(time.Unix(0, m.fresh.Load())) > staleAfter {
			m.n.Fence(why + "; this node refuses new events until it can tell its routing table is current (retry, or send to another node)")
		}
	}
}

// staleness says why this node cannot tell its routing table is current,
// or "" when it can.
func (m *metaRuntime) staleness() string {
	g := m.group
	leader := g.Leader()
	self := m.c.cfg.Node.ID
	switch {
	case leader == "":
		return "the cluster metadata log has no leader"
	case leader != self && !m.c.alive(leader):
		return fmt.Sprintf("node %s, which leads the cluster metadata log, is not reachable from this node", leader)
	}
	mine := m.routed.Load()
	for _, p := range m.c.cfg.Cluster.Peers {
		if p.ID == self || !m.c.alive(p.ID) {
			continue
		}
		if mb, ok := m.c.members.Get(p.ID); ok && mb.Table > mine {
			return fmt.Sprintf("node %s routes with table version %d, this node with %d, and the metadata log has not brought it the change", p.ID, mb.Table, mine)
		}
	}
	return ""
}

// propose changes the metadata and returns once this node routes with the
// change.
func (m *metaRuntime) propose(c meta.Command) (meta.State, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.store.Propose(ctx, c)
}

// reconcile proposes what a reloaded config file changed in its hubs'
// status and policy, compared with the file as it was: hubs the file did
// not change keep what the metadata says (changes from the CLI survive a
// reload).
func (m *metaRuntime) reconcile(cfg *config.Config) error {
	next := HubSpecs(cfg)
	m.mu.Lock()
	prev := m.cfgs
	m.cfgs = next
	m.mu.Unlock()
	for _, h := range next {
		i := slices.IndexFunc(prev, func(p node.HubSpec) bool { return p.Name == h.Name })
		if i >= 0 && prev[i].Status == h.Status && slices.Equal(sortedCopy(prev[i].Deny), sortedCopy(h.Deny)) {
			continue
		}
		if _, err := m.propose(meta.Command{Op: meta.OpHubSet, Hub: h.Name, Status: h.Status.String(), Deny: h.Deny}); err != nil {
			return fmt.Errorf("reconcile hub %s with the cluster metadata: %w", h.Name, err)
		}
	}
	// Hubs the file gained take the metadata's state once they are in it;
	// until then the node routes them by the file.
	return m.n.SetHubs(hubSpecs(next, m.store.State()))
}

func sortedCopy(v []string) []string {
	v = slices.Clone(v)
	slices.Sort(v)
	return v
}

func (m *metaRuntime) close() {
	m.once.Do(func() {
		close(m.quit)
		<-m.done
		m.store.Close()
	})
}
