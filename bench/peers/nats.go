package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sensehq/sense/bench"
)

// NATS stream and subject the benchmark publishes to.
const (
	natsStream  = "PEERS"
	natsSubject = "peers"
)

// natsMaxPending is the JetStream context's bound on unanswered async
// publishes. It is far above any window, so that the load code's window,
// the same for every system, is the one that binds (and a publish never
// stalls in the client).
const natsMaxPending = 1 << 20

// natsDefaultSync is nats-server's default JetStream sync interval
// (defaultSyncInterval), checked by the tests against the server's
// effective configuration.
const natsDefaultSync = 2 * time.Minute

// errNATSClosed answers the publishes still pending when the target
// closes.
var errNATSClosed = errors.New("nats: target closed with the publish unanswered")

func natsPeer(id string, syncAlways bool) Peer {
	durability := "JetStream default sync (2m)"
	if syncAlways {
		durability = "JetStream SyncAlways"
	}
	return Peer{
		ID:         id,
		System:     "NATS JetStream",
		Durability: durability,
		Start: func(ctx context.Context, dir string) (Target, error) {
			t, err := startNATS(ctx, dir, syncAlways)
			if err != nil {
				return nil, err // not a Target holding a nil pointer
			}
			return t, nil
		},
	}
}

// natsTarget is a nats-server with JetStream file storage in a child
// process (see child.go), a nats.go client publishing asynchronously
// with acks, and an ordered consumer on a connection of its own.
type natsTarget struct {
	proc  *serverProc
	ready childReady
	nc    *nats.Conn
	js    jetstream.JetStream

	mu      sync.Mutex
	pending map[*nats.Msg]func(error)

	// The consumer: its connection and its subscription.
	rc   *nats.Conn
	cons jetstream.ConsumeContext
}

func startNATS(ctx context.Context, dir string, syncAlways bool) (*natsTarget, error) {
	proc, ready, err := startChild(ctx, "nats-server", childSpec{Server: "nats", Dir: dir, SyncAlways: syncAlways})
	if err != nil {
		return nil, err
	}
	t := &natsTarget{proc: proc, ready: ready, pending: map[*nats.Msg]func(error){}}
	// Check that the server runs in the mode the table states.
	if ready.SyncAlways != syncAlways || (!syncAlways && ready.SyncInterval != natsDefaultSync) {
		t.Close()
		return nil, fmt.Errorf("nats-server runs with SyncAlways %v and sync interval %v; want %v and %v", ready.SyncAlways, ready.SyncInterval, syncAlways, natsDefaultSync)
	}
	if t.nc, err = nats.Connect(ready.Addr, nats.Name("sense-peers")); err != nil {
		t.Close()
		return nil, fmt.Errorf("connecting to nats-server: %w", err)
	}
	t.js, err = jetstream.New(t.nc,
		jetstream.WithPublishAsyncMaxPending(natsMaxPending),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) { t.answer(m, nil) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) { t.answer(m, err) }),
	)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	_, err = t.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     natsStream,
		Subjects: []string{natsSubject},
		Storage:  jetstream.FileStorage,
		Replicas: 1,
	})
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("creating stream %s: %w", natsStream, err)
	}
	return t, nil
}

// Read consumes the stream from its first message with an ordered
// consumer (ephemeral, no acks, flow-controlled pulls of the client's
// default 500 messages).
func (t *natsTarget) Read(ctx context.Context, onEvent func([]byte)) error {
	var err error
	if t.rc, err = nats.Connect(t.ready.Addr, nats.Name("sense-peers-reader")); err != nil {
		return fmt.Errorf("connecting the nats consumer: %w", err)
	}
	js, err := jetstream.New(t.rc)
	if err != nil {
		return fmt.Errorf("jetstream context for the consumer: %w", err)
	}
	c, err := js.OrderedConsumer(ctx, natsStream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("ordered consumer on %s: %w", natsStream, err)
	}
	t.cons, err = c.Consume(func(m jetstream.Msg) { onEvent(m.Data()) })
	if err != nil {
		return fmt.Errorf("consuming %s: %w", natsStream, err)
	}
	return nil
}

func (t *natsTarget) ServerCPU() (bench.CPUTime, error) { return t.proc.CPU() }

// syncConfig returns the server's effective JetStream sync settings, as
// the child reported them.
func (t *natsTarget) syncConfig() (always bool, interval time.Duration) {
	return t.ready.SyncAlways, t.ready.SyncInterval
}

func (t *natsTarget) Publish(_ context.Context, value []byte, onAck func(error)) {
	m := &nats.Msg{Subject: natsSubject, Data: value}
	t.mu.Lock()
	t.pending[m] = onAck
	t.mu.Unlock()
	// An error here means the publish was not registered: no handler
	// will run for it.
	if _, err := t.js.PublishMsgAsync(m); err != nil {
		t.answer(m, err)
	}
}

// answer calls m's callback once.
func (t *natsTarget) answer(m *nats.Msg, err error) {
	t.mu.Lock()
	onAck, ok := t.pending[m]
	delete(t.pending, m)
	t.mu.Unlock()
	if ok {
		onAck(err)
	}
}

func (t *natsTarget) Close() error {
	if t.cons != nil {
		t.cons.Stop()
	}
	if t.rc != nil {
		t.rc.Close()
	}
	if t.js != nil {
		// Fails every pending publish through the error handler.
		t.js.CleanupPublisher()
	}
	if t.nc != nil {
		t.nc.Close()
	}
	err := t.proc.stop(30 * time.Second)
	t.mu.Lock()
	left := t.pending
	t.pending = map[*nats.Msg]func(error){}
	t.mu.Unlock()
	for _, onAck := range left {
		onAck(errNATSClosed)
	}
	return err
}
