package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"log/slog"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/processor"
	"github.com/sensehq/sense/vfs"
)

func newProcessCmd() *cobra.Command {
	var (
		tf                              transportFlags
		file, state, metrics, kafkaAddr string
	)
	cmd := &cobra.Command{
		Use:   "process --config FILE --addr HOST:PORT",
		Short: "Run processors standalone against a remote Sense",
		Long: `Run the processors of FILE's processors: list (the entries of a node's config file;
other sections are ignored) in this process, reading from and writing to the
Sense node at --addr through the Go client, as "sense serve" runs them inside a
node: the same sinks, batching, backpressure and exactly-once delivery
(docs/processors.md).

With --kafka-addr (the node's Kafka listener), each processor joins its
consumer group (processor.NAME) at the node's group coordinator and commits its
offsets (and write-ahead intents) there: several sense process instances with
the same processors share the partitions, and a lost one's go to the others.
Do not run a processor of the same name inside the node (its groups are
coordinated apart in dev mode). Without --kafka-addr the offsets live in
--state-dir on this machine, in the format of a node's offsets store: keep it
between runs, and run one sense process per state directory. A postgres sink
keeps its offsets in its database either way. --metrics-addr serves the
processors' metrics (sense_processor_*) on /metrics. SIGTERM and SIGINT stop
cleanly.`,
		Example: `  sense process --config processors.yaml --addr 10.0.0.5:7070
  sense process --config processors.yaml --addr 10.0.0.5:7070 --state-dir /var/lib/sense-process --metrics-addr 127.0.0.1:9101

  # Two or more instances sharing the partitions, groups at the node
  sense process --config processors.yaml --addr 10.0.0.5:7070 --kafka-addr 10.0.0.5:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("--config: %w", err)
			}
			cfgs, err := config.ParseProcessors(file, data)
			if err != nil {
				return err
			}
			if len(cfgs) == 0 {
				return fmt.Errorf("--config %s: no processors: list; see docs/processors.md", file)
			}
			log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
			ctx, cancel := signalContext()
			defer cancel()
			copts, err := tf.options("sense-process")
			if err != nil {
				return err
			}
			c, err := client.Dial(ctx, copts)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := os.MkdirAll(state, 0o755); err != nil {
				return fmt.Errorf("--state-dir: %w", err)
			}
			host, _ := os.Hostname()
			clientID := "sense-process@" + host
			mopts := processor.Options{ClientID: clientID, Logger: log}
			if kafkaAddr != "" {
				kg, err := processor.NewKafkaGroup([]string{kafkaAddr}, clientID)
				if err != nil {
					return fmt.Errorf("--kafka-addr: %w", err)
				}
				defer kg.Close()
				mopts.Group = kg
			} else {
				offsets, err := group.Open(vfs.Default, filepath.Join(state, "offsets"), log, group.Preallocate(int64(config.DefaultPreallocateBytes)))
				if err != nil {
					return fmt.Errorf("--state-dir: open the offsets: %w", err)
				}
				defer offsets.Close()
				mopts.Offsets = offsets
			}
			reg := prometheus.NewRegistry()
			if metrics != "" {
				ln, err := net.Listen("tcp", metrics)
				if err != nil {
					return fmt.Errorf("--metrics-addr: %w", err)
				}
				mux := http.NewServeMux()
				mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
				hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
				go hs.Serve(ln)
				defer hs.Close()
				log.Info("metrics served", "addr", ln.Addr().String())
			}
			src := &processor.ClientSource{C: c}
			defer src.Close()
			mopts.Source, mopts.Registerer = src, reg
			m := processor.NewManager(mopts)
			if err := m.Start(ctx, cfgs); err != nil {
				m.Close()
				return err
			}
			<-ctx.Done()
			log.Info("stopping the processors")
			if err := m.Close(); err != nil && !errors.Is(err, group.ErrClosed) {
				return err
			}
			return nil
		},
	}
	addTransportFlags(cmd, &tf)
	cmd.Flags().StringVar(&file, "config", "", "YAML file with a processors: list (required)")
	cmd.Flags().StringVar(&state, "state-dir", "./sense-process", "directory of the processors' committed offsets (without --kafka-addr)")
	cmd.Flags().StringVar(&kafkaAddr, "kafka-addr", "", "the node's Kafka listener, host:port: join the processors' groups and commit there, shared with other sense process instances")
	cmd.Flags().StringVar(&metrics, "metrics-addr", "", "host:port to serve /metrics on (default: none)")
	cmd.MarkFlagRequired("config")
	return cmd
}
