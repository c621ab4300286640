package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/config"
)

func newProcessorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "processor",
		Short: "List, describe, pause, resume, reset, create and delete the processors of a node",
		Long: `Processors read a pipeline and deliver its events to a sink (a webhook, NDJSON
files, a PostgreSQL table, another pipeline) at the pace the sink takes, exactly
once (docs/processors.md). They are declared under processors: in the node's
config file, or created on a running node with "sense processor create" (and
removed with "sense processor delete"). In a cluster they run on the node that
leads the committed offsets; ask that one.`,
		Example: `  sense processor list
  sense processor describe payments-to-pg
  sense processor pause payments-to-pg
  sense processor reset payments-to-pg --to beginning
  sense processor resume payments-to-pg
  sense processor create --config more-processors.yaml
  sense processor delete errors-to-alerts`,
	}
	var addr string
	var asJSON bool
	cmd.PersistentFlags().StringVar(&addr, "addr", envOr("SENSE_ADDR", defaultAddr), "address of a Sense node's native listener (env SENSE_ADDR)")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the processors with their state, rate, lag and counters",
		Example: `  sense processor list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := adminCall(addr, admin.ListProcessors{})
			if err != nil {
				return err
			}
			return printProcessors(cmd.OutOrStdout(), resp.Processors, asJSON, false)
		},
	}
	one := func(use, short, example string, req func(name string) admin.Request) *cobra.Command {
		return &cobra.Command{
			Use: use + " NAME", Short: short, Example: example, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				resp, err := adminCall(addr, req(args[0]))
				if err != nil {
					return err
				}
				return printProcessors(cmd.OutOrStdout(), resp.Processors, asJSON, true)
			},
		}
	}
	describe := one("describe", "Show a processor: state, rate, lag, counters, sink latency and each partition",
		"  sense processor describe payments-to-pg", func(n string) admin.Request { return admin.DescribeProcessor{Processor: n} })
	pause := one("pause", "Stop a processor's deliveries; it keeps its place",
		"  sense processor pause payments-to-pg", func(n string) admin.Request { return admin.PauseProcessor{Processor: n} })
	resume := one("resume", "Start a paused processor again",
		"  sense processor resume payments-to-pg", func(n string) admin.Request { return admin.ResumeProcessor{Processor: n} })
	var to string
	reset := &cobra.Command{
		Use:   "reset NAME --to beginning|end|OFFSET",
		Short: "Move a processor's position on every partition it reads",
		Long: `Move a processor's position on every partition it reads to the beginning, the end
or an offset (clamped to each partition's range). The processor pauses meanwhile
and then goes on as it was. Events before the new position are not delivered
again unless the position moved back; moving back delivers them again (the
sink sees new batches: exactly once holds from the new position).`,
		Example: `  sense processor reset payments-to-pg --to beginning
  sense processor reset payments-to-pg --to 120000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to != "beginning" && to != "end" {
				if n, err := strconv.ParseInt(to, 10, 64); err != nil || n < 0 {
					return fmt.Errorf("--to %q: use beginning, end or an offset >= 0", to)
				}
			}
			resp, err := adminCall(addr, admin.ResetProcessor{Processor: args[0], To: to})
			if err != nil {
				return err
			}
			return printProcessors(cmd.OutOrStdout(), resp.Processors, asJSON, true)
		},
	}
	reset.Flags().StringVar(&to, "to", "", "beginning, end or an offset (required)")
	reset.MarkFlagRequired("to")
	var file string
	create := &cobra.Command{
		Use:   "create --config FILE",
		Short: "Start the processors of a YAML file's processors: list on a running node",
		Long: `Start on a running node the processors of FILE's processors: list (the same
entries as in a node's config file; other sections are ignored). They are kept in
the node's committed-offsets log: they run again after a restart, and in a
cluster on every node that runs processors, until "sense processor delete".`,
		Example: `  sense processor create --config errors-to-alerts.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("--config: %w", err)
			}
			// Check here first, for errors that name the file's lines.
			if _, err := config.ParseProcessors(file, data); err != nil {
				return err
			}
			resp, err := adminCall(addr, admin.CreateProcessor{Config: string(data)})
			if err != nil {
				return err
			}
			return printProcessors(cmd.OutOrStdout(), resp.Processors, asJSON, false)
		},
	}
	create.Flags().StringVar(&file, "config", "", "YAML file with a processors: list (required)")
	create.MarkFlagRequired("config")
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Stop a processor made with create, for good, and forget its group's offsets",
		Long: `Stop a processor made with "sense processor create" on every node that runs it,
for good: it does not come back after a restart. Its consumer group
(processor.NAME) and its committed offsets are deleted too, so a processor
created later under the same name starts at its from.start (beginning by
default); a sink that keeps positions of its own in its target (postgres,
kafka with transactional: true) keeps them. A processor of the node's config file cannot be
deleted at runtime: remove it from the config file and restart the node.`,
		Example: `  sense processor delete errors-to-alerts`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := adminCall(addr, admin.DeleteProcessor{Processor: args[0]})
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(resp.Processors)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted processor %s; its group processor.%s and its committed offsets are gone\n", args[0], args[0])
			return err
		},
	}
	cmd.AddCommand(list, describe, pause, resume, reset, create, del)
	return cmd
}

func printProcessors(w io.Writer, ps []admin.ProcessorInfo, asJSON, parts bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(ps)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPIPELINE\tSINK\tSTATE\tRATE/S\tLAG\tLAG S\tDELIVERED\tRETRIES\tDEAD-LETTERED\tIN FLIGHT\tSINK P99")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%d\t%.1f\t%d\t%d\t%d\t%s/%s\t%.1fms\n", p.Name, p.Pipeline, p.Sink, p.State, p.Rate,
			p.LagEvents, p.LagSeconds, p.Delivered, p.Retries, p.DeadLettered, config.Size(p.InFlightBytes), config.Size(p.MaxInFlightBytes), p.SinkLatencyP99*1000)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range ps {
		if p.Error != "" {
			fmt.Fprintf(w, "%s: last error: %s\n", p.Name, p.Error)
		}
		if !parts || len(p.Partitions) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (group %s, filtered %d):\n", p.Name, p.Group, p.Filtered)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PARTITION\tHUB\tPRIORITY\tPOSITION\tHIGH WATERMARK\tLAG")
		for _, q := range p.Partitions {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\n", q.Partition, q.Hub, q.Priority, q.Position, q.HighWatermark, q.Lag)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
