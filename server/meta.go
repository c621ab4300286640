package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/meta"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/replica"
	"github.com/sensehq/sense/result"
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
	mig       *migrator // keeps its steps in the metadata log (metaLedger)

	// mu guards cfgs, the config's hubs (overlaid with the metadata's
	// status and policy when the node routes), and history.
	mu      sync.Mutex
	cfgs    []node.HubSpec
	history []RoutingChange // the last historyLen changes applied, oldest first

	// pidMu guards the block of producer ids this node hands out:
	// [pidNext, pidEnd).
	pidMu           sync.Mutex
	pidNext, pidEnd int64

	quit     chan struct{}
	done     chan struct{} // watch ended
	reported chan struct{} // reportLeaders ended
	// openedAt is the metadata log's high watermark as this node opened
	// it; caughtUp is set (by the applier) once it applied that far, and
	// lifts the hold on retention.
	openedAt int64
	caughtUp bool
	// registry is this node's jurisdiction registry; misfit says how it
	// differs from the cluster's (the seed's), "" while it does not: such
	// a node refuses events (staleness).
	registry *meta.Registry
	misfit   atomic.Pointer[string]
	// ctx ends at close: the proposals of this runtime's own goroutines
	// take it.
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

// openMeta opens this node's replica of the metadata log (a raft group of
// every node of the cluster: the metadata voters vote, the others are
// learners) and starts applying it to n.
func (c *clusterRuntime) openMeta(n *node.Node) (*metaRuntime, error) {
	g, err := c.openEverywhere(metaKey, "meta", c.cfg.Cluster.MetadataVoterIDs()...)
	if err != nil {
		return nil, fmt.Errorf("open the cluster metadata log: %w", err)
	}
	m := &metaRuntime{c: c, n: n, group: g, cfgs: HubSpecs(c.cfg), quit: make(chan struct{}), done: make(chan struct{}), reported: make(chan struct{})}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.registry = registryOf(n.Registry())
	m.openedAt = g.HighWatermark()
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
	m.mig = newMigrator(n, c.log, metaLedger{m}, false)
	m.store = meta.Open(replicatedLog{g, true}, meta.Options{
		Self:     c.cfg.Node.ID,
		Seed:     seedOf(m.cfgs),
		Registry: m.registry,
		OnApply:  m.apply,
		Logger:   c.log,
	})
	c.metaStore.Store(m.store)
	go m.watch()
	m.mig.start()
	go m.reportLeaders()
	return m, nil
}

// registryOf is a jurisdiction registry as the metadata keeps it.
func registryOf(reg *jurisdiction.Registry) *meta.Registry {
	r := &meta.Registry{Codes: reg.Codes()}
	for _, g := range reg.Groups() {
		mask, _ := reg.Group(g)
		var codes []string
		for bit := range 64 {
			if mask.Has(bit) {
				c, _ := reg.Code(bit)
				codes = append(codes, c)
			}
		}
		if r.Groups == nil {
			r.Groups = map[string][]string{}
		}
		r.Groups[g] = codes
	}
	return r
}

// seedOf is the metadata seed of a config's hubs.
func seedOf(hubs []node.HubSpec) []meta.HubState {
	out := make([]meta.HubState, len(hubs))
	for i, h := range hubs {
		out[i] = meta.HubState{Name: h.Name, Status: h.Status.String(), Deny: h.Deny, Jurisdiction: h.Jurisdiction}
	}
	return out
}

// hubSpecs overlays the config's hubs with the metadata's status, policy
// and designation. A hub the metadata does not know keeps the config's.
func hubSpecs(cfgs []node.HubSpec, st meta.State) []node.HubSpec {
	out := make([]node.HubSpec, len(cfgs))
	for i, h := range cfgs {
		h.Deny = slices.Clone(h.Deny)
		if mh, ok := st.Hub(h.Name); ok && st.Seeded {
			if s, err := router.ParseHubStatus(mh.Status); err == nil {
				h.Status = s
			}
			h.Deny = slices.Clone(mh.Deny)
			if mh.Jurisdiction != "" {
				h.Jurisdiction = mh.Jurisdiction
			}
			h.Former = slices.Clone(mh.Former)
		}
		out[i] = h
	}
	return out
}

