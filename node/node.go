// Package node is one Sense process's engine, below the network edges: it
// holds the hubs of its configuration, the pipelines (the catalog) and
// their buffers, the routing table, and the produce and read paths every
// edge (native, QUIC, HTTP, Kafka) calls. It holds nothing else: consumer
// groups are package group's, the admin API is served by package server
// on the node's methods, and the edges decode and encode their protocols.
//
// A buffer is the Buffer interface this package declares (buffer.go): a
// seglog.Log on one node today, a raft-replicated log later. Edges never
// hold one; they ask the node, which looks a partition up once per
// request. Layering: edges -> node -> Buffer -> seglog, and everything
// under the data directory goes through Options.FS (a vfs.FS), so the
// crash-simulating and fault-injecting file systems test the whole engine.
//
// In dev mode one node hosts every hub of its configuration, each in its own
// sub-directory of the data directory:
//
//	<data_dir>/pipelines.log               the pipeline catalog, a log of changes (docs/storage.md)
//	<data_dir>/hubs/<hub>/<pipeline>-<partition>/   one buffer's log
//
// Produce validates each event, resolves its mask and priority, routes it,
// groups the events of a request by buffer into one record batch each
// (with the routing headers sense.j and sense.p on every record), and
// appends those batches; it answers per event with a partition and offset
// or a result code. Nothing is written for an event that has no compliant
// hub. AppendRaw stores a Kafka producer's batch after checking every
// record against the partition's hub and lane, with the same headers.
package node

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/internal/cow"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/router"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
)

// HubSpec configures a hub.
type HubSpec struct {
	Name         string
	Jurisdiction string // a registered code, or "*"
	Status       router.HubStatus
	Deny         []string // pipelines the hub's policy forbids
	// Former are the jurisdictions the hub was designated before (the
	// cluster metadata's re-designations), oldest first: what it stored
	// under them and the current one does not allow awaits migration.
	// SetHubs takes a new Jurisdiction only with the old one in Former.
	Former []string
}

// Options configure a node.
type Options struct {
	DataDir string
	// FS is the file system under DataDir: the catalog, every buffer and
	// pipeline deletion go through it. Default vfs.Default.
	FS           vfs.FS
	Registry     *jurisdiction.Registry
	Hubs         []HubSpec
	Pipelines    []PipelineSpec // declared in the config file
	Durability   seglog.Durability
	SegmentBytes int64
	// MaxOpenFiles bounds the segment files kept open by all the node's
	// logs (a seglog.Files cache they share); 0 is half the process's
	// open-file limit, at most 4096.
	MaxOpenFiles int
	// PreallocateBytes keeps each buffer's active segment this far ahead
	// of its data in written zeros (seglog.Options.PreallocateBytes); 0
	// turns it off.
	PreallocateBytes int64
	// GroupCommitInterval paces the group commits of each buffer of the
	// low and medium lanes while appends keep arriving
	// (seglog.Options.GroupCommitInterval); 0 syncs back to back.
	// Critical buffers are never paced.
	GroupCommitInterval time.Duration
	MemoryLimit         int64   // ingress bytes held at once; default 256 MiB
	ShedLowAt           float64 // fraction of MemoryLimit past which low events are refused; default 0.5
	ShedMediumAt        float64 // same for medium; default 0.8
	// TargetDelay is the queueing delay a low or medium lane may keep for
	// a DelayInterval before part of its requests are refused (see
	// lanes); defaults DefaultTargetDelay and DefaultDelayInterval.
	TargetDelay   time.Duration
	DelayInterval time.Duration
	AutoCreate    bool // create unknown pipelines on first produce
	MaxEventBytes int  // key + value + headers; default 1 MiB
	// DefaultPartitions is the partition count of a pipeline created
	// without one (on first produce, a Kafka CreateTopics with -1, an
	// admin create without partitions): 0 is the standard layout of one
	// buffer per hub and lane; N > 0 lays N partitions over the hubs and
	// the three lanes (Spread).
	DefaultPartitions int
	AlertWebhook      string // POSTed on NO_COMPLIANT_HUB
	// PipelineDeleted, when set, is called by DeletePipeline once a
	// pipeline's buffers are gone, under the node's lock (the server
	// forgets consumer groups' commits on it there). An error is reported
	// to DeletePipeline's caller; the pipeline stays deleted.
	PipelineDeleted func(name string) error
	// FixedPipelines refuses to grow pipelines at run time, and to create
	// or delete them unless Proposer is set (a cluster node).
	FixedPipelines bool
	// Proposer, when set, takes the creation and deletion of pipelines
	// and changes of their settings (from the admin API, Kafka
	// CreateTopics, DeleteTopics and AlterConfigs): a cluster's metadata
	// log, which every node applies with ApplyCreatePipeline,
	// ApplyDeletePipeline and ApplyAlterPipeline.
	Proposer Proposer
	// ProducerIDs, when set, hands out producer ids in place of the
	// node's clock (a cluster's, from blocks of its metadata log).
	ProducerIDs func() (int64, error)
	// OpenBuffer, when set, opens the node's buffers in place of
	// OpenSegmentBuffer: a cluster's replicated buffers.
	OpenBuffer func(BufferSpec) (Buffer, error)
	Logger     *slog.Logger
}

