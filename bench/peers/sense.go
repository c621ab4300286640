package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/server"
)

// sensePipeline is the pipeline the benchmark produces to; dev mode
// creates it on the first event.
const sensePipeline = "peers"

func sensePeer() Peer {
	return Peer{
		ID:         senseID,
		System:     "Sense",
		Durability: "fsync always (group commit)",
		Start:      startSense,
	}
}

// senseTarget is an in-process dev-mode server, the way sensetest starts
// one, with a native-protocol producer.
type senseTarget struct {
	srv *server.Server
	c   *client.Client
	p   *client.Producer
}

func startSense(ctx context.Context, dir string) (Target, error) {
	cfg := new(config.Config)
	cfg.Node.DataDir = dir
	cfg.Listeners.Native = "127.0.0.1:0"
	cfg.Listeners.HTTP = config.ListenerOff
	cfg.Listeners.Kafka = config.ListenerOff
	cfg.Listeners.QUIC = config.ListenerOff
	cfg.Durability.Fsync = seglog.Durability{Mode: seglog.SyncAlways}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sense config: %w", err)
	}
	srv, err := server.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("starting the sense server: %w", err)
	}
	t := &senseTarget{srv: srv}
	t.c, err = client.Dial(ctx, client.Options{Addr: srv.NativeAddr().String(), ClientID: "sense-peers"})
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("connecting to sense: %w", err)
	}
	// Linger < 0: a batch leaves as soon as a request slot is free, as the
	// NATS and Redis clients here send at once; events accumulate only
	// while MaxInFlight requests are outstanding.
	t.p, err = t.c.NewProducer(ctx, client.ProducerOptions{Pipeline: sensePipeline, Linger: -1})
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("sense producer: %w", err)
	}
	return t, nil
}

func (t *senseTarget) Publish(_ context.Context, value []byte, onAck func(error)) {
	t.p.Send(client.Event{Value: value}, func(r client.Result) { onAck(r.Err) })
}

func (t *senseTarget) Close() error {
	var errs []error
	if t.p != nil {
		// Close flushes: every callback has run when it returns.
		if err := t.p.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the sense producer: %w", err))
		}
	}
	if t.c != nil {
		t.c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := t.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stopping the sense server: %w", err))
	}
	return errors.Join(errs...)
}
