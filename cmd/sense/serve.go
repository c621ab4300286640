package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"log/slog"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/server"
)

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Sense node",
		Long: `Run a Sense node. With no configuration it runs on the embedded default (dev
mode): one hub "local" that takes every jurisdiction, data in ./data, the native
protocol on 127.0.0.1:7070 (TCP) and on 127.0.0.1:7071 (QUIC, UDP; a self-signed
certificate is made at start and its fingerprint printed), and HTTP (health,
readiness, metrics, admin) on 127.0.0.1:8080. Pipelines are created on first
produce.

Configuration comes from a YAML file (--config or SENSE_CONFIG), then SENSE_*
environment variables, then flags; flags win. See docs/configuration.md.

SIGTERM and SIGINT stop accepting, finish the requests in flight, sync and exit
0. SIGHUP reloads the file and swaps the routing table without dropping
connections, and reads every TLS certificate, key and CA file again (new
connections get them; see docs/security.md).`,
		Example: `  # Run on the embedded default
  sense serve

  # Run a three-hub layout from a file, with data elsewhere
  sense serve --config sense.yaml --data /var/lib/sense`,
		Args: cobra.NoArgs,
		RunE: runServe,
	}
	config.RegisterFlags(cmd.Flags())
	return cmd
}

func runServe(cmd *cobra.Command, _ []string) error {
	cfg, err := config.Load(cmd.Flags(), os.Environ())
	if err != nil {
		return err
	}
	log := slog.New(cfg.Log.Handler(os.Stderr, term.IsTerminal(int(os.Stderr.Fd()))))
	slog.SetDefault(log)
	// The ingress budget bounds what requests hold; a soft limit for the
	// garbage collector a little above it keeps freed buffers from piling
	// up under load. GOMEMLIMIT, when set, wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(cfg.Router.MemoryLimit) + 128<<20)
	}
	// Signals are caught from the start, so a SIGTERM during recovery still
	// stops cleanly.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	if dir := os.Getenv("SENSE_CPUPROFILE"); dir != "" {
		stop, err := startCPUProfile(filepath.Join(dir, "cpu-"+cfg.Node.ID+".pprof"))
		if err != nil {
			return err
		}
		defer stop()
	}
	srv, err := server.Start(cfg, log)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "sense %s serving (node %s, dev mode %v)\n", versionString(), cfg.Node.ID, cfg.DevMode())
	fmt.Fprintf(out, "  data:     %s (fsync %s)\n", cfg.Node.DataDir, cfg.Durability.Fsync)
	tlsNote := func(listener string) string {
		if l := cfg.TLS.Listener(listener); l.Enabled {
			return fmt.Sprintf(" (TLS, client certificates: %s)", l.ClientAuth)
		}
		return ""
	}
	if a := srv.NativeAddr(); a != nil {
		fmt.Fprintf(out, "  native:   %s%s\n", a, tlsNote(config.ListenerNative))
	}
	if a := srv.QUICAddr(); a != nil {
		fp, self := srv.QUICFingerprint()
		kind := "certificate"
		if self {
			kind = "self-signed certificate, pin with --server-fingerprint"
		}
		fmt.Fprintf(out, "  quic:     %s/udp (ALPN sense/1; %s)\n", a, kind)
		fmt.Fprintf(out, "            sha256 %s\n", fp)
	}
	if a := srv.KafkaAddr(); a != nil {
		fmt.Fprintf(out, "  kafka:    %s (advertised to clients as %s)%s\n", a, srv.KafkaAdvertised(), tlsNote(config.ListenerKafka))
	}
	if a := srv.HTTPAddr(); a != nil {
		scheme := "http"
		if cfg.TLS.Listener(config.ListenerHTTP).Enabled {
			scheme = "https"
		}
		fmt.Fprintf(out, "  http:     %s://%s (/v1/pipelines/{name}/events, /healthz /readyz /metrics /v1/admin)%s\n", scheme, a, tlsNote(config.ListenerHTTP))
	}
	for _, h := range cfg.Hubs {
		fmt.Fprintf(out, "  hub:      %s (%s, %s)\n", h.Name, h.Jurisdiction, h.Status)
	}
	for {
		select {
		case err := <-srv.Errors():
			log.Error("listener failed; stopping", "err", err)
			shutdown(srv, log)
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload(cmd, srv, log)
				continue
			}
			log.Info("stopping", "signal", sig.String())
			return shutdown(srv, log)
		}
	}
}

// startCPUProfile profiles the node's CPU into path until stop is called
// (SENSE_CPUPROFILE, docs/operations.md): a way to see where a node's time
// goes, for instance in each node of "sense bench --cluster 3".
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("SENSE_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("SENSE_CPUPROFILE: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		// Beside it, what the run allocated (go tool pprof -sample_index=alloc_space).
		if a, err := os.Create(strings.TrimSuffix(path, ".pprof") + ".allocs.pprof"); err == nil {
			pprof.Lookup("allocs").WriteTo(a, 0)
			a.Close()
		}
	}, nil
}

func shutdown(srv *server.Server, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Error("shutdown", "err", err)
		return err
	}
	log.Info("stopped")
	return nil
}

func reload(cmd *cobra.Command, srv *server.Server, log *slog.Logger) {
	cfg, err := config.Load(cmd.Flags(), os.Environ())
	if err != nil {
		log.Error("reload refused: the configuration is invalid; the running one stays", "err", err)
		// The certificates are still reloaded, from the files named at
		// start: a rotation must not wait for an unrelated fix.
		srv.ReloadTLS()
		return
	}
	if err := srv.Reload(cfg); err != nil {
		log.Error("reload refused", "err", err)
	}
}