// apply swaps the node's routing table for the metadata's, and creates
// and deletes the pipelines it says (meta.Options OnApply: called in log
// order).
func (m *metaRuntime) apply(a meta.Applied) {
	if r := a.State.Registry; r != nil && m.misfit.Load() == nil {
		if diff := m.registry.Diff(r); diff != "" {
			why := "this node's jurisdictions differ from the cluster's: " + diff + "; give every node the same jurisdictions and groups in its config file, in the same order, and restart it"
			m.misfit.Store(&why)
			m.c.log.Error("this node refuses events: "+why, "version", a.State.Version)
		}
	}
	m.applyPipelines(a.Changes, a.State)
	if aclsChanged(a.Changes) {
		if f := m.c.aclsChanged.Load(); f != nil {
			(*f)()
		}
	}
	// Leader reports move the version but change no route: they are left
	// out of the routing history, the propagation metric and the log.
	a.Changes = slices.DeleteFunc(slices.Clone(a.Changes), func(c meta.Command) bool { return c.Op == meta.OpLeaders })
	if hubChanged(a.Changes) {
		m.mu.Lock()
		hubs := hubSpecs(m.cfgs, a.State)
		m.mu.Unlock()
		if err := m.n.SetHubs(hubs); err != nil {
			m.c.log.Error("the cluster metadata changed but the routing table could not be rebuilt; this node keeps routing by its previous table", "version", a.State.Version, "err", err)
			return
		}
	}
	if !m.caughtUp && a.State.Version >= uint64(m.openedAt) {
		// The limits of every pipeline are now at least as recent as
		// when this node started: its leaders may enforce them.
		m.caughtUp = true
		m.c.host.HoldRetention(false)
	}
	m.routed.Store(a.State.Version)
	m.c.members.SetTable(a.State.Version)
	now := time.Now()
	if len(a.Changes) > 0 {
		m.mu.Lock()
		if len(m.history) == historyLen {
			m.history = append(m.history[:0], m.history[1:]...)
		}
		m.history = append(m.history, RoutingChange{Version: a.State.Version, Proposed: time.Unix(0, a.Changes[len(a.Changes)-1].At), Routed: now})
		m.mu.Unlock()
	}
	for _, ch := range a.Changes {
		m.propagate.Observe(now.Sub(time.Unix(0, ch.At)).Seconds())
		m.c.log.Info("routing changed by the cluster metadata", "op", ch.Op, "hub", ch.Hub, "status", ch.Status,
			"deny", ch.Deny, "allow", ch.Allow, "by", ch.By, "version", a.State.Version)
	}
}

// historyLen bounds metaRuntime.history.
const historyLen = 1024

// RoutingChange is one change of the cluster metadata as this node applied
// it: the routing table version it made, when it was proposed (on the
// proposer's clock) and when this node started routing with it.
type RoutingChange struct {
	Version          uint64
	Proposed, Routed time.Time
}

// RoutingHistory returns the last changes of the cluster metadata this node
// routes with, oldest first (nil in dev mode): for measuring propagation.
func (s *Server) RoutingHistory() []RoutingChange {
	if s.cluster == nil || s.cluster.meta == nil {
		return nil
	}
	m := s.cluster.meta
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.history)
}

// hubChanged reports whether any of cs changes hubs.
func hubChanged(cs []meta.Command) bool {
	for _, c := range cs {
		switch c.Op {
		case meta.OpSeed, meta.OpHubStatus, meta.OpHubPolicy, meta.OpHubSet, meta.OpDesignate:
			return true
		}
	}
	return false
}

// applyPipelines applies the pipeline commands of one batch in log order,
// except that the changes of settings of a pipeline that follow one
// another (no creation or deletion of it in between) are merged and
// applied once, as the last of them leaves the pipeline: a node replaying
// the log at start, which reads it in large batches, neither rewrites its
// catalog once per change nor routes, for a moment, by settings changed
// since. (A node down through several changes still applies those of
// each batch it reads in turn. The retention of replicated buffers is
// enforced by their leaders only, through the buffer's log, and not before
// this node has applied the metadata log as far as it stood when it
// opened (see apply), so that no node deletes events by a limit a later
// change lifted.)
func (m *metaRuntime) applyPipelines(cs []meta.Command, st meta.State) {
	pending := map[string]*meta.Command{} // merged pipeline.alter, by pipeline
	var order []string                    // pipelines of pending, by first change
	flush := func(name string) {
		if c := pending[name]; c != nil {
			m.applyPipeline(*c, st)
			delete(pending, name)
		}
	}
	for _, c := range cs {
		switch c.Op {
		case meta.OpAlter:
			prev := pending[c.Pipeline]
			if prev == nil {
				pending[c.Pipeline] = &c
				order = append(order, c.Pipeline)
				continue
			}
			merged, err := mergeChanges(prev.Spec, c.Spec)
			if err != nil { // applied apart, and said why by applyPipeline
				flush(c.Pipeline)
				pending[c.Pipeline] = &c
				order = append(order, c.Pipeline)
				continue
			}
			c.Spec = merged
			pending[c.Pipeline] = &c
		case meta.OpCreate, meta.OpDelete:
			flush(c.Pipeline)
			m.applyPipeline(c, st)
		}
	}
	for _, name := range order {
		flush(name)
	}
}

