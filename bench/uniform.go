package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/event"
)

// Config is one uniform run over the native protocol.
type Config struct {
	// Addr is the node's native listener (default client.DefaultAddr).
	Addr string
	// Pipeline to produce to and read from (default "bench"). In dev mode
	// the server creates it on the first event.
	Pipeline string
	// Rate is the target publish rate in events/s over all producers.
	Rate int64
	// Duration is the length of the load phase.
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
	// DrainTimeout bounds the wait, after the last acknowledgement, for
	// consumers to see every acknowledged event (default 10s).
	DrainTimeout time.Duration
	// Fsync is the server's durability mode, reported as is.
	Fsync string
	// RunID tags this run's events; 0 picks a random one.
	RunID uint64
}

func (c *Config) normalize() error {
	if c.Addr == "" {
		c.Addr = client.DefaultAddr
	}
	if c.Pipeline == "" {
		c.Pipeline = "bench"
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
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 10 * time.Second
	}
	for c.RunID == 0 {
		c.RunID = rand.Uint64()
	}
	return nil
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

// run is the shared state of one RunUniform.
type run struct {
	cfg      Config
	sched    Schedule
	verifier *Verifier
	ack, e2e *Recorder

	mu       sync.Mutex
	errs     map[string]int64
	shed     int64
	received atomic.Int64
	lastRecv atomic.Int64 // unix nanos
	firstAck chan struct{}
	once     sync.Once
}

// RunUniform runs the uniform profile: Producers send open-loop at Rate
// for Duration, Consumers read the pipeline from its earliest offsets and
// record end-to-end latency, then the run drains and verifies. It returns
// the results and, when verification failed, an error saying what was
// lost or duplicated along with them.
func RunUniform(ctx context.Context, cfg Config) (*Results, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	start := time.Now().Add(20 * time.Millisecond)
	sched, err := NewSchedule(cfg.Rate, start)
	if err != nil {
		return nil, err
	}
	n := sched.Count(cfg.Duration)
	r := &run{
		cfg: cfg, sched: sched,
		verifier: NewVerifier(cfg.RunID, n),
		ack:      NewRecorder("ack"),
		e2e:      NewRecorder("e2e"),
		errs:     map[string]int64{},
		firstAck: make(chan struct{}),
	}

	var producers sync.WaitGroup
	for k := range cfg.Producers {
		pacer, err := NewPacer(sched, k, cfg.Producers, n)
		if err != nil {
			return nil, err
		}
		producers.Go(func() {
			if err := r.produce(ctx, pacer, k); err != nil {
				cancel(err)
			}
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

	<-producersDone
	loadEnd := time.Now()
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
		Profile:      "uniform",
		Protocol:     "native",
		Fsync:        cfg.Fsync,
		EventSize:    cfg.Size,
		DurationS:    load,
		AckLatencyMs: r.ack.Report(),
		E2ELatencyMs: r.e2e.Report(),
		Errors:       r.errs,
		Shed:         r.shed,
		Acknowledged: d.Acknowledged,
		Consumed:     d.Consumed,
		Lost:         d.Lost,
		Duplicated:   d.Duplicated,
		Machine:      ThisMachine(),
	}
	if load > 0 {
		res.PublishRate = float64(d.Acknowledged) / load
	}
	if last := r.lastRecv.Load(); last > start.UnixNano() {
		res.ConsumeRate = float64(r.received.Load()) / time.Duration(last-start.UnixNano()).Seconds()
	}
	return res, d.Err()
}

// produce is producer k: it sends its share of the schedule and returns
// once every result has arrived.
func (r *run) produce(ctx context.Context, pacer *Pacer, k int) error {
	c, err := client.Dial(ctx, client.Options{Addr: r.cfg.Addr, ClientID: fmt.Sprintf("bench-producer-%d", k)})
	if err != nil {
		return fmt.Errorf("bench: producer %d: %w", k, err)
	}
	defer c.Close()
	p, err := c.NewProducer(ctx, client.ProducerOptions{Pipeline: r.cfg.Pipeline})
	if err != nil {
		return fmt.Errorf("bench: producer %d on pipeline %q: %w", k, r.cfg.Pipeline, err)
	}
	var sendErr error
	for {
		seq, intended, ok, err := pacer.Next(ctx)
		if err != nil {
			sendErr = err
			break
		}
		if !ok {
			break
		}
		pri := priorityOf(r.cfg.Mix, seq)
		val, err := AppendValue(make([]byte, 0, r.cfg.Size), Header{RunID: r.cfg.RunID, Seq: seq, Intended: intended, Priority: pri}, r.cfg.Size)
		if err != nil {
			sendErr = err
			break
		}
		p.Send(client.Event{Value: val, HasPriority: true, Priority: pri}, func(res client.Result) {
			r.result(seq, intended, pri, val, res)
		})
	}
	if err := p.Close(); err != nil && sendErr == nil {
		sendErr = fmt.Errorf("bench: producer %d closing: %w", k, err)
	}
	return sendErr
}

func (r *run) result(seq uint64, intended time.Time, pri event.Priority, val []byte, res client.Result) {
	if res.Err != nil {
		r.verifier.Failed(seq, val)
		code := wire.CodeOf(res.Err)
		r.mu.Lock()
		r.errs[code.String()]++
		if code == wire.CodeOverloaded {
			r.shed++
		}
		r.mu.Unlock()
		return
	}
	r.ack.Record(pri, time.Since(intended))
	if err := r.verifier.Acked(seq, val); err != nil {
		r.mu.Lock()
		r.errs["BENCH_DOUBLE_ACK"]++
		r.mu.Unlock()
	}
	r.once.Do(func() { close(r.firstAck) })
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
	c, err := client.Dial(ctx, client.Options{Addr: r.cfg.Addr, ClientID: "bench-describe"})
	if err != nil {
		return fmt.Errorf("bench: consumer: %w", err)
	}
	_, parts, err := c.Describe(ctx, r.cfg.Pipeline)
	c.Close()
	if err != nil {
		return fmt.Errorf("bench: describing pipeline %q: %w", r.cfg.Pipeline, err)
	}
	shares := make([][]int32, min(r.cfg.Consumers, max(len(parts), 1)))
	for i, p := range parts {
		shares[i%len(shares)] = append(shares[i%len(shares)], p.Partition)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(shares))
	for i, share := range shares {
		if len(share) == 0 && len(parts) > 0 {
			continue
		}
		wg.Go(func() { errs[i] = r.consume(ctx, stop, i, share) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *run) consume(ctx context.Context, stop <-chan struct{}, i int, partitions []int32) error {
	c, err := client.Dial(ctx, client.Options{Addr: r.cfg.Addr, ClientID: fmt.Sprintf("bench-consumer-%d", i)})
	if err != nil {
		return fmt.Errorf("bench: consumer %d: %w", i, err)
	}
	defer c.Close()
	cs, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: r.cfg.Pipeline, Partitions: partitions, From: client.Earliest})
	if err != nil {
		return fmt.Errorf("bench: consumer %d of partitions %v: %w", i, partitions, err)
	}
	defer cs.Close()
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		rec, err := cs.NextWithin(ctx, 50*time.Millisecond)
		switch {
		case errors.Is(err, client.ErrNoRecord):
			continue
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("bench: consumer %d of partitions %v: %w", i, partitions, err)
		}
		now := time.Now()
		h, err := DecodeHeader(rec.Value)
		if err == nil && h.RunID == r.cfg.RunID {
			r.e2e.Record(h.Priority, now.Sub(h.Intended))
			r.received.Add(1)
			r.lastRecv.Store(now.UnixNano())
		}
		r.verifier.Consumed(rec.Value)
	}
}