// BufferSpec is one buffer the node opens: a pipeline's partition in a
// hub, its directory and the options of its log.
type BufferSpec struct {
	Pipeline  string
	Hub       string
	Partition int32
	Dir       string
	Log       seglog.Options
}

func (o *Options) defaults() error {
	if o.DataDir == "" {
		o.DataDir = "./data"
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.DefaultPartitions < 0 || o.DefaultPartitions > MaxPartitions {
		return fmt.Errorf("node: DefaultPartitions %d outside [0, %d]", o.DefaultPartitions, MaxPartitions)
	}
	if o.Registry == nil {
		return errors.New("node: Options.Registry is required")
	}
	if len(o.Hubs) == 0 {
		return errors.New("node: at least one hub is required")
	}
	if o.MemoryLimit == 0 {
		o.MemoryLimit = 256 << 20
	}
	if o.ShedLowAt == 0 {
		o.ShedLowAt = 0.5
	}
	if o.ShedMediumAt == 0 {
		o.ShedMediumAt = 0.8
	}
	if o.MaxEventBytes == 0 {
		o.MaxEventBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxOpenFiles < 0 {
		return fmt.Errorf("node: MaxOpenFiles %d is negative", o.MaxOpenFiles)
	}
	if o.MaxOpenFiles == 0 {
		o.MaxOpenFiles = defaultMaxOpenFiles()
	}
	return nil
}

// defaultMaxOpenFiles is half the process's open-file limit, at most 4096
// and at least 16: the other half is for sockets, index, checkpoint and
// catalog files.
func defaultMaxOpenFiles() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	return int(min(4096, max(16, lim.Cur/2)))
}

// pipeline is a pipeline's live state: its spec and its buffers' logs, by
// partition.
type pipeline struct {
	spec   PipelineSpec
	routes *router.Routes
	bufs   []Buffer // by partition
	// refused is set when the pipeline's buffers could not be opened:
	// every partition is it.
	refused *refusedBuffer
	mask    jurisdiction.Mask // default mask
	prio    event.Priority    // default priority
}

// pipeline returns the live pipeline of that name, or nil.
func (s *state) pipeline(name string) *pipeline {
	p, _ := s.pipelines.Get(name)
	return p
}

// state is an immutable snapshot swapped atomically on any change.
type state struct {
	table     *router.Table
	pipelines cow.Map[*pipeline]
	views     sync.Map // name -> *view, resolved on first use (view.go)
}

// Node is the engine of one sense process.
type Node struct {
	opts    Options
	log     *slog.Logger
	reg     *jurisdiction.Registry
	Metrics *Metrics
	files   *seglog.Files // the open segment files of every log
	budget  *budget
	// checkBudget bounds the memory of decompressing Kafka batches to
	// check them (AppendRaw).
	checkBudget *budget
	lanes       *lanes
	alerts      *alerter

	mu   sync.Mutex // serializes changes: pipeline creation, reloads
	cat  *catalog
	hubs []HubSpec
	bufs map[string]Buffer // by directory
	// leftovers are pipelines not in the catalog that may have buffer
	// directories on disk (findLeftovers).
	leftovers map[string]bool
	version   uint64

	st     atomic.Pointer[state]
	spread atomic.Uint64
	// fence, when set, refuses every new event with NOT_READY and says
	// why: a cluster node whose routing table may be stale (Fence).
	fence  atomic.Pointer[string]
	closed atomic.Bool

	// txnIdx holds each buffer's transaction index (txn.go), by Buffer.
	txnIdx sync.Map
}

// Open opens (recovering) every buffer of every known pipeline.
func Open(opts Options) (*Node, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if err := opts.FS.MkdirAll(opts.DataDir); err != nil {
		return nil, fmt.Errorf("node: create data directory %s: %w", opts.DataDir, err)
	}
	cat, err := loadCatalog(opts.FS, opts.DataDir, opts.Logger)
	if err != nil {
		return nil, err
	}
	n := &Node{
		opts:      opts,
		log:       opts.Logger,
		reg:       opts.Registry,
		Metrics:   newMetrics(),
		files:     seglog.NewFiles(opts.MaxOpenFiles),
		cat:       cat,
		hubs:      opts.Hubs,
		bufs:      map[string]Buffer{},
		leftovers: map[string]bool{},
	}
	n.budget = newBudget(opts.MemoryLimit, opts.ShedLowAt, opts.ShedMediumAt)
	n.checkBudget = newBudget(max(opts.MemoryLimit/2, batch.MaxDecompressed), 1, 1)
	n.Metrics.watchBudget(n.budget)
	n.lanes = newLanes(opts.TargetDelay, opts.DelayInterval)
	n.Metrics.watchLanes(n.lanes)
	n.Metrics.watchFiles(n.files)
	n.mu.Lock()
	defer n.mu.Unlock()
	changed := cat.migrated
	for _, p := range opts.Pipelines {
		p.Declared = true
		if old := cat.find(p.Name); old != nil {
			if old.Slots != nil {
				return nil, fmt.Errorf("node: pipeline %q has an explicit layout of %d partitions on disk (it was created with a partition count or grew), the config declares %d per hub and lane; remove it from the config's pipelines",
					p.Name, len(old.Slots), p.Partitions)
			}
			if old.Partitions != p.Partitions {
				return nil, fmt.Errorf("node: pipeline %q has %d partitions per hub and lane on disk, the config says %d; partition counts cannot change: restore the old value",
					p.Name, old.Partitions, p.Partitions)
			}
			hubs := old.Hubs
			*old = p
			old.Hubs = hubs
			changed = true
			continue
		}
		p.Created = time.Now().UTC()
		cat.add(p)
		changed = true
	}
	if err := n.layoutHubs(&changed); err != nil {
		return nil, err
	}
	if err := n.findLeftovers(); err != nil {
		return nil, err
	}
	if changed {
		if err := cat.save(); err != nil {
			return nil, err
		}
	}
	if err := n.rebuildLocked(); err != nil {
		n.closeLogs()
		return nil, err
	}
	// Last, so that a failed Open leaves no goroutine behind.
	n.alerts = newAlerter(opts.AlertWebhook, n.log)
	return n, nil
}

// layoutHubs checks that each pipeline's recorded hub order is a prefix of
// the configured hubs (partition numbers depend on it) and appends new hubs.
func (n *Node) layoutHubs(changed *bool) error {
	names := make([]string, len(n.hubs))
	for i, h := range n.hubs {
		names[i] = h.Name
	}
	for i := range n.cat.Pipelines {
		p := &n.cat.Pipelines[i]
		if p.Slots != nil {
			for j, sl := range p.Slots {
				if !slices.Contains(names, sl.Hub) {
					return fmt.Errorf("node: partition %d of pipeline %q lives in hub %q, which the config no longer lists; hubs cannot be removed", j, p.Name, sl.Hub)
				}
			}
			continue
		}
		if len(p.Hubs) > len(names) || !slices.Equal(p.Hubs, names[:len(p.Hubs)]) {
			return fmt.Errorf("node: pipeline %q was laid out over hubs %v, the config lists %v; hubs may only be added at the end (partition numbers depend on their order)",
				p.Name, p.Hubs, names)
		}
		if len(p.Hubs) < len(names) {
			p.Hubs = slices.Clone(names)
			*changed = true
		}
	}
	return nil
}

// rebuildLocked opens any missing logs, builds a new routing table and
// swaps the state. Called with n.mu held.
func (n *Node) rebuildLocked() error {
	rhubs, err := n.routerHubsLocked()
	if err != nil {
		return err
	}
	var rps []router.Pipeline
	pipes := make(map[string]*pipeline, len(n.cat.Pipelines))
	for _, spec := range n.cat.Pipelines {
		p, rp, err := n.newPipelineLocked(spec)
		if err != nil {
			return err
		}
		pipes[spec.Name] = p
		rps = append(rps, rp)
	}
	n.version++
	table, err := router.Build(n.version, rhubs, rps)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	for name, p := range pipes {
		if _, err := n.openBuffersLocked(p.spec); err != nil {
			// Refused alone: the node serves the others, and this one
			// answers the cause until a restart or reload opens it.
			p.refused = newRefusedBuffer(err)
			n.log.Error("pipeline refused: its buffers cannot be opened; the other pipelines are served",
				"pipeline", name, "err", err, "open_file_limit", fileLimit(), "max_open_files", n.opts.MaxOpenFiles)
		}
		n.bindLocked(p, table.Pipeline(name))
	}
	n.st.Store(&state{table: table, pipelines: cow.From(pipes)})
	return nil
}

// routerHubsLocked returns the hubs as the router sees them.
func (n *Node) routerHubsLocked() ([]router.Hub, error) {
	var rhubs []router.Hub
	for _, h := range n.hubs {
		m := n.reg.All()
		if h.Jurisdiction != "*" {
			bit, ok := n.reg.Bit(h.Jurisdiction)
			if !ok {
				return nil, fmt.Errorf("node: hub %q has jurisdiction %q, which is not registered", h.Name, h.Jurisdiction)
			}
			m = jurisdiction.Mask(1) << bit
		}
		rhubs = append(rhubs, router.Hub{Name: h.Name, Jurisdiction: h.Jurisdiction, Mask: m, Status: h.Status, Deny: h.Deny})
	}
	return rhubs, nil
}

// newPipelineLocked returns the live state of spec, without its routes and
// buffers (bindLocked), and its pipeline as the router takes it.
func (n *Node) newPipelineLocked(spec PipelineSpec) (*pipeline, router.Pipeline, error) {
	p := &pipeline{spec: spec}
	var err error
	if p.mask, err = n.reg.Parse(spec.DefaultJurisdiction); err != nil {
		return nil, router.Pipeline{}, fmt.Errorf("node: pipeline %q default jurisdiction: %w", spec.Name, err)
	}
	if p.prio, err = event.ParsePriority(spec.DefaultPriority); err != nil {
		return nil, router.Pipeline{}, fmt.Errorf("node: pipeline %q default priority: %w", spec.Name, err)
	}
	rp := router.Pipeline{Name: spec.Name, Partitions: spec.Partitions, DefaultMask: p.mask, DefaultPriority: p.prio}
	if spec.Slots != nil {
		rp.Layout = make([]router.Slot, len(spec.Slots))
		for i, sl := range spec.Slots {
			rp.Layout[i] = router.Slot{Hub: slices.IndexFunc(n.hubs, func(h HubSpec) bool { return h.Name == sl.Hub }), Lane: sl.Lane}
		}
	}
	return p, rp, nil
}

// bindLocked gives p its routes and its open buffers, by partition (a
// refused pipeline, its refusedBuffer).
func (n *Node) bindLocked(p *pipeline, routes *router.Routes) {
	p.routes = routes
	for _, b := range routes.Partitions() {
		var buf Buffer = p.refused
		if p.refused == nil {
			buf = n.bufs[n.bufferDir(p.spec.Name, b.Hub, b.Partition)]
		}
		p.bufs = append(p.bufs, buf)
	}
}

// putLocked swaps in a state where the pipeline of spec (whose buffers
// are open, unless refused says why they are not) is added or replaced:
// only its routes are built, the others are shared with the current state
// (router.Table.With). Called with n.mu held.
func (n *Node) putLocked(spec PipelineSpec, refused *refusedBuffer) error {
	p, rp, err := n.newPipelineLocked(spec)
	if err != nil {
		return err
	}
	p.refused = refused
	cur := n.st.Load()
	table, err := cur.table.With(n.version+1, rp)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.version++
	n.bindLocked(p, table.Pipeline(spec.Name))
	n.st.Store(&state{table: table, pipelines: cur.pipelines.With(spec.Name, p)})
	return nil
}

// dropLocked swaps in a state without pipeline name. Called with n.mu
// held.
func (n *Node) dropLocked(name string) {
	cur := n.st.Load()
	n.version++
	n.st.Store(&state{table: cur.table.Without(n.version, name), pipelines: cur.pipelines.Without(name)})
}

// bufferDir is the directory of a pipeline's partition in a hub.
func (n *Node) bufferDir(pipeline, hub string, partition int32) string {
	return filepath.Join(n.opts.DataDir, "hubs", hub, fmt.Sprintf("%s-%d", pipeline, partition))
}

// openBuffersLocked opens every buffer of spec not open yet and returns
// the directories it opened. On an error it closes those again and
// returns an error that names the partition and the cause (for too many
// open files, the process's limit and what to do). Called with n.mu held.
func (n *Node) openBuffersLocked(spec PipelineSpec) ([]string, error) {
	var opened []string
	for i, sl := range spec.Layout() {
		dir := n.bufferDir(spec.Name, sl.Hub, int32(i))
		if n.bufs[dir] != nil {
			continue
		}
		age, size := spec.BufferRetention()
		syncs := n.Metrics.fsyncLatency.WithLabelValues(sl.Lane.String())
		bs := BufferSpec{Pipeline: spec.Name, Hub: sl.Hub, Partition: int32(i), Dir: dir, Log: seglog.Options{
			FS:                  n.opts.FS,
			Durability:          n.opts.Durability,
			SegmentBytes:        n.opts.SegmentBytes,
			RetentionAge:        age,
			RetentionBytes:      size,
			Compaction:          spec.CompactPolicy(),
			ObserveCompaction:   n.Metrics.compacted(spec.Name),
			Logger:              n.log,
			Files:               n.files,
			ObserveSync:         func(d time.Duration) { syncs.Observe(d.Seconds()) },
			PreallocateBytes:    n.opts.PreallocateBytes,
			GroupCommitInterval: n.opts.GroupCommitInterval,
		}}
		if sl.Lane == event.Critical {
			// Pacing trades a little latency for fewer fdatasyncs; a
			// critical buffer does not pay it (docs/storage.md).
			bs.Log.GroupCommitInterval = 0
		}
		var l Buffer
		var err error
		if n.opts.OpenBuffer != nil {
			l, err = n.opts.OpenBuffer(bs)
		} else {
			l, err = OpenSegmentBuffer(dir, bs.Log)
		}
		if err != nil {
			n.closeBuffersLocked(opened)
			return nil, fmt.Errorf("node: open buffer %s partition %d in hub %s: %w%s", spec.Name, i, sl.Hub, err, openHint(err))
		}
		n.bufs[dir] = l
		opened = append(opened, dir)
	}
	return opened, nil
}

// closeBuffersLocked closes and forgets the buffers in dirs.
func (n *Node) closeBuffersLocked(dirs []string) {
	for _, dir := range dirs {
		if l := n.bufs[dir]; l != nil {
			l.Close()
			n.txnIdx.Delete(l)
			delete(n.bufs, dir)
		}
	}
}

// openHint says what to do about an error opening a buffer, when there is
// something to say.
func openHint(err error) string {
	if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
		return ""
	}
	if lim := fileLimit(); lim > 0 {
		return fmt.Sprintf(" (the process may hold %d open files, ulimit -n; the logs keep at most storage.max_open_files segment files open, the rest is for sockets and index, checkpoint and catalog files: raise ulimit -n or lower storage.max_open_files)", lim)
	}
	return " (too many open files: raise ulimit -n or lower storage.max_open_files)"
}

