package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/processor"
	"github.com/sensehq/sense/result"
)

// processorRuntime runs the node's processors (docs/processors.md). A node
// alone runs them from the start, with a coordinator of its own. In a
// cluster with Kafka listeners every node runs them, as members of groups
// coordinated by the node that leads the committed offsets, reached over
// the Kafka protocol through this node's own listener: the nodes share
// the partitions, and a lost node's go to the others. In a cluster without
// a Kafka listener, the processors run on the node that leads the
// committed offsets only: it starts them when it becomes that node and
// stops them when it stops being it, and the next one starts them from the
// replicated offsets.
type processorRuntime struct {
	n         *node.Node
	offsets   *group.Store
	log       *slog.Logger
	nodeID    string
	gated     bool   // in a cluster without Kafka: run only while offsets.Ready()
	kafkaSeed string // in a cluster: this node's Kafka listener
	kgroup    *processor.KafkaGroup

	// created are the processors of `sense processor create`, by name:
	// the YAML document that defined each, as the committed-offsets log
	// keeps them (side records of kind processorKind), so that they run
	// again after a restart and, in a cluster, on every node that runs
	// processors. Guarded by cmu, never held while calling the store;
	// changed signals the follower.
	cmu     sync.Mutex
	created map[string]string
	changed chan struct{}

	mu      sync.Mutex
	cfgs    []config.Processor // the config file's
	mgr     *processor.Manager // nil while not running here
	quit    chan struct{}
	done    chan struct{}
	started bool
}

func newProcessorRuntime(n *node.Node, offsets *group.Store, cfg *config.Config, kafkaSeed string, log *slog.Logger) *processorRuntime {
	r := &processorRuntime{n: n, offsets: offsets, log: log, nodeID: cfg.Node.ID,
		cfgs: append([]config.Processor(nil), cfg.Processors...), quit: make(chan struct{}), done: make(chan struct{}),
		created: map[string]string{}, changed: make(chan struct{}, 1)}
	offsets.Watch(processorKind, r.onCreated)
	if !cfg.DevMode() {
		if kafkaSeed != "" {
			r.kafkaSeed = kafkaSeed
		} else {
			r.gated = true
		}
	}
	return r
}

// processorKind is the side-record kind of a created processor.
const processorKind = "processor"

// onCreated is the committed-offsets store's watcher of created
// processors (it runs under the store's lock).
func (r *processorRuntime) onCreated(key, value []byte) {
	r.cmu.Lock()
	if value == nil {
		delete(r.created, string(key))
	} else {
		r.created[string(key)] = string(value)
	}
	r.cmu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// createdConfigs returns the created processors' configs, but for names
// in skip.
func (r *processorRuntime) createdConfigs(skip func(string) bool) []config.Processor {
	r.cmu.Lock()
	docs := make(map[string]string, len(r.created))
	for k, v := range r.created {
		docs[k] = v
	}
	r.cmu.Unlock()
	var out []config.Processor
	for name, doc := range docs {
		if skip(name) {
			continue
		}
		cfgs, err := config.ParseProcessors("processor "+name, []byte(doc))
		if err != nil {
			r.log.Error("a created processor's config no longer reads; it does not run", "processor", name, "err", err)
			continue
		}
		for _, c := range cfgs {
			if c.Name == name {
				out = append(out, c)
			}
		}
	}
	return out
}

// startCreatedLocked starts the created processors the manager does not
// run yet, each on its own: one that cannot start (its sink unreachable)
// does not hold the others back.
func (r *processorRuntime) startCreatedLocked() {
	if r.mgr == nil {
		return
	}
	m := r.mgr
	cfgs := r.createdConfigs(func(name string) bool { _, err := m.Describe(name); return err == nil })
	for _, c := range cfgs {
		if err := m.Start(context.Background(), []config.Processor{c}); err != nil {
			r.log.Error("a created processor cannot start", "processor", c.Name, "err", err)
		}
	}
}

// stopDeletedLocked stops the processors that run here but are neither in
// the config file nor created any more: deleted, here or on another node.
func (r *processorRuntime) stopDeletedLocked() {
	if r.mgr == nil {
		return
	}
	keep := map[string]bool{}
	for _, c := range r.cfgs {
		keep[c.Name] = true
	}
	r.cmu.Lock()
	for name := range r.created {
		keep[name] = true
	}
	r.cmu.Unlock()
	for _, name := range r.mgr.Names() {
		if !keep[name] {
			if _, err := r.mgr.Remove(name); err != nil {
				r.log.Warn("stopping a deleted processor", "processor", name, "err", err)
			}
		}
	}
}

// follow starts the processors created elsewhere (another node of the
// cluster) and stops those deleted elsewhere, as the committed-offsets log
// brings them.
func (r *processorRuntime) follow() {
	for {
		select {
		case <-r.quit:
			return
		case <-r.changed:
		}
		r.mu.Lock()
		r.stopDeletedLocked()
		r.startCreatedLocked()
		r.mu.Unlock()
	}
}

// start starts the configured processors (a node alone), or the watch for
// the offsets' leadership (a cluster).
func (r *processorRuntime) start() error {
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
	go r.follow()
	if !r.gated {
		close(r.done)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := r.runLocked(); err != nil {
			return err
		}
		r.startCreatedLocked()
		return nil
	}
	go r.watch()
	return nil
}

// runLocked starts a manager with every processor.
func (r *processorRuntime) runLocked() error {
	opts := processor.Options{Source: processor.NodeSource{Node: r.n}, Offsets: r.offsets,
		Registerer: r.n.Metrics.Registry, ClientID: "sense-" + r.nodeID, Logger: r.log}
	if r.kafkaSeed != "" {
		if r.kgroup == nil {
			kg, err := processor.NewKafkaGroup([]string{r.kafkaSeed}, "sense-processors-"+r.nodeID)
			if err != nil {
				return fmt.Errorf("reach the group coordinators through %s: %w", r.kafkaSeed, err)
			}
			r.kgroup = kg
		}
		opts.Group = r.kgroup
	}
	m := processor.NewManager(opts)
	if err := m.Start(context.Background(), r.cfgs); err != nil {
		m.Close()
		return err
	}
	r.mgr = m
	return nil
}

func (r *processorRuntime) watch() {
	defer close(r.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.quit:
			return
		case <-t.C:
		}
		ready := r.offsets.Ready()
		r.mu.Lock()
		switch {
		case ready && r.mgr == nil:
			if err := r.runLocked(); err != nil {
				r.log.Error("processors cannot start", "err", err)
			} else {
				r.startCreatedLocked()
				r.log.Info("processors run on this node: it leads the committed offsets")
			}
		case !ready && r.mgr != nil:
			r.mgr.Close()
			r.mgr = nil
			r.log.Info("processors stopped on this node: it no longer leads the committed offsets")
		}
		r.mu.Unlock()
	}
}

