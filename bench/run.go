package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/event"
)

// Profiles and protocols.
const (
	ProfileUniform = "uniform"
	ProfileBursty  = "bursty"
	ProfileMixed   = "mixed"
	ProfileFailure = "failure"

	ProtocolNative = "native"
	ProtocolKafka  = "kafka"
)

// ServerControl kills and restarts the server under test (the failure
// profile).
type ServerControl interface {
	// Kill stops the server at once (SIGKILL).
	Kill() error
	// Restart starts it again on the same addresses and returns once it
	// answers.
	Restart(ctx context.Context) error
}

// Config is one run.
type Config struct {
	// Profile names the run in its results (default uniform). The profile
	// presets (Preset) fill Phases, Mix, SplitClasses, Retries and Faults.
	Profile string
	// Protocol is native (default) or kafka; Addr is the server's listener
	// for it (default client.DefaultAddr).
	Protocol string
	Addr     string
	// Pipeline to produce to and read from (default "bench"). In dev mode
	// the server creates it on the first event.
	Pipeline string
	// Rate is the target publish rate in events/s over all producers;
	// Phases, when set, replace it with rates over time.
	Rate   int64
	Phases []Phase
	// Duration is the length of the load phase (the sum of the Phases'
	// durations when they are set).
	Duration time.Duration
	// Size is each event value's size in bytes (at least HeaderSize).
	Size int
	// Producers and Consumers are the numbers of each, one connection
	// apiece (default 1 each). Consumers share the pipeline's partitions.
	Producers, Consumers int
	// Mix weighs the priority classes low, medium and critical; event i
	// gets the class its position i mod (sum of weights) falls in. All
	// zero means every event is Low.
	Mix [3]int
	// SplitClasses gives each producer one flow (connection) per priority
	// class in the mix, so that critical events never queue behind low
	// ones in the client.
	SplitClasses bool
	// Retries lets the clients retry retriable failures and resend after a
	// broken connection (their idempotent producers). Without it every
	// failure is reported as it came.
	Retries bool
	// Linger is the native producer's linger (0: none).
	Linger time.Duration
	// MaxInFlight is the native producer's MaxInFlight (0: the client's
	// default).
	MaxInFlight int
	// Faults are the offsets into the load at which Server is killed and
	// restarted (failure profile).
	Faults []time.Duration
	Server ServerControl
	// DrainTimeout bounds the wait, after the last acknowledgement, for
	// consumers to see every acknowledged event (default 30s).
	DrainTimeout time.Duration
	// Fsync is the server's durability mode, reported as is.
	Fsync string
	// RunID tags this run's events; 0 picks a random one.
	RunID uint64
	// Probe, when set, samples the server's fsyncs and the CPU steal once
	// per second into the timeline.
	Probe *Probe
	// ServerCPU, when set, returns the CPU time the server has used so
	// far, summed over its incarnations when it is killed and restarted.
	// The run reads it just before the first event is sent and again once
	// the drain has ended, and reports the difference per acknowledged
	// event (Results.ServerCPUUsPerEvent). ProcessCPU reads a local
	// process's.
	ServerCPU func() (CPUTime, error)
	// OnSecond, when set, is called once per second of the load with the
	// figures of the second just ended and the fraction of the load done.
	OnSecond func(s Second, done float64)
}