// mergeChanges returns the change of settings that a then b make.
func mergeChanges(a, b []byte) ([]byte, error) {
	var ca, cb node.PipelineChange
	if err := json.Unmarshal(a, &ca); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &cb); err != nil {
		return nil, err
	}
	return json.Marshal(ca.Then(cb))
}

// applyPipeline creates, deletes or alters on this node the pipeline of a
// pipeline.create, pipeline.delete or pipeline.alter command. st is the
// state after the whole batch the command came in: a pipeline created and
// deleted within it (replaying the log at start) is not created at all,
// nor altered.
func (m *metaRuntime) applyPipeline(c meta.Command, st meta.State) {
	switch c.Op {
	case meta.OpCreate:
		if !st.HasPipeline(c.Pipeline) {
			return
		}
		var spec node.PipelineSpec
		if err := json.Unmarshal(c.Spec, &spec); err != nil || spec.Name != c.Pipeline {
			m.c.log.Error("a pipeline of the cluster metadata cannot be read; this node does not create it", "pipeline", c.Pipeline, "err", err)
			return
		}
		if err := m.n.ApplyCreatePipeline(spec); err != nil && !errors.Is(err, node.ErrPipelineExists) {
			m.c.log.Error("a pipeline of the cluster metadata cannot be created on this node", "pipeline", c.Pipeline, "err", err)
			return
		}
		m.c.log.Info("pipeline created by the cluster metadata", "pipeline", c.Pipeline, "by", c.By)
	case meta.OpDelete:
		if err := m.n.ApplyDeletePipeline(c.Pipeline); err != nil && !errors.Is(err, node.ErrUnknownPipeline) {
			m.c.log.Error("a pipeline deleted by the cluster metadata cannot be deleted on this node", "pipeline", c.Pipeline, "err", err)
			return
		}
		m.c.log.Info("pipeline deleted by the cluster metadata", "pipeline", c.Pipeline, "by", c.By)
	case meta.OpAlter:
		if !st.HasPipeline(c.Pipeline) {
			return
		}
		var ch node.PipelineChange
		if err := json.Unmarshal(c.Spec, &ch); err != nil {
			m.c.log.Error("a change of pipeline settings in the cluster metadata cannot be read; this node keeps the old settings", "pipeline", c.Pipeline, "err", err)
			return
		}
		if err := m.n.ApplyAlterPipeline(c.Pipeline, ch); err != nil {
			m.c.log.Error("a change of pipeline settings in the cluster metadata cannot be applied on this node", "pipeline", c.Pipeline, "change", ch.String(), "err", err)
			return
		}
		m.c.log.Info("pipeline settings changed by the cluster metadata", "pipeline", c.Pipeline, "change", ch.String(), "by", c.By)
	}
}

// CreatePipeline is node.Proposer: the pipeline goes through the metadata
// log to every node.
func (m *metaRuntime) CreatePipeline(spec node.PipelineSpec) error {
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if _, err := m.propose(meta.Command{Op: meta.OpCreate, Pipeline: spec.Name, Spec: b}); err != nil {
		if st := m.store.State(); errors.Is(err, meta.ErrInvalid) && st.HasPipeline(spec.Name) {
			return fmt.Errorf("%w: %q", node.ErrPipelineExists, spec.Name)
		}
		return metaError(err)
	}
	if _, ok := m.n.Pipeline(spec.Name); !ok {
		return result.New(result.StorageError, fmt.Sprintf("pipeline %q is in the cluster metadata, but this node could not open its buffers; its log says why", spec.Name))
	}
	return nil
}

// DeletePipeline is node.Proposer.
func (m *metaRuntime) DeletePipeline(name string) error {
	if _, err := m.propose(meta.Command{Op: meta.OpDelete, Pipeline: name}); err != nil {
		return metaError(err)
	}
	return nil
}

// AlterPipeline is node.Proposer: the change goes through the metadata
// log to every node, which applies it in log order.
func (m *metaRuntime) AlterPipeline(name string, ch node.PipelineChange) error {
	b, err := json.Marshal(ch)
	if err != nil {
		return err
	}
	if _, err := m.propose(meta.Command{Op: meta.OpAlter, Pipeline: name, Spec: b}); err != nil {
		return metaError(err)
	}
	return nil
}

