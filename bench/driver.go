package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/result"
)

// errNoRecord is what a consumer flow's next returns when nothing arrived
// within the wait.
var errNoRecord = errors.New("bench: no record within the wait")

// driver speaks one protocol to the server under test.
type driver interface {
	// newProducer opens one producer flow (its own connection).
	newProducer(ctx context.Context, name string) (producerFlow, error)
	// partitions lists the pipeline's partitions; it exists by then.
	partitions(ctx context.Context) ([]int32, error)
	// newConsumer opens a consumer of partitions from their earliest
	// offsets. It reconnects by itself after a broken connection and
	// resumes where it was.
	newConsumer(ctx context.Context, name string, partitions []int32) (consumerFlow, error)
}

// producerFlow sends events; send may block for backpressure. done is
// called once per event, from any goroutine, with nil when the event is
// acknowledged, and when the answer was read (zero when the client does
// not say: the caller reads the clock).
type producerFlow interface {
	send(ctx context.Context, p event.Priority, value []byte, done func(err error, answered time.Time))
	// copiesValue says whether send is done with value when it returns
	// (the caller may then reuse it), or keeps it until done is called.
	copiesValue() bool
	close() error
}

// consumerFlow returns record values one at a time, with when they were
// read (zero when the client does not say: the caller reads the clock):
// errNoRecord when none came within wait.
type consumerFlow interface {
	next(ctx context.Context, wait time.Duration) ([]byte, time.Time, error)
	close()
}

// errorCode names err for the errors table, and says whether the server
// shed the event.
func errorCode(err error) (code string, shed bool) {
	var we *result.Error
	var ce *client.ConnError
	switch {
	case errors.As(err, &we):
		c := result.CodeOf(err)
		return c.String(), c == result.Overloaded
	case errors.As(err, &ce):
		return "CONNECTION_LOST", false
	case errors.Is(err, client.ErrClosed):
		return "CLIENT_CLOSED", false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "CANCELLED", false
	}
	if k, ok := kafkaCode(err); ok {
		return k, k == "NOT_ENOUGH_REPLICAS"
	}
	return "CLIENT_ERROR", false
}

// nativeDriver speaks the native protocol through the Go client.
type nativeDriver struct {
	addr, pipeline string
	linger         time.Duration
	inFlight       int
	retries        bool
}

func (d *nativeDriver) newProducer(ctx context.Context, name string) (producerFlow, error) {
	c, err := client.Dial(ctx, client.Options{Addr: d.addr, ClientID: name})
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	opts := client.ProducerOptions{Pipeline: d.pipeline, Linger: d.linger, MaxInFlight: d.inFlight, MaxRetries: -1}
	if d.retries {
		opts.MaxRetries = 0 // the client's default
	}
	p, err := c.NewProducer(ctx, opts)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("bench: %s on pipeline %q: %w", name, d.pipeline, err)
	}
	return &nativeProducer{c: c, p: p}, nil
}

type nativeProducer struct {
	c *client.Client
	p *client.Producer
}

func (n *nativeProducer) send(_ context.Context, p event.Priority, value []byte, done func(error, time.Time)) {
	n.p.Send(client.Event{Value: value, HasPriority: true, Priority: p}, func(r client.Result) { done(r.Err, r.Answered) })
}

// copiesValue: client.Producer.Send copies the event's bytes.
func (n *nativeProducer) copiesValue() bool { return true }

func (n *nativeProducer) close() error {
	err := n.p.Close()
	n.c.Close()
	return err
}

func (d *nativeDriver) partitions(ctx context.Context) ([]int32, error) {
	c, err := client.Dial(ctx, client.Options{Addr: d.addr, ClientID: "bench-describe"})
	if err != nil {
		return nil, fmt.Errorf("bench: describing pipeline %q: %w", d.pipeline, err)
	}
	defer c.Close()
	_, parts, err := c.Describe(ctx, d.pipeline)
	if err != nil {
		return nil, fmt.Errorf("bench: describing pipeline %q: %w", d.pipeline, err)
	}
	out := make([]int32, len(parts))
	for i, p := range parts {
		out[i] = p.Partition
	}
	return out, nil
}

func (d *nativeDriver) newConsumer(ctx context.Context, name string, partitions []int32) (consumerFlow, error) {
	n := &nativeConsumer{d: d, name: name, parts: partitions, resume: map[int32]int64{}}
	if err := n.open(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// nativeConsumer reads partitions and, when its connection breaks (the
// server was killed), reopens at each partition's next offset.
type nativeConsumer struct {
	d      *nativeDriver
	name   string
	parts  []int32
	resume map[int32]int64
	c      *client.Client
	cs     *client.Consumer
}

func (n *nativeConsumer) open(ctx context.Context) error {
	c, err := client.Dial(ctx, client.Options{Addr: n.d.addr, ClientID: n.name})
	if err != nil {
		return fmt.Errorf("bench: %s: %w", n.name, err)
	}
	cs, err := c.NewConsumer(ctx, client.ConsumerOptions{Pipeline: n.d.pipeline, Partitions: n.parts,
		From: client.Earliest, Starts: n.resume})
	if err != nil {
		c.Close()
		return fmt.Errorf("bench: %s of partitions %v: %w", n.name, n.parts, err)
	}
	n.c, n.cs = c, cs
	return nil
}

func (n *nativeConsumer) next(ctx context.Context, wait time.Duration) ([]byte, time.Time, error) {
	if n.cs == nil {
		if err := n.open(ctx); err != nil {
			// The server may be restarting: the caller tries again.
			sleepCtx(ctx, wait)
			return nil, time.Time{}, errNoRecord
		}
	}
	rec, err := n.cs.NextWithin(ctx, wait)
	switch {
	case errors.Is(err, client.ErrNoRecord):
		return nil, time.Time{}, errNoRecord
	case err != nil && ctx.Err() == nil:
		// The connection broke: reopen on the next call.
		n.close()
		return nil, time.Time{}, errNoRecord
	case err != nil:
		return nil, time.Time{}, err
	}
	n.resume[rec.Partition] = rec.Offset + 1
	return rec.Value, rec.Received, nil
}

func (n *nativeConsumer) close() {
	if n.cs != nil {
		n.cs.Close()
		n.c.Close()
		n.cs, n.c = nil, nil
	}
}
