package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/result"
)

// Options configure a Manager.
type Options struct {
	// Source is where processors read and write.
	Source Source
	// Group runs the processors' consumer groups and keeps their
	// offsets: a KafkaGroup, shared with other processes; nil: a
	// LocalGroup of a coordinator of the Manager's own and Offsets.
	Group Group
	// Offsets holds the committed offsets of a LocalGroup (group.Store).
	Offsets Offsets
	// Registerer receives the processors' metrics; nil: none.
	Registerer prometheus.Registerer
	// ClientID names this process in the groups (the node's id).
	ClientID string
	Logger   *slog.Logger
}

// Manager runs the processors of a process.
type Manager struct {
	opts   Options
	grp    Group
	co     *group.Coordinator // of a LocalGroup, nil otherwise
	m      *metrics
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	procs map[string]*Processor
}

// ErrUnknownProcessor is returned for a name no processor has.
var ErrUnknownProcessor = errors.New("processor: no such processor")

// NewManager returns a Manager with no processors.
func NewManager(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Manager{opts: opts, grp: opts.Group, m: newMetrics(opts.Registerer), procs: map[string]*Processor{}}
	if m.grp == nil {
		m.co = group.NewCoordinator(group.Config{})
		m.grp = LocalGroup{Co: m.co, Store: opts.Offsets}
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// Start builds and starts the processors of cfgs, validated (by config's
// Validate or ParseProcessors). It starts none when one cannot be built:
// a name already running, a jurisdiction the registry does not know, a
// sink that cannot be reached to be set up.
func (m *Manager) Start(ctx context.Context, cfgs []config.Processor) error {
	reg, err := m.opts.Source.Registry(ctx)
	if err != nil {
		return fmt.Errorf("processor: read the jurisdiction registry: %w", err)
	}
	var built []*Processor
	fail := func(err error) error {
		for _, p := range built {
			p.sink.Close()
		}
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, cfg := range cfgs {
		if _, dup := m.procs[cfg.Name]; dup {
			return fail(result.New(result.InvalidRequest, fmt.Sprintf("processors[%d].name %q: a processor of that name runs already; pick another name", i, cfg.Name)))
		}
		sink, err := NewSink(ctx, cfg, SinkEnv{Source: m.opts.Source, Registry: reg})
		if err != nil {
			return fail(fmt.Errorf("processors[%d] %s: %w", i, cfg.Name, err))
		}
		p, err := newProcessor(cfg, m.opts.Source, reg, m.grp, sink, m.m, m.opts.ClientID, m.opts.Logger)
		if err != nil {
			sink.Close()
			return fail(err)
		}
		built = append(built, p)
	}
	for _, p := range built {
		m.procs[p.cfg.Name] = p
		var ctx context.Context
		ctx, p.stop = context.WithCancel(m.ctx)
		p.done = make(chan struct{})
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer close(p.done)
			p.run(ctx)
		}()
		m.opts.Logger.Info("processor started", "processor", p.cfg.Name, "pipeline", p.cfg.From.Pipeline, "sink", p.cfg.Sink.Type, "paused", p.cfg.Paused)
	}
	return nil
}

func (m *Manager) get(name string) (*Processor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.procs[name]
	if p == nil {
		return nil, result.New(result.InvalidRequest, fmt.Sprintf("no processor %q here; sense processor list shows those that run", name))
	}
	return p, nil
}

// Names returns the names of the processors, sorted.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.procs))
}

// List describes every processor, without partitions.
func (m *Manager) List() []admin.ProcessorInfo {
	m.mu.Lock()
	ps := make([]*Processor, 0, len(m.procs))
	for _, p := range m.procs {
		ps = append(ps, p)
	}
	m.mu.Unlock()
	sort.Slice(ps, func(i, j int) bool { return ps[i].cfg.Name < ps[j].cfg.Name })
	out := make([]admin.ProcessorInfo, len(ps))
	for i, p := range ps {
		out[i] = p.info(false)
	}
	return out
}

// Describe describes one processor with its partitions.
func (m *Manager) Describe(name string) (admin.ProcessorInfo, error) {
	p, err := m.get(name)
	if err != nil {
		return admin.ProcessorInfo{}, err
	}
	return p.info(true), nil
}

// Pause stops a processor's deliveries; it returns once none runs.
func (m *Manager) Pause(name string) error {
	p, err := m.get(name)
	if err != nil {
		return err
	}
	p.pause()
	return nil
}

// Resume starts a paused processor again.
func (m *Manager) Resume(name string) error {
	p, err := m.get(name)
	if err != nil {
		return err
	}
	p.resume()
	return nil
}

// Reset moves a processor to "beginning", "end" or an offset (clamped to
// each partition's range) on every partition it reads, paused meanwhile.
// A sink that keeps its own offsets (postgres) has them reset too.
func (m *Manager) Reset(ctx context.Context, name, to string) error {
	p, err := m.get(name)
	if err != nil {
		return err
	}
	var off int64
	switch to {
	case "beginning", "end":
	default:
		if off, err = strconv.ParseInt(to, 10, 64); err != nil || off < 0 {
			return result.New(result.InvalidRequest, fmt.Sprintf("--to %q: use beginning, end or an offset >= 0", to))
		}
	}
	p.mu.Lock()
	wasPaused := p.paused
	p.mu.Unlock()
	p.pause()
	if !wasPaused {
		defer p.resume()
	}
	parts, err := m.opts.Source.Partitions(ctx, p.cfg.From.Pipeline)
	if err != nil {
		return err
	}
	var commits []group.OffsetCommit
	pos := map[int32]int64{}
	for _, sp := range parts {
		if !p.lanes[sp.Lane] {
			continue
		}
		o := sp.Start
		switch to {
		case "end":
			o = sp.HighWatermark
		case "beginning":
		default:
			o = min(max(off, sp.Start), sp.HighWatermark)
		}
		pos[sp.Partition] = o
		commits = append(commits, group.OffsetCommit{TopicPartition: group.TopicPartition{Topic: p.cfg.From.Pipeline, Partition: sp.Partition},
			CommittedOffset: group.CommittedOffset{Offset: o, LeaderEpoch: -1}})
	}
	if r, ok := p.sink.(positionSetter); ok {
		if err := r.SetPositions(ctx, p.cfg.Name, p.cfg.From.Pipeline, pos); err != nil {
			return fmt.Errorf("reset the offsets the %s sink keeps: %w", p.cfg.Sink.Type, err)
		}
	}
	err = m.grp.Commit(ctx, group.MemberRef{Group: p.group, Generation: -1}, commits)
	if errors.Is(err, group.ErrUnknownMemberID) || errors.Is(err, group.ErrIllegalGeneration) || errors.Is(err, group.ErrRebalanceInProgress) {
		return result.New(result.InvalidRequest, fmt.Sprintf("reset %s: other members of the group %s are running (on other nodes or sense process instances); pause the processor on each of them first", name, p.group))
	}
	return err
}

// Remove stops a processor: its deliveries end, its member leaves the
// group, its sink is closed, and its metrics are forgotten. It returns the
// processor's config. Its group's committed offsets stay; the caller
// decides what becomes of them (sense processor delete removes them).
func (m *Manager) Remove(name string) (config.Processor, error) {
	m.mu.Lock()
	p := m.procs[name]
	delete(m.procs, name)
	m.mu.Unlock()
	if p == nil {
		return config.Processor{}, result.New(result.InvalidRequest, fmt.Sprintf("no processor %q here; sense processor list shows those that run", name))
	}
	p.stop()
	<-p.done
	err := p.sink.Close()
	m.m.forget(name)
	m.opts.Logger.Info("processor stopped and removed", "processor", name)
	if err != nil {
		return p.cfg, fmt.Errorf("processor %s: close the sink: %w", name, err)
	}
	return p.cfg, nil
}

// positionSetter is an OffsetKeeper whose offsets Reset can move.
type positionSetter interface {
	SetPositions(ctx context.Context, processor, pipeline string, pos map[int32]int64) error
}

// Close stops every processor and closes the sinks.
func (m *Manager) Close() error {
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for name, p := range m.procs {
		if err := p.sink.Close(); err != nil {
			errs = append(errs, fmt.Errorf("processor %s: close the sink: %w", name, err))
		}
		m.m.forget(name)
	}
	if m.co != nil {
		m.co.Close()
	}
	return errors.Join(errs...)
}

// NewSink builds the sink of cfg.
func NewSink(ctx context.Context, cfg config.Processor, env SinkEnv) (Sink, error) {
	switch cfg.Sink.Type {
	case config.SinkWebhook:
		return newWebhookSink(cfg, env), nil
	case config.SinkFile:
		return newFileSink(cfg, env)
	case config.SinkPostgres:
		s, err := newPostgresSink(ctx, cfg)
		if err != nil {
			return nil, err
		}
		s.reg = env.Registry
		return s, nil
	case config.SinkPipeline:
		return &pipelineSink{pipelineWriter{src: env.Source, target: cfg.Sink.Pipeline}}, nil
	case config.SinkKafka:
		if cfg.Sink.Transactional {
			return newKafkaTxnSink(cfg, env)
		}
		return newKafkaSink(cfg, env)
	case config.SinkClickHouse:
		return newClickHouseSink(cfg, env), nil
	}
	return nil, fmt.Errorf("sink.type %q is not a sink type; use webhook, file, postgres, pipeline or kafka", cfg.Sink.Type)
}