func (r *processorRuntime) close() error {
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if started {
		select {
		case <-r.quit:
		default:
			close(r.quit)
		}
		<-r.done
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	if r.mgr != nil {
		err = r.mgr.Close()
		r.mgr = nil
	}
	if r.kgroup != nil {
		r.kgroup.Close()
		r.kgroup = nil
	}
	return err
}

// manager returns the running manager, or an error saying where the
// processors run.
func (r *processorRuntime) manager() (*processor.Manager, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.managerLocked()
}

func (r *processorRuntime) managerLocked() (*processor.Manager, error) {
	if r.mgr == nil {
		if r.gated {
			return nil, result.New(result.NotLeader, "processors run on the node that leads the committed offsets, not this one; ask another node")
		}
		return nil, result.New(result.NotReady, "processors are not running yet")
	}
	return r.mgr, nil
}

// admin runs the processor.* requests.
func (r *processorRuntime) admin(req admin.Request) (admin.Response, error) {
	var resp admin.Response
	switch req := req.(type) {
	case admin.CreateProcessor:
		return r.create(req.Config)
	case admin.DeleteProcessor:
		return r.delete(req.Processor)
	}
	m, err := r.manager()
	if err != nil {
		return resp, err
	}
	name := ""
	switch req := req.(type) {
	case admin.ListProcessors:
		resp.Processors = m.List()
		return resp, nil
	case admin.DescribeProcessor:
		name = req.Processor
	case admin.PauseProcessor:
		name = req.Processor
		err = m.Pause(name)
	case admin.ResumeProcessor:
		name = req.Processor
		err = m.Resume(name)
	case admin.ResetProcessor:
		name = req.Processor
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = m.Reset(ctx, name, req.To)
		cancel()
	default:
		return resp, result.New(result.InvalidRequest, fmt.Sprintf("admin request %T is not a processor request", req))
	}
	if err != nil {
		return resp, err
	}
	info, err := m.Describe(name)
	if err != nil {
		return resp, err
	}
	resp.Processors = []admin.ProcessorInfo{info}
	return resp, nil
}

// create runs processor.create: the processors of doc are kept in the
// committed-offsets log (side records of kind processorKind) before they
// start, so that they run again after a restart, and on the other nodes
// that run processors. r.mu is held throughout, so that follow does not
// start them meanwhile.
func (r *processorRuntime) create(doc string) (admin.Response, error) {
	var resp admin.Response
	cfgs, err := config.ParseProcessors("processor.create", []byte(doc))
	if err != nil {
		return resp, result.New(result.InvalidRequest, err.Error())
	}
	if len(cfgs) == 0 {
		return resp, result.New(result.InvalidRequest, "processor.create: the config has no processors: list")
	}
	if !r.offsets.Ready() {
		return resp, errNotOffsetsLeader
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m, err := r.managerLocked()
	if err != nil {
		return resp, err
	}
	for _, c := range cfgs {
		if _, err := m.Describe(c.Name); err == nil {
			return resp, result.New(result.InvalidRequest, fmt.Sprintf("processor %q runs already; choose another name", c.Name))
		}
	}
	var recs []group.SideRecord
	for _, c := range cfgs {
		recs = append(recs, group.SideRecord{Kind: processorKind, Key: []byte(c.Name), Value: []byte(doc)})
	}
	if err := r.offsets.Write(recs); err != nil {
		return resp, fmt.Errorf("keep the new processors in the committed-offsets log: %w", err)
	}
	if err := m.Start(context.Background(), cfgs); err != nil {
		if result.CodeOf(err) == result.Unknown {
			err = result.New(result.InvalidRequest, err.Error())
		}
		return resp, err
	}
	for _, c := range cfgs {
		info, _ := m.Describe(c.Name)
		resp.Processors = append(resp.Processors, info)
	}
	return resp, nil
}

// errNotOffsetsLeader refuses processor.create and processor.delete on a
// node of a cluster that does not lead the committed-offsets log, which
// keeps the created processors.
var errNotOffsetsLeader = result.New(result.NotLeader, "this node does not lead the committed-offsets log, which keeps the created processors; ask the node that leads it (sense cluster status)")

// deleteWait bounds how long processor.delete waits, in a cluster, for
// the members of other nodes to leave the processor's group.
const deleteWait = 30 * time.Second

// delete runs processor.delete: it stops the processor here, then writes
// its tombstone and the deletion of its group's committed offsets in one
// batch of the committed-offsets log (so that after a crash either both
// are done or neither); the other nodes stop it as the log brings the
// tombstone. In a cluster whose processors share their groups over the
// Kafka protocol, it then deletes the group at its coordinator once the
// other nodes' members have left (Kafka's DeleteGroups), for a commit of
// theirs may have landed after the batch.
func (r *processorRuntime) delete(name string) (admin.Response, error) {
	var resp admin.Response
	if name == "" {
		return resp, result.New(result.InvalidRequest, "processor.delete: name the processor to delete")
	}
	for _, c := range r.cfgs {
		if c.Name == name {
			return resp, result.New(result.InvalidRequest, fmt.Sprintf("processor %q is declared in the node's config file and cannot be deleted at runtime; remove it from processors: in the config file and restart the node (sense processor pause %s stops it meanwhile)", name, name))
		}
	}
	if !r.offsets.Ready() {
		return resp, errNotOffsetsLeader
	}
	r.mu.Lock()
	m, err := r.managerLocked()
	if err != nil {
		r.mu.Unlock()
		return resp, err
	}
	r.cmu.Lock()
	_, created := r.created[name]
	r.cmu.Unlock()
	if !created {
		r.mu.Unlock()
		return resp, result.New(result.InvalidRequest, fmt.Sprintf("no processor %q: none was created with sense processor create under that name; sense processor list shows those that run", name))
	}
	info, err := m.Describe(name)
	if err != nil { // created, but it could not start here
		info = admin.ProcessorInfo{Name: name, Group: processor.GroupPrefix + name}
	}
	cfg, rmErr := m.Remove(name)
	gname := processor.GroupPrefix + name
	if err := r.offsets.DeleteGroupWith(gname, group.SideRecord{Kind: processorKind, Key: []byte(name)}); err != nil {
		if cfg.Name != "" { // it ran here: it runs again
			if serr := m.Start(context.Background(), []config.Processor{cfg}); serr != nil {
				r.log.Error("a processor whose deletion failed cannot start again", "processor", name, "err", serr)
			}
		}
		r.mu.Unlock()
		return resp, fmt.Errorf("delete processor %s: keep its deletion in the committed-offsets log: %w; it was not deleted", name, err)
	}
	kg := r.kgroup
	r.mu.Unlock()
	if rmErr != nil && result.CodeOf(rmErr) != result.InvalidRequest {
		r.log.Warn("a deleted processor's sink did not close cleanly", "processor", name, "err", rmErr)
	}
	if kg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), deleteWait)
		err := kg.Delete(ctx, gname)
		cancel()
		if err != nil {
			return resp, fmt.Errorf("processor %s is deleted, but its group %s still holds members or offsets: %w; delete the group with Kafka's DeleteGroups (kafka-consumer-groups --delete --group %s) once they leave", name, gname, err, gname)
		}
	}
	r.log.Info("processor deleted with its group's offsets", "processor", name, "group", gname)
	info.State = "deleted"
	info.Partitions = nil
	resp.Processors = []admin.ProcessorInfo{info}
	return resp, nil
}
