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
// run yet.
func (r *processorRuntime) startCreatedLocked() {
	if r.mgr == nil {
		return
	}
	m := r.mgr
	cfgs := r.createdConfigs(func(name string) bool { _, err := m.Describe(name); return err == nil })
	if len(cfgs) == 0 {
		return
	}
	if err := m.Start(context.Background(), cfgs); err != nil {
		r.log.Error("created processors cannot start", "err", err)
	}
}

// follow starts the processors created elsewhere (another node of the
// cluster) as the committed-offsets log brings them.
func (r *processorRuntime) follow() {
	for {
		select {
		case <-r.quit:
			return
		case <-r.changed:
		}
		r.mu.Lock()
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
	if cr, ok := req.(admin.CreateProcessor); ok {
		doc := cr.Config
		cfgs, err := config.ParseProcessors("processor.create", []byte(doc))
		if err != nil {
			return resp, result.New(result.InvalidRequest, err.Error())
		}
		if len(cfgs) == 0 {
			return resp, result.New(result.InvalidRequest, "processor.create: the config has no processors: list")
		}
		m, err := r.manager()
		if err != nil {
			return resp, err
		}
		for _, c := range cfgs {
			if _, err := m.Describe(c.Name); err == nil {
				return resp, result.New(result.InvalidRequest, fmt.Sprintf("processor %q runs already; choose another name", c.Name))
			}
		}
		// Kept in the committed-offsets log before it runs: it runs
		// again after a restart, and on the other nodes that run
		// processors.
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
