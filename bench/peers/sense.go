package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/bench"
	"github.com/sensehq/sense/client"
)

// sensePipeline is the pipeline the benchmark produces to and reads back.
const sensePipeline = "peers"

func sensePeer() Peer {
	return Peer{
		ID:         senseID,
		System:     "Sense",
		Durability: "fsync always (group commit)",
		Start: func(ctx context.Context, dir string) (Target, error) {
			t, err := startSense(ctx, dir)
			if err != nil {
				return nil, err // not a Target holding a nil pointer
			}
			return t, nil
		},
	}
}

// senseTarget is a dev-mode Sense server in a child process (see
// child.go), a native-protocol producer and a consumer on a connection of
// its own.
type senseTarget struct {
	proc *serverProc
	addr string
	c    *client.Client
	p    *client.Producer

	// The consumer: its client, and its goroutine's cancel and end.
	rc      *client.Client
	cs      *client.Consumer
	cancel  context.CancelFunc
	reading sync.WaitGroup
}

func startSense(ctx context.Context, dir string) (*senseTarget, error) {
	proc, ready, err := startChild(ctx, "sense server", childSpec{Server: "sense", Dir: dir})
	if err != nil {
		return nil, err
	}
	t := &senseTarget{proc: proc, addr: ready.Addr}
	t.c, err = client.Dial(ctx, client.Options{Addr: t.addr, ClientID: "sense-peers"})
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("connecting to sense: %w", err)
	}
	// The consumer needs the pipeline to exist before the first event
	// (which would create it in dev mode): create it with the server's
	// defaults.
	if _, err := t.c.Admin(ctx, admin.CreatePipeline{Pipeline: sensePipeline}); err != nil {
		t.Close()
		return nil, fmt.Errorf("creating pipeline %s: %w", sensePipeline, err)
	}
	// Linger < 0: a batch leaves as soon as a request slot is free, as the
	// other clients here send at once; events accumulate only while
	// MaxInFlight requests are outstanding.
	t.p, err = t.c.NewProducer(ctx, client.ProducerOptions{Pipeline: sensePipeline, Linger: -1})
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("sense producer: %w", err)
	}
	return t, nil
}

// Read consumes every partition of the pipeline from the earliest offset
// with the client's default credit (4 MiB per partition).
func (t *senseTarget) Read(ctx context.Context, onEvent func([]byte)) error {
	var err error
	t.rc, err = client.Dial(ctx, client.Options{Addr: t.addr, ClientID: "sense-peers-reader"})
	if err != nil {
		return fmt.Errorf("connecting the sense consumer: %w", err)
	}
	t.cs, err = t.rc.NewConsumer(ctx, client.ConsumerOptions{Pipeline: sensePipeline, From: client.Earliest})
	if err != nil {
		return fmt.Errorf("sense consumer: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.reading.Go(func() {
		for {
			rec, err := t.cs.Next(rctx)
			if err != nil {
				return // closed; a lost event shows as unread
			}
			onEvent(rec.Value)
		}
	})
	return nil
}

func (t *senseTarget) Publish(_ context.Context, value []byte, onAck func(error)) {
	t.p.Send(client.Event{Value: value}, func(r client.Result) { onAck(r.Err) })
}

func (t *senseTarget) ServerCPU() (bench.CPUTime, error) { return t.proc.CPU() }

func (t *senseTarget) Close() error {
	var errs []error
	if t.cancel != nil {
		t.cancel()
		t.reading.Wait()
	}
	if t.cs != nil {
		t.cs.Close()
	}
	if t.rc != nil {
		t.rc.Close()
	}
	if t.p != nil {
		// Close flushes: every callback has run when it returns.
		if err := t.p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the sense producer: %w", err))
		}
	}
	if t.c != nil {
		t.c.Close()
	}
	if err := t.proc.stop(30 * time.Second); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
