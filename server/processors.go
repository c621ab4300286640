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

	mu      sync.Mutex
	cfgs    []config.Processor
	mgr     *processor.Manager // nil while not running here
	quit    chan struct{}
	done    chan struct{}
	started bool
}

func newProcessorRuntime(n *node.Node, offsets *group.Store, cfg *config.Config, kafkaSeed string, log *slog.Logger) *processorRuntime {
	r := &processorRuntime{n: n, offsets: offsets, log: log, nodeID: cfg.Node.ID,
		cfgs: append([]config.Processor(nil), cfg.Processors...), quit: make(chan struct{}), done: make(chan struct{})}
	if !cfg.DevMode() {
		if kafkaSeed != "" {
			r.kafkaSeed = kafkaSeed
		} else {
			r.gated = true
		}
	}
	return r
}

// start starts the configured processors (a node alone), or the watch for
// the offsets' leadership (a cluster).
func (r *processorRuntime) start() error {
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
	if !r.gated {
		close(r.done)
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.runLocked()
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
		case ready && r.mgr == nil && len(r.cfgs) > 0:
			if err := r.runLocked(); err != nil {
				r.log.Error("processors cannot start", "err", err)
			} else {
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
	if c, ok := req.(admin.CreateProcessor); ok {
		cfgs, err := config.ParseProcessors("processor.create", []byte(c.Config))
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
		if err := m.Start(context.Background(), cfgs); err != nil {
			if result.CodeOf(err) == result.Unknown {
				err = result.New(result.InvalidRequest, err.Error())
			}
			return resp, err
		}
		r.mu.Lock()
		r.cfgs = append(r.cfgs, cfgs...)
		r.mu.Unlock()
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