func (c *Config) normalize() error {
	if c.Profile == "" {
		c.Profile = ProfileUniform
	}
	if c.Protocol == "" {
		c.Protocol = ProtocolNative
	}
	switch c.Protocol {
	case ProtocolNative, ProtocolKafka:
	default:
		return fmt.Errorf("bench: protocol %q: want native or kafka", c.Protocol)
	}
	if c.Addr == "" {
		c.Addr = client.DefaultAddr
	}
	if c.Pipeline == "" {
		c.Pipeline = "bench"
	}
	if len(c.Phases) > 0 {
		c.Duration = 0
		for _, p := range c.Phases {
			c.Duration += p.Duration
		}
		if c.Rate <= 0 {
			c.Rate = c.Phases[0].Rate
		}
	}
	if c.Rate <= 0 {
		return fmt.Errorf("bench: rate %d events/s: must be at least 1", c.Rate)
	}
	if c.Duration <= 0 {
		return fmt.Errorf("bench: duration %v: must be positive", c.Duration)
	}
	if c.Size < HeaderSize {
		return fmt.Errorf("bench: event size %d bytes: must be at least %d (the header)", c.Size, HeaderSize)
	}
	if c.Producers <= 0 {
		c.Producers = 1
	}
	if c.Consumers <= 0 {
		c.Consumers = 1
	}
	for i, w := range c.Mix {
		if w < 0 {
			return fmt.Errorf("bench: priority mix weight %d of %s: must not be negative", w, priorityNames[i])
		}
	}
	if c.Mix == [3]int{} {
		c.Mix = [3]int{1, 0, 0}
	}
	if len(c.Faults) > 0 && c.Server == nil {
		return fmt.Errorf("bench: %d faults asked for but no server to kill: the failure profile needs the bench's own server (no --addr)", len(c.Faults))
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	for c.RunID == 0 {
		c.RunID = rand.Uint64()
	}
	return nil
}

func (c *Config) driver() driver {
	if c.Protocol == ProtocolKafka {
		return &kafkaDriver{addr: c.Addr, pipeline: c.Pipeline, retries: c.Retries}
	}
	linger := c.Linger
	if linger <= 0 {
		linger = -1 // the client's "no wait"
	}
	return &nativeDriver{addr: c.Addr, pipeline: c.Pipeline, linger: linger, inFlight: c.MaxInFlight, retries: c.Retries}
}

// priorityOf returns the class of event seq under mix.
func priorityOf(mix [3]int, seq uint64) event.Priority {
	total := uint64(mix[0] + mix[1] + mix[2])
	pos := seq % total
	for i, w := range mix {
		if pos < uint64(w) {
			return event.Priority(i)
		}
		pos -= uint64(w)
	}
	return event.Low
}

// run is the shared state of one Run.
type run struct {
	cfg      Config
	drv      driver
	sched    Schedule
	verifier *Verifier
	ack, e2e *Recorder
	timeline *Timeline
	// fine is a timeline of 100ms slots keyed by intended send time, for
	// the bursty profile's recovery times (nil otherwise).
	fine *Timeline
	// spikes[k] records the ack and e2e latencies of events due in spike k.
	spikeAck, spikeE2E []*Recorder
	spikeAt            []time.Duration // offsets at which spikes start
	// baseAck records the ack latency of the events due before the first
	// spike: the baseline the recovery times are judged against.
	baseAck *Recorder

	mu       sync.Mutex
	errs     map[string]int64
	shed     [3]int64
	received atomic.Int64
	lastRecv atomic.Int64 // unix nanos
	firstAck chan struct{}
	once     sync.Once
}

// Run runs one profile: Producers send open-loop on the schedule,
// Consumers read the pipeline from its earliest offsets and record
// end-to-end latency, faults are injected when asked, then the run drains
// and verifies. It returns the results, the timeline and the latency
// series and, when verification failed, an error saying what was lost or
// duplicated along with them.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	start := time.Now().Add(50 * time.Millisecond)
	var sched Schedule
	var err error
	if len(cfg.Phases) > 0 {
		sched, err = NewPhasedSchedule(start, cfg.Phases)
	} else {
		sched, err = NewSchedule(cfg.Rate, start)
	}
	if err != nil {
		return nil, err
	}
	n := sched.Count(cfg.Duration)
	r := &run{
		cfg: cfg, drv: cfg.driver(), sched: sched,
		verifier: NewVerifier(cfg.RunID, n),
		ack:      NewRecorder("ack"),
		e2e:      NewRecorder("e2e"),
		timeline: NewTimeline(start, time.Second),
		errs:     map[string]int64{},
		firstAck: make(chan struct{}),
	}
	var at time.Duration
	for _, p := range cfg.Phases {
		if p.Spike {
			r.spikeAt = append(r.spikeAt, at)
			k := len(r.spikeAt)
			r.spikeAck = append(r.spikeAck, NewRecorder(fmt.Sprintf("spike%d_ack", k)))
			r.spikeE2E = append(r.spikeE2E, NewRecorder(fmt.Sprintf("spike%d_e2e", k)))
			r.timeline.Mark(start.Add(at), fmt.Sprintf("spike %d", k))
		}
		at += p.Duration
	}
	if len(r.spikeAt) > 0 {
		r.fine = NewTimeline(start, 100*time.Millisecond)
		r.baseAck = NewRecorder("baseline_ack")
	}

	// Producers first: their first acknowledgement means the pipeline
	// exists, and the consumers start then.
	flows, err := r.openProducers(ctx)
	if err != nil {
		return nil, err
	}
	cpu := startCPU(cfg.ServerCPU)
	var producers sync.WaitGroup
	for k, fl := range flows {
		// With SplitClasses each class has its own sender, so that a
		// blocked low flow never holds back a critical event's send.
		classes := []int{-1}
		if cfg.SplitClasses {
			classes = classes[:0]
			for c, w := range cfg.Mix {
				if w > 0 {
					classes = append(classes, c)
				}
			}
		}
		var senders sync.WaitGroup
		for _, class := range classes {
			pacer, err := NewPacer(sched, k, cfg.Producers, n)
			if err != nil {
				return nil, err
			}
			senders.Go(func() {
				if err := r.produce(ctx, pacer, fl, class); err != nil {
					cancel(err)
				}
			})
		}
		producers.Go(func() {
			senders.Wait()
			// Close waits for every result; a failure it reports was
			// already counted through the events' callbacks.
			_ = fl.close()
		})
	}
	producersDone := make(chan struct{})
	go func() { producers.Wait(); close(producersDone) }()

	stop := make(chan struct{})
	var consumers sync.WaitGroup
	consumeErr := make(chan error, 1)
	consumers.Go(func() {
		if err := r.consumeAll(ctx, stop, producersDone); err != nil {
			consumeErr <- err
			cancel(err)
		}
	})

	var faults []Fault
	var aux sync.WaitGroup
	auxStop := make(chan struct{})
	aux.Go(func() { r.tick(auxStop) })
	if len(cfg.Faults) > 0 {
		aux.Go(func() {
			var err error
			faults, err = r.inject(ctx, auxStop)
			if err != nil {
				cancel(err)
			}
		})
	}

	<-producersDone
	loadEnd := time.Now()
	close(auxStop)
	aux.Wait()
	drainBy := time.NewTimer(cfg.DrainTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
drain:
	for r.verifier.Pending() > 0 {
		select {
		case <-drainBy.C:
			break drain
		case <-ctx.Done():
			break drain
		case <-tick.C:
		}
	}
	drainBy.Stop()
	tick.Stop()
	close(stop)
	consumers.Wait()
	cpu.end()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	select {
	case err := <-consumeErr:
		return nil, err
	default:
	}

	d := r.verifier.Verify()
	load := loadEnd.Sub(start).Seconds()
	res := &Results{
		Profile:         cfg.Profile,
		Protocol:        cfg.Protocol,
		Fsync:           cfg.Fsync,
		EventSize:       cfg.Size,
		DurationS:       load,
		AckLatencyMs:    r.ack.Report(),
		E2ELatencyMs:    r.e2e.Report(),
		Errors:          r.errs,
		Acknowledged:    d.Acknowledged,
		Consumed:        d.Consumed,
		Lost:            d.Lost,
		Duplicated:      d.Duplicated,
		Machine:         ThisMachine(),
		TargetRate:      float64(cfg.Rate),
		Producers:       cfg.Producers,
		Consumers:       cfg.Consumers,
		ShedByPriority:  map[string]int64{},
		UnackedConsumed: d.UnackedConsumed,
		Faults:          faults,
	}
	for c, v := range r.shed {
		res.Shed += v
		res.ShedByPriority[priorityNames[c]] = v
	}
	if load > 0 {
		res.PublishRate = float64(d.Acknowledged) / load
	}
	if last := r.lastRecv.Load(); last > start.UnixNano() {
		res.ConsumeRate = float64(r.received.Load()) / time.Duration(last-start.UnixNano()).Seconds()
	}
	cpu.report(res)
	res.Spikes = r.spikes()
	seconds := r.timeline.Seconds()
	var steal float64
	var sampled int
	for _, s := range seconds {
		if p := s.Probe; p != nil {
			steal += p.StealPct
			sampled++
			res.StealPctMax = max(res.StealPctMax, p.StealPct)
			res.ServerFsyncs += p.FsyncCount
			res.ServerFsyncMaxMs = max(res.ServerFsyncMaxMs, p.FsyncMaxMs)
		}
	}
	if sampled > 0 {
		res.StealPctMean = steal / float64(sampled)
	}
	rep := &Report{Results: res, Timeline: seconds, Marks: r.timeline.Marks(),
		Series: []*Recorder{r.ack, r.e2e}, Extra: slices.Concat(r.spikeAck, r.spikeE2E)}
	if err := d.Err(); err != nil {
		return rep, err
	}
	if pending := d.Acknowledged - d.Consumed; pending > 0 {
		return rep, fmt.Errorf("bench: %d acknowledged events not consumed within the drain timeout %v", pending, cfg.DrainTimeout)
	}
	return rep, nil
}

// cpuWindow is the server's CPU time over a run's measured window.
type cpuWindow struct {
	read       func() (CPUTime, error)
	start, use CPUTime
	err        error
}

// startCPU reads the server's CPU time at the start of the window.
func startCPU(read func() (CPUTime, error)) *cpuWindow {
	w := &cpuWindow{read: read}
	if read != nil {
		w.start, w.err = read()
	}
	return w
}

// end reads it at the end of the window.
func (w *cpuWindow) end() {
	if w.read == nil || w.err != nil {
		return
	}
	cur, err := w.read()
	if err != nil {
		w.err = err
		return
	}
	w.use = cur.Sub(w.start)
}

// report puts the window's figures, or why there are none, in res.
func (w *cpuWindow) report(res *Results) {
	switch {
	case w.read == nil:
		res.ServerCPUNote = "not measured: the bench knows no server process to read; with --addr, give --server-pid PID of the (local) server"
	case w.err != nil:
		res.ServerCPUNote = "not measured: " + w.err.Error()
	case res.Acknowledged == 0:
		res.ServerCPUNote = "not measured: no event was acknowledged"
	default:
		res.ServerCPUUserS = new(w.use.User.Seconds())
		res.ServerCPUSystemS = new(w.use.System.Seconds())
		res.ServerCPUUsPerEvent = new(float64(w.use.Total()) / float64(time.Microsecond) / float64(res.Acknowledged))
	}
}

// openProducers opens each producer's flows: one, or one per class in the
// mix with SplitClasses.
func (r *run) openProducers(ctx context.Context) ([]*flows, error) {
	var out []*flows
	fail := func(err error) ([]*flows, error) {
		for _, f := range out {
			f.close()
		}
		return nil, err
	}
	for k := range r.cfg.Producers {
		f := &flows{}
		out = append(out, f)
		for c := range 3 {
			if r.cfg.Mix[c] == 0 {
				continue
			}
			if !r.cfg.SplitClasses && len(f.own) > 0 {
				f.by[c] = f.own[0]
				continue
			}
			name := fmt.Sprintf("bench-producer-%d", k)
			if r.cfg.SplitClasses {
				name += "-" + priorityNames[c]
			}
			p, err := r.drv.newProducer(ctx, name)
			if err != nil {
				return fail(err)
			}
			f.by[c] = p
			f.own = append(f.own, p)
		}
	}
	return out, nil
}

// flows are one producer's flows by class.
type flows struct {
	by  [3]producerFlow
	own []producerFlow
}

func (f *flows) close() error {
	var errs []error
	for _, p := range f.own {
		errs = append(errs, p.close())
	}
	return errors.Join(errs...)
}

// produce sends one producer's share of the schedule, only the events of
// class when it is not -1.
func (r *run) produce(ctx context.Context, pacer *Pacer, f *flows, class int) error {
	var sendErr error
	var buf []byte // the value, reused when the flow copies it
	for {
		if class >= 0 {
			seq, _, ok := pacer.Peek()
			if ok && int(priorityOf(r.cfg.Mix, seq)) != class {
				pacer.Skip()
				continue
			}
		}
		seq, intended, ok, err := pacer.Next(ctx)
		if err != nil {
			sendErr = err
			break
		}
		if !ok {
			break
		}
		pri := priorityOf(r.cfg.Mix, seq)
		flow := f.by[pri]
		dst := buf[:0]
		if !flow.copiesValue() {
			dst = make([]byte, 0, r.cfg.Size)
		}
		val, err := AppendValue(dst, Header{RunID: r.cfg.RunID, Seq: seq, Intended: intended, Priority: pri}, r.cfg.Size)
		if err != nil {
			sendErr = err
			break
		}
		if flow.copiesValue() {
			buf = val
		}
		sum := Checksum(val)
		flow.send(ctx, pri, val, func(err error, answered time.Time) { r.result(seq, intended, pri, sum, err, answered) })
	}
	return sendErr
}

// result records event seq's outcome (sum: its value's Checksum);
// answered is when its answer was read, or zero to read the clock now.
func (r *run) result(seq uint64, intended time.Time, pri event.Priority, sum uint64, err error, answered time.Time) {
	now := answered
	if now.IsZero() {
		now = time.Now()
	}
	if err != nil {
		r.verifier.Failed(seq, sum)
		code, shed := errorCode(err)
		r.timeline.Failed(now, shed)
		r.mu.Lock()
		r.errs[code]++
		if shed && pri.Valid() {
			r.shed[pri]++
		}
		r.mu.Unlock()
		return
	}
	lat := now.Sub(intended)
	r.ack.Record(pri, lat)
	r.timeline.Acked(now, pri, lat)
	if r.fine != nil {
		r.fine.Acked(intended, pri, lat)
	}
	if k := r.spikeOf(intended); k >= 0 {
		r.spikeAck[k].Record(pri, lat)
	} else if r.baseAck != nil && intended.Sub(r.sched.Start) < r.spikeAt[0] {
		r.baseAck.Record(pri, lat)
	}
	if err := r.verifier.Acked(seq, sum); err != nil {
		r.mu.Lock()
		r.errs["BENCH_DOUBLE_ACK"]++
		r.mu.Unlock()
	}
	r.once.Do(func() { close(r.firstAck) })
}

// spikeOf returns the spike that intended falls in, or -1.
func (r *run) spikeOf(intended time.Time) int {
	if len(r.spikeAt) == 0 {
		return -1
	}
	off := intended.Sub(r.sched.Start)
	at := time.Duration(0)
	k := 0
	for _, p := range r.cfg.Phases {
		if p.Spike {
			if off >= at && off < at+p.Duration {
				return k
			}
			k++
		}
		at += p.Duration
	}
	return -1
}

// tick sets each second's target rate and reports each second a little
// after it ended (acknowledgements of its last events are counted in it
// when they come within tickLag).
const tickLag = 200 * time.Millisecond

func (r *run) tick(stop <-chan struct{}) {
	start := r.sched.Start
	w := r.timeline.Width()
	// A slot's target is the average rate the schedule offers over it.
	target := func(off time.Duration) {
		n := r.sched.Count(min(off+w, r.cfg.Duration)) - r.sched.Count(off)
		r.timeline.Target(start.Add(off), float64(n)/w.Seconds())
	}
	target(0)
	if r.cfg.Probe != nil {
		r.cfg.Probe.sample(context.Background()) // the baseline
	}
	for i := 1; ; i++ {
		off := time.Duration(i) * w
		t := time.NewTimer(time.Until(start.Add(off)))
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		if off < r.cfg.Duration {
			target(off)
		}
		if r.cfg.Probe != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			if ps, ok := r.cfg.Probe.sample(ctx); ok {
				r.timeline.SetProbe(start.Add(off-w), ps)
			}
			cancel()
		}
		if r.cfg.OnSecond == nil {
			continue
		}
		t = time.NewTimer(max(tickLag-time.Since(start.Add(off)), 0))
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		r.cfg.OnSecond(r.timeline.Second(i-1), min(off.Seconds()/r.cfg.Duration.Seconds(), 1))
	}
}