// producerID is node.Options.ProducerIDs: the next id of this node's
// block, a new block from the metadata log when it is used up.
func (m *metaRuntime) producerID() (int64, error) {
	m.pidMu.Lock()
	defer m.pidMu.Unlock()
	if m.pidNext > 0 && m.pidNext < m.pidEnd {
		id := m.pidNext
		m.pidNext++
		return id, nil
	}
	// A block whose allocation was answered with a retriable error (an
	// append forwarded to a leader that became unreachable: its outcome
	// is unknown) is asked for again: a block allocated twice only leaves
	// ids unused.
	st, err := m.propose(meta.Command{Op: meta.OpPIDs})
	for wait, deadline := 50*time.Millisecond, time.Now().Add(10*time.Second); err != nil && result.CodeOf(err).Retriable() && time.Now().Before(deadline); wait = min(2*wait, time.Second) {
		select {
		case <-time.After(wait):
		case <-m.quit:
			return -1, metaError(err)
		}
		st, err = m.propose(meta.Command{Op: meta.OpPIDs})
	}
	if err != nil {
		return -1, metaError(err)
	}
	first, ok := st.PIDBlocks[m.c.cfg.Node.ID]
	if !ok {
		return -1, result.New(result.NotReady, "the cluster metadata gave this node no block of producer ids; retry")
	}
	m.pidNext, m.pidEnd = first+1, first+meta.PIDBlock
	return first, nil
}

// metaLedger keeps the migrator's steps in the cluster metadata log: a
// plan or a done is a proposal, acted on once this node has applied it.
type metaLedger struct{ m *metaRuntime }

func (l metaLedger) Move(source string) (meta.Move, bool)  { return l.m.store.Move(source) }
func (l metaLedger) Hub(name string) (meta.HubState, bool) { return l.m.store.Hub(name) }
func (l metaLedger) Version() uint64                       { return l.m.routed.Load() }
func (l metaLedger) Moves() []meta.Move                    { return l.m.store.State().MoveLog }

func (l metaLedger) Plan(mv meta.Move) (meta.Move, error) {
	st, err := l.m.propose(meta.Command{Op: meta.OpMovePlan, Move: &mv})
	if err != nil {
		return meta.Move{}, err
	}
	return st.Moves[mv.Source], nil
}

func (l metaLedger) Done(mv meta.Move) error {
	_, err := l.m.propose(meta.Command{Op: meta.OpMoveDone, Move: &mv})
	return err
}

// lateProposer is the node's Proposer before the metadata runtime exists
// (it needs the node): changes are refused as not ready until then.
type lateProposer struct{ m atomic.Pointer[metaRuntime] }

func (p *lateProposer) CreatePipeline(spec node.PipelineSpec) error {
	if m := p.m.Load(); m != nil {
		return m.CreatePipeline(spec)
	}
	return result.New(result.NotReady, "this node is starting: it has not opened the cluster metadata yet; retry")
}

func (p *lateProposer) producerID() (int64, error) {
	if m := p.m.Load(); m != nil {
		return m.producerID()
	}
	return -1, result.New(result.NotReady, "this node is starting: it has not opened the cluster metadata yet; retry")
}

func (p *lateProposer) AlterPipeline(name string, ch node.PipelineChange) error {
	if m := p.m.Load(); m != nil {
		return m.AlterPipeline(name, ch)
	}
	return result.New(result.NotReady, "this node is starting: it has not opened the cluster metadata yet; retry")
}

func (p *lateProposer) DeletePipeline(name string) error {
	if m := p.m.Load(); m != nil {
		return m.DeletePipeline(name)
	}
	return result.New(result.NotReady, "this node is starting: it has not opened the cluster metadata yet; retry")
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
	if why := m.misfit.Load(); why != nil {
		return *why
	}
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
		if i >= 0 && prev[i].Jurisdiction != h.Jurisdiction {
			if _, err := m.propose(meta.Command{Op: meta.OpDesignate, Hub: h.Name, Jurisdiction: h.Jurisdiction, From: prev[i].Jurisdiction}); err != nil {
				return fmt.Errorf("re-designate hub %s in the cluster metadata: %w", h.Name, err)
			}
		}
		if i >= 0 && prev[i].Status == h.Status && slices.Equal(sortedCopy(prev[i].Deny), sortedCopy(h.Deny)) {
			continue
		}
		if _, err := m.propose(meta.Command{Op: meta.OpHubSet, Hub: h.Name, Status: h.Status.String(), Deny: h.Deny, Jurisdiction: h.Jurisdiction}); err != nil {
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
		m.cancel()
		<-m.done
		m.mig.stop()
		<-m.reported
		m.store.Close()
	})
}
