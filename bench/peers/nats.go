package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// natsTarget is an embedded nats-server with JetStream file storage and a
// nats.go client publishing asynchronously with acks.
type natsTarget struct {
	ns *natsserver.Server
	nc *nats.Conn
	js jetstream.JetStream

	mu      sync.Mutex
	pending map[*nats.Msg]func(error)
}

func startNATS(ctx context.Context, dir string, syncAlways bool) (*natsTarget, error) {
	opts := &natsserver.Options{
		Host:       "127.0.0.1",
		Port:       natsserver.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: syncAlways,
		NoLog:      true,
		NoSigs:     true,
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats-server options: %w", err)
	}
	go ns.Start()
	t := &natsTarget{ns: ns, pending: map[*nats.Msg]func(error){}}
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Close()
		return nil, errors.New("nats-server did not accept connections within 10s")
	}
	if t.nc, err = nats.Connect(ns.ClientURL(), nats.Name("sense-peers")); err != nil {
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

// syncConfig returns the server's effective JetStream sync settings.
func (t *natsTarget) syncConfig() (always bool, interval time.Duration) {
	c := t.ns.JetStreamConfig()
	if c == nil {
		return false, 0
	}
	return c.SyncAlways, c.SyncInterval
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
	if t.js != nil {
		// Fails every pending publish through the error handler.
		t.js.CleanupPublisher()
	}
	if t.nc != nil {
		t.nc.Close()
	}
	t.ns.Shutdown()
	t.ns.WaitForShutdown()
	t.mu.Lock()
	left := t.pending
	t.pending = map[*nats.Msg]func(error){}
	t.mu.Unlock()
	for _, onAck := range left {
		onAck(errNATSClosed)
	}
	return nil
}
