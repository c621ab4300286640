package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/server"
)

// The Go servers (Sense and nats-server) run in a child process like
// redis-server and rabbitmq-server, so that each server's CPU time is its
// own, apart from the clients' and the load generator's: this program
// runs itself again with childEnv set to a childSpec in JSON. The child
// starts the server, prints one childReady line in JSON on stdout, and
// serves until SIGTERM, when it shuts the server down and exits.
const childEnv = "SENSE_PEERS_CHILD"

// childSpec is the server a child runs.
type childSpec struct {
	// Server is "sense" or "nats".
	Server string `json:"server"`
	// Dir holds the server's data.
	Dir string `json:"dir"`
	// SyncAlways is nats-server's JetStream SyncAlways.
	SyncAlways bool `json:"sync_always,omitempty"`
}

// childReady is what a child prints once its server accepts connections.
type childReady struct {
	// Addr is where clients connect: host:port for Sense, a nats://
	// URL for nats-server.
	Addr string `json:"addr"`
	// SyncAlways and SyncInterval are nats-server's effective JetStream
	// sync settings.
	SyncAlways   bool          `json:"sync_always,omitempty"`
	SyncInterval time.Duration `json:"sync_interval,omitempty"`
}

// serveIfChild runs the child's server and exits when this process was
// started as a child; otherwise it returns.
func serveIfChild() {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return
	}
	if err := runChild(spec, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "peers child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runChild starts the server specJSON describes, writes its childReady
// line to out and serves until SIGTERM or SIGINT.
func runChild(specJSON string, out io.Writer) error {
	var spec childSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("%s: %w", childEnv, err)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var ready childReady
	var shutdown func() error
	switch spec.Server {
	case "sense":
		srv, err := startSenseServer(spec.Dir)
		if err != nil {
			return err
		}
		ready.Addr = srv.NativeAddr().String()
		shutdown = func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return srv.Shutdown(ctx)
		}
	case "nats":
		ns, err := startNATSServer(spec.Dir, spec.SyncAlways)
		if err != nil {
			return err
		}
		ready.Addr = ns.ClientURL()
		if c := ns.JetStreamConfig(); c != nil {
			ready.SyncAlways, ready.SyncInterval = c.SyncAlways, c.SyncInterval
		}
		shutdown = func() error {
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil
		}
	default:
		return fmt.Errorf("%s: unknown server %q", childEnv, spec.Server)
	}
	line, err := json.Marshal(ready)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(out, "%s\n", line); err != nil {
		shutdown()
		return err
	}
	<-stop
	return shutdown()
}

// startSenseServer starts a dev-mode Sense server the way sensetest
// does: data in dir, the native listener on a free loopback port, the
// other listeners off, every append fsynced, logs discarded.
func startSenseServer(dir string) (*server.Server, error) {
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
	return srv, nil
}

// startNATSServer starts nats-server with JetStream file storage in dir
// on a free loopback port, logging and signal handling off.
func startNATSServer(dir string, syncAlways bool) (*natsserver.Server, error) {
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
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("nats-server did not accept connections within 10s")
	}
	return ns, nil
}

// startChild runs this program again as a child serving spec, and waits
// for its childReady line.
func startChild(ctx context.Context, name string, spec childSpec) (*serverProc, childReady, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, childReady{}, fmt.Errorf("finding this program to run %s: %w", name, err)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, childReady{}, err
	}
	pr, pw := io.Pipe()
	env := append(os.Environ(), childEnv+"="+string(specJSON))
	p, err := startProc(name, exe, nil, env, pw)
	if err != nil {
		pw.Close()
		return nil, childReady{}, err
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, pr) // the rest is in p.out
	}()
	// The pipe ends when the child's stdout closes.
	go func() { <-p.exited; pw.Close() }()
	fail := func(err error) (*serverProc, childReady, error) {
		p.stop(5 * time.Second)
		return nil, childReady{}, err
	}
	var ready childReady
	select {
	case line, ok := <-lines:
		if !ok {
			<-p.exited
			return fail(p.exitedError())
		}
		if err := json.Unmarshal([]byte(line), &ready); err != nil || ready.Addr == "" {
			return fail(fmt.Errorf("%s: unexpected first line %q: %s", name, line, strings.TrimSpace(p.out.String())))
		}
	case <-time.After(30 * time.Second):
		return fail(fmt.Errorf("%s did not start within 30s: %s", name, strings.TrimSpace(p.out.String())))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	return p, ready, nil
}