// inject kills and restarts the server at each fault offset.
func (r *run) inject(ctx context.Context, stop <-chan struct{}) ([]Fault, error) {
	var out []Fault
	for i, off := range r.cfg.Faults {
		wait := time.Until(r.sched.Start.Add(off))
		t := time.NewTimer(wait)
		select {
		case <-stop:
			t.Stop()
			return out, nil
		case <-ctx.Done():
			t.Stop()
			return out, nil
		case <-t.C:
		}
		killed := time.Now()
		if err := r.cfg.Server.Kill(); err != nil {
			return out, fmt.Errorf("bench: fault %d: killing the server: %w", i+1, err)
		}
		r.timeline.Mark(killed, fmt.Sprintf("kill %d", i+1))
		if err := r.cfg.Server.Restart(ctx); err != nil {
			return out, fmt.Errorf("bench: fault %d: restarting the server: %w", i+1, err)
		}
		up := time.Now()
		r.timeline.Mark(up, fmt.Sprintf("restart %d", i+1))
		out = append(out, Fault{KilledAtS: r.timeline.Since(killed), RestartedAtS: r.timeline.Since(up)})
	}
	return out, nil
}

// consumeAll waits for the pipeline to exist (the first acknowledgement),
// then runs the consumers over its partitions until stop is closed.
func (r *run) consumeAll(ctx context.Context, stop, producersDone <-chan struct{}) error {
	select {
	case <-r.firstAck:
	case <-producersDone:
		select {
		case <-r.firstAck:
		default:
			return nil // nothing acknowledged: nothing to read
		}
	case <-ctx.Done():
		return nil
	}
	var parts []int32
	for {
		var err error
		parts, err = r.drv.partitions(ctx)
		if err == nil {
			break
		}
		if len(r.cfg.Faults) == 0 || ctx.Err() != nil {
			return err
		}
		// The server may be down for a fault: try again.
		if sleepCtx(ctx, 100*time.Millisecond) != nil {
			return nil
		}
	}
	n := r.cfg.Consumers
	if r.cfg.SplitClasses {
		// A consumer per partition at least, so that records of the low
		// lane never queue ahead of critical ones in one connection.
		n = max(n, len(parts))
	}
	shares := make([][]int32, min(n, max(len(parts), 1)))
	for i, p := range parts {
		shares[i%len(shares)] = append(shares[i%len(shares)], p)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(shares))
	for i, share := range shares {
		if len(share) == 0 {
			continue
		}
		wg.Go(func() { errs[i] = r.consume(ctx, stop, i, share) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *run) consume(ctx context.Context, stop <-chan struct{}, i int, partitions []int32) error {
	var cs consumerFlow
	for cs == nil {
		var err error
		cs, err = r.drv.newConsumer(ctx, fmt.Sprintf("bench-consumer-%d", i), partitions)
		if err != nil {
			if len(r.cfg.Faults) == 0 || ctx.Err() != nil {
				return err
			}
			if sleepCtx(ctx, 100*time.Millisecond) != nil {
				return nil
			}
		}
	}
	defer cs.close()
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		v, received, err := cs.next(ctx, 50*time.Millisecond)
		switch {
		case errors.Is(err, errNoRecord):
			continue
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("bench: consumer %d of partitions %v: %w", i, partitions, err)
		}
		now := received
		if now.IsZero() {
			now = time.Now()
		}
		h, err := DecodeHeader(v)
		if err == nil && h.RunID == r.cfg.RunID {
			lat := now.Sub(h.Intended)
			r.e2e.Record(h.Priority, lat)
			r.timeline.Received(now, lat)
			if k := r.spikeOf(h.Intended); k >= 0 {
				r.spikeE2E[k].Record(h.Priority, lat)
			}
			r.received.Add(1)
			r.lastRecv.Store(now.UnixNano())
		}
		r.verifier.Consumed(v)
	}
}
