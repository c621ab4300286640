// Package sensetest starts in-process Sense servers for tests: real
// listeners on loopback, real logs in a temporary directory. Start runs one
// node; StartCluster runs N nodes of one cluster, which can be stopped and
// started again on the same ports and data, and, WithLinks, with an
// in-process proxy on every directed path of cluster traffic (Link: cut,
// heal, delay; Cluster.Isolate and Rejoin for a node).
package sensetest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/server"
)

// Option changes the configuration Start uses, after its own loopback
// listeners are set.
type Option func(*config.Config)

// WithQUIC turns the QUIC listener on, on a loopback UDP port chosen by the
// kernel (Server.QUICAddr), with a self-signed certificate whose
// fingerprint is Server.QUICFingerprint.
func WithQUIC() Option {
	return func(c *config.Config) { c.Listeners.QUIC = "127.0.0.1:0" }
}

// Start runs a dev-mode server (or one from yaml, when given) on loopback
// ports chosen by the kernel, with its data in t.TempDir(). QUIC is off
// unless WithQUIC is given. It stops when the test ends.
func Start(t testing.TB, yaml string, opts ...Option) *server.Server {
	t.Helper()
	var cfg *config.Config
	var err error
	if yaml == "" {
		cfg = new(config.Config)
	} else if cfg, err = config.Parse("test.yaml", []byte(yaml)); err != nil {
		t.Fatal(err)
	}
	cfg.Node.DataDir = t.TempDir()
	cfg.Listeners.Native = "127.0.0.1:0"
	cfg.Listeners.HTTP = "127.0.0.1:0"
	cfg.Listeners.Kafka = "127.0.0.1:0"
	cfg.Listeners.QUIC = config.ListenerOff
	for _, o := range opts {
		o(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv
}