// fileLimit returns the process's open-file limit (ulimit -n), 0 if
// unknown.
func fileLimit() uint64 {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return 0
	}
	return lim.Cur
}

// Table returns the current routing table.
func (n *Node) Table() *router.Table { return n.st.Load().table }

// Registry returns the jurisdiction registry.
func (n *Node) Registry() *jurisdiction.Registry { return n.reg }

// Durability returns the fsync policy of the node's logs.
func (n *Node) Durability() seglog.Durability { return n.opts.Durability }

// Pipelines returns the catalog, sorted by name.
func (n *Node) Pipelines() []PipelineSpec {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := slices.Clone(n.cat.Pipelines)
	slices.SortFunc(out, func(a, b PipelineSpec) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// Pipeline returns the spec of pipeline name as the node serves it now,
// without taking the node's lock or copying the catalog.
func (n *Node) Pipeline(name string) (PipelineSpec, bool) {
	if p := n.st.Load().pipeline(name); p != nil {
		return p.spec, true
	}
	return PipelineSpec{}, false
}

// PipelineEqualFold returns the name of a pipeline that differs from name
// only in case, if there is one (buffer directories are named after
// pipelines, and some file systems ignore case).
func (n *Node) PipelineEqualFold(name string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cat.equalFold(name)
}

// ErrPipelineExists is returned by CreatePipeline for a known name.
var ErrPipelineExists = errors.New("node: pipeline exists")

// ErrInvalidSpec is matched by CreatePipeline's errors for a bad argument.
var ErrInvalidSpec = errors.New("node: invalid pipeline spec")

// Proposer carries a change of the pipelines to every node of a cluster
// and returns once this node has applied it.
type Proposer interface {
	// CreatePipeline proposes spec, complete (CreatePipeline filled in
	// its defaults and layout); every node applies it verbatim.
	CreatePipeline(spec PipelineSpec) error
	DeletePipeline(name string) error
	// AlterPipeline proposes a change of a pipeline's run-time settings
	// (checked by AlterPipeline); every node applies it in log order
	// (ApplyAlterPipeline).
	AlterPipeline(name string, c PipelineChange) error
}

// fixed refuses a change to the pipelines when they are fixed.
func (n *Node) fixed(name string) error {
	if !n.opts.FixedPipelines || n.opts.Proposer != nil {
		return nil
	}
	return fmt.Errorf("%w: pipeline %q: pipelines of this node are declared in its config file (pipelines:) and cannot be created or deleted at run time", ErrInvalidSpec, name)
}

// ErrUnknownHub is matched by SetHubStatus's error for an unknown hub.
var ErrUnknownHub = errors.New("node: no such hub")

// CreatePipeline adds a pipeline durably and opens its buffers; in a
// cluster (Options.Proposer) it proposes the pipeline, complete, to every
// node and returns once this node has it.
func (n *Node) CreatePipeline(spec PipelineSpec) error {
	if err := n.fixed(spec.Name); err != nil {
		return err
	}
	spec, err := n.prepare(spec)
	if err != nil {
		return err
	}
	if n.opts.Proposer != nil {
		return n.opts.Proposer.CreatePipeline(spec)
	}
	return n.createPrepared(spec)
}

// ApplyCreatePipeline creates, on this node, a pipeline that a cluster's
// metadata log holds (spec as CreatePipeline completed it on the node that
// proposed it).
func (n *Node) ApplyCreatePipeline(spec PipelineSpec) error {
	if err := event.ValidatePipelineName(spec.Name); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed.Load() {
		return ErrClosed
	}
	if n.cat.find(spec.Name) != nil {
		return fmt.Errorf("%w: %q", ErrPipelineExists, spec.Name)
	}
	if !slices.Equal(spec.Hubs, n.hubNamesLocked()) {
		return fmt.Errorf("%w: pipeline %q is laid out over hubs %v, this node has %v; every node's config must list the same hubs", ErrInvalidSpec, spec.Name, spec.Hubs, n.hubNamesLocked())
	}
	return n.createLocked(spec)
}

// prepare validates spec and fills in its defaults, hubs, layout and
// creation time.
func (n *Node) prepare(spec PipelineSpec) (PipelineSpec, error) {
	if err := event.ValidatePipelineName(spec.Name); err != nil {
		return spec, err
	}
	switch {
	case spec.Slots != nil && spec.Partitions != 0:
		return spec, fmt.Errorf("%w: pipeline %q: give partitions per hub and lane or an explicit layout, not both", ErrInvalidSpec, spec.Name)
	case spec.Slots != nil:
		if len(spec.Slots) < 1 || len(spec.Slots) > MaxPartitions {
			return spec, fmt.Errorf("%w: pipeline %q: %d partitions outside [1, %d]", ErrInvalidSpec, spec.Name, len(spec.Slots), MaxPartitions)
		}
	case spec.Partitions < 0 || spec.Partitions > MaxPartitions:
		return spec, fmt.Errorf("%w: pipeline %q: partitions %d outside [1, %d]", ErrInvalidSpec, spec.Name, spec.Partitions, MaxPartitions)
	}
	if err := CheckMaxMessageBytes(spec.MaxMessageBytes); err != nil {
		return spec, fmt.Errorf("%w: pipeline %q: %w", ErrInvalidSpec, spec.Name, err)
	}
	cp, err := ParseCleanupPolicy(spec.CleanupPolicy)
	if err == nil {
		spec.CleanupPolicy = cp
		err = checkCompaction(spec)
	}
	if err != nil {
		return spec, fmt.Errorf("%w: pipeline %q: %w", ErrInvalidSpec, spec.Name, err)
	}
	if spec.DefaultPriority == "" {
		spec.DefaultPriority = "low"
	}
	if spec.DefaultJurisdiction == "" {
		spec.DefaultJurisdiction = "*"
	}
	if _, err := event.ParsePriority(spec.DefaultPriority); err != nil {
		return spec, err
	}
	if _, err := n.reg.Parse(spec.DefaultJurisdiction); err != nil {
		return spec, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed.Load() {
		return spec, ErrClosed
	}
	if n.cat.find(spec.Name) != nil {
		return spec, fmt.Errorf("%w: %q", ErrPipelineExists, spec.Name)
	}
	spec.Hubs = n.hubNamesLocked()
	if spec.Slots == nil && spec.Partitions == 0 {
		if d := n.opts.DefaultPartitions; d > 0 {
			spec.Slots = Spread(nil, spec.Hubs, []event.Priority{event.Low, event.Medium, event.Critical}, d)
		} else {
			spec.Partitions = 1
		}
	}
	for i, sl := range spec.Slots {
		if !slices.Contains(spec.Hubs, sl.Hub) || !sl.Lane.Valid() {
			return spec, fmt.Errorf("%w: pipeline %q: partition %d is placed in hub %q lane %s; the hubs are %v", ErrInvalidSpec, spec.Name, i, sl.Hub, sl.Lane, spec.Hubs)
		}
	}
	spec.Created = time.Now().UTC()
	return spec, nil
}

// createPrepared creates a prepared pipeline on this node.
func (n *Node) createPrepared(spec PipelineSpec) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed.Load() {
		return ErrClosed
	}
	if n.cat.find(spec.Name) != nil {
		return fmt.Errorf("%w: %q", ErrPipelineExists, spec.Name)
	}
	return n.createLocked(spec)
}

// createLocked opens a prepared pipeline's buffers and records it in the
// catalog. Called with n.mu held.
func (n *Node) createLocked(spec PipelineSpec) error { // Directories of a deleted pipeline of this name that a crash left
	// behind must not become the new pipeline's buffers.
	if n.leftovers[spec.Name] {
		if err := n.dropBuffersLocked(spec.Name); err != nil {
			return fmt.Errorf("node: pipeline %q: remove the buffers of a deleted pipeline of that name: %w", spec.Name, err)
		}
	}
	// Its buffers first: a pipeline whose buffers cannot be opened is
	// refused alone, before the catalog names it, so it never breaks the
	// creation of the next one.
	opened, err := n.openBuffersLocked(spec)
	if err != nil {
		if derr := n.dropBuffersLocked(spec.Name); derr != nil {
			n.log.Warn("removing the buffers of a refused pipeline failed", "pipeline", spec.Name, "err", derr)
		}
		return err
	}
	if err := n.cat.create(spec); err != nil {
		n.closeBuffersLocked(opened)
		if derr := n.dropBuffersLocked(spec.Name); derr != nil {
			n.log.Warn("removing the buffers of a refused pipeline failed", "pipeline", spec.Name, "err", derr)
		}
		return err
	}
	return n.putLocked(spec, nil)
}

// hubNamesLocked returns the hubs' names in config order.
func (n *Node) hubNamesLocked() []string {
	names := make([]string, len(n.hubs))
	for i, h := range n.hubs {
		names[i] = h.Name
	}
	return names
}

// AddPartitions grows pipeline name to total partitions. The new ones are
// appended (existing numbers never change), spread over the hubs and the
// lanes the pipeline has (Spread); a pipeline of the standard layout gets
// an explicit one first, with the same numbering. A pipeline the config
// file declares cannot grow (ErrPipelineDeclared): its layout is the
// config's.
func (n *Node) AddPartitions(name string, total int) error {
	if n.opts.FixedPipelines {
		return fmt.Errorf("%w: pipeline %q: the partitions of a pipeline cannot grow in a cluster yet (each is a raft group placed when the pipeline is created); create another pipeline with more partitions", ErrInvalidSpec, name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed.Load() {
		return ErrClosed
	}
	spec := n.cat.find(name)
	if spec == nil {
		return fmt.Errorf("%w: %q", ErrUnknownPipeline, name)
	}
	if slices.ContainsFunc(n.opts.Pipelines, func(p PipelineSpec) bool { return p.Name == name }) {
		return fmt.Errorf("%w: %q has the layout the config file gives it; create another pipeline with more partitions", ErrPipelineDeclared, name)
	}
	cur := spec.NumPartitions()
	if total <= cur || total > max(MaxPartitions, cur) {
		return fmt.Errorf("%w: pipeline %q has %d partitions; it can grow to %d to %d", ErrInvalidSpec, name, cur, cur+1, max(MaxPartitions, cur))
	}
	grown := *spec
	layout := spec.slots()
	var lanes []event.Priority
	for lane := event.Low; lane <= event.Critical; lane++ {
		if slices.ContainsFunc(layout, func(s Slot) bool { return s.Lane == lane }) {
			lanes = append(lanes, lane)
		}
	}
	grown.Slots = Spread(layout, n.hubNamesLocked(), lanes, total-cur)
	grown.Partitions = 0
	opened, err := n.openBuffersLocked(grown)
	if err != nil {
		return err
	}
	if err := n.cat.update(grown); err != nil {
		n.closeBuffersLocked(opened)
		return err
	}
	if err := n.putLocked(grown, nil); err != nil {
		return fmt.Errorf("node: pipeline %q grew to %d partitions in the catalog, but its new buffers could not be opened: %w", name, total, err)
	}
	n.log.Info("added partitions", "pipeline", name, "from", cur, "to", total)
	return nil
}

// SetHubs replaces the hubs' status and policy (a reload or an admin call)
// and swaps the routing table at once. Hubs may be added at the end; none
// may be removed or reordered.
func (n *Node) SetHubs(hubs []HubSpec) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(hubs) < len(n.hubs) {
		return fmt.Errorf("node: the new config has %d hubs, the running node %d; hubs cannot be removed", len(hubs), len(n.hubs))
	}
	for i := range n.hubs {
		if hubs[i].Name != n.hubs[i].Name {
			return fmt.Errorf("node: hub %d is %s (%s) in the new config, %s (%s) in the running node; hubs may only be added at the end",
				i, hubs[i].Name, hubs[i].Jurisdiction, n.hubs[i].Name, n.hubs[i].Jurisdiction)
		}
		if hubs[i].Jurisdiction != n.hubs[i].Jurisdiction && !slices.Contains(hubs[i].Former, n.hubs[i].Jurisdiction) {
			return fmt.Errorf("node: hub %s is in jurisdiction %s in the new config, %s in the running node; a hub's jurisdiction changes only by re-designation in a cluster (`sense hub set %s --jurisdiction %s`), which migrates what it stored",
				hubs[i].Name, hubs[i].Jurisdiction, n.hubs[i].Jurisdiction, hubs[i].Name, hubs[i].Jurisdiction)
		}
	}
	old := n.hubs
	n.hubs = hubs
	changed := false
	if err := n.layoutHubs(&changed); err != nil {
		n.hubs = old
		return err
	}
	if changed {
		if err := n.cat.save(); err != nil {
			return err
		}
	}
	return n.rebuildLocked()
}

// Hubs returns the hubs as configured now.
func (n *Node) Hubs() []HubSpec {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.hubs)
}

// SetHubStatus changes one hub's status.
func (n *Node) SetHubStatus(name string, st router.HubStatus) error {
	hubs := n.Hubs()
	for i := range hubs {
		if hubs[i].Name == name {
			hubs[i].Status = st
			return n.SetHubs(hubs)
		}
	}
	return unknownHub(name, hubs)
}

// Fence makes the node refuse every new event (NOT_READY, retriable) until
// Unfence, for the reason given: a cluster node that cannot tell whether
// its routing table is current must not route by it.
func (n *Node) Fence(reason string) {
	if old := n.fence.Swap(&reason); old == nil {
		n.log.Warn("refusing new events", "reason", reason)
	}
}

// Unfence lets the node take events again after Fence.
func (n *Node) Unfence() {
	if n.fence.Swap(nil) != nil {
		n.log.Info("taking new events again")
	}
}

// Fenced returns the reason events are refused, or "" if they are not.
func (n *Node) Fenced() string {
	if f := n.fence.Load(); f != nil {
		return *f
	}
	return ""
}

// SetHubPolicy adds the pipelines of deny to a hub's policy and removes
// those of allow from it.
func (n *Node) SetHubPolicy(name string, deny, allow []string) error {
	hubs := n.Hubs()
	for i := range hubs {
		if hubs[i].Name == name {
			d := append(slices.Clone(hubs[i].Deny), deny...)
			slices.Sort(d)
			d = slices.DeleteFunc(slices.Compact(d), func(p string) bool { return slices.Contains(allow, p) })
			hubs[i].Deny = d
			return n.SetHubs(hubs)
		}
	}
	return unknownHub(name, hubs)
}

func unknownHub(name string, hubs []HubSpec) error {
	names := make([]string, len(hubs))
	for i, h := range hubs {
		names[i] = h.Name
	}
	return fmt.Errorf("%w: %q; the hubs are %v", ErrUnknownHub, name, names)
}

// ErrClosed is returned by the node's methods after Close.
var ErrClosed = errors.New("node: closed")

// Close syncs and closes every log.
func (n *Node) Close() error {
	if n.closed.Swap(true) {
		return ErrClosed
	}
	n.alerts.close()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cat.close()
	return n.closeLogs()
}

func (n *Node) closeLogs() error {
	var errs []error
	for dir, l := range n.bufs {
		if err := l.Close(); err != nil && !errors.Is(err, seglog.ErrClosed) {
			errs = append(errs, fmt.Errorf("close %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// lookup returns the live pipeline, creating it if allowed.
func (n *Node) lookup(name string) (*pipeline, result.Code) {
	if p := n.st.Load().pipeline(name); p != nil {
		return p, result.OK
	}
	if err := event.ValidatePipelineName(name); err != nil {
		return nil, result.InvalidPipelineName
	}
	if !n.opts.AutoCreate {
		return nil, result.UnknownPipeline
	}
	if err := n.CreatePipeline(PipelineSpec{Name: name}); err != nil && !errors.Is(err, ErrPipelineExists) {
		n.log.Error("auto-create pipeline failed", "pipeline", name, "err", err)
		return nil, result.StorageError
	}
	n.log.Info("created pipeline on first produce", "pipeline", name)
	if p := n.st.Load().pipeline(name); p != nil {
		return p, result.OK
	}
	return nil, result.UnknownPipeline
}

// lastPID is the last producer id handed out.
var lastPID atomic.Int64

// NewProducerID returns a producer id never handed out before: in a
// cluster one of a block the metadata log gave this node (Options.
// ProducerIDs); alone, the wall clock in microseconds, bumped past the
// last id given by this process (a clock set back across a restart could
// repeat an id).
func (n *Node) NewProducerID() (int64, error) {
	if f := n.opts.ProducerIDs; f != nil {
		return f()
	}
	for {
		last := lastPID.Load()
		id := max(time.Now().UnixMicro(), last+1)
		if lastPID.CompareAndSwap(last, id) {
			return id, nil
		}
	}
}

// SegmentBytes is the size at which the node's segment logs seal a
// segment (durability.segment_bytes).
func (n *Node) SegmentBytes() int64 {
	if n.opts.SegmentBytes == 0 {
		return seglog.DefaultSegmentBytes
	}
	return n.opts.SegmentBytes
}
