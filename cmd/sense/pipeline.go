package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/client"
)

// adminCall dials addr and runs one admin request.
func adminCall(addr string, req admin.Request) (admin.Response, error) {
	ctx, cancel := signalContext()
	defer cancel()
	opts := client.Options{Addr: addr, ClientID: "sense-admin"}
	if err := cliCreds.apply(&opts); err != nil {
		return admin.Response{}, err
	}
	c, err := client.Dial(ctx, opts)
	if err != nil {
		return admin.Response{}, err
	}
	defer c.Close()
	return c.Admin(ctx, req)
}

func newPipelineCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pipeline",
		Short: "Create, alter, list and describe pipelines",
		Example: `  sense pipeline create payments --partitions 2 --jurisdiction MA,SN
  sense pipeline alter payments --retention 72h --default-priority medium
  sense pipeline list
  sense pipeline describe payments`,
	}
	var addr string
	cmd.PersistentFlags().StringVar(&addr, "addr", envOr("SENSE_ADDR", defaultAddr), "address of a Sense node's native listener (env SENSE_ADDR)")

	var partitions int
	var retention, prio, juris, cleanup, maxMsg string
	var asJSON bool
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a pipeline (it survives restarts)",
		Long: `Create a pipeline. Its partitions are laid out per hub and per priority lane:
with H hubs and --partitions P it has H x 3 x P partitions, numbered hub by hub,
lane by lane (low, medium, critical). "sense pipeline describe" shows the layout.`,
		Example: `  sense pipeline create payments --partitions 2 --retention 24h --jurisdiction MA,SN --priority medium`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := adminCall(addr, admin.CreatePipeline{Pipeline: args[0], Partitions: partitions,
				Retention: retention, DefaultPriority: prio, DefaultJurisdiction: juris, CleanupPolicy: cleanup, MaxMessageBytes: maxMsg})
			if err != nil {
				return err
			}
			return printDescribe(cmd.OutOrStdout(), resp, asJSON)
		},
	}
	create.Flags().IntVar(&partitions, "partitions", 1, "partitions per hub and priority lane")
	create.Flags().StringVar(&retention, "retention", "", "how long to keep events, e.g. 24h (default: forever)")
	create.Flags().StringVar(&prio, "priority", "low", "default priority of events that name none")
	create.Flags().StringVar(&juris, "jurisdiction", "*", "default jurisdiction of events that name none")
	create.Flags().StringVar(&cleanup, "cleanup-policy", "", "delete (old segments go by retention; the default), compact (the latest record of each key is kept) or compact,delete")
	create.Flags().StringVar(&maxMsg, "max-message-bytes", "", "the largest batch and record a Kafka producer may send, e.g. 4MiB (default: the node's router.max_event_bytes)")
	create.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	alter := newPipelineAlterCmd(&addr)

	list := &cobra.Command{
		Use:     "list",
		Short:   "List pipelines",
		Example: `  sense pipeline list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := adminCall(addr, admin.ListPipelines{})
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(resp.Pipelines)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPARTITIONS\tPER HUB/LANE\tRETENTION\tRETENTION BYTES\tDEFAULT PRIORITY\tDEFAULT JURISDICTION")
			for _, p := range resp.Pipelines {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", p.Name, p.TotalPartitions, p.Partitions, p.Retention, p.RetentionBytes, p.DefaultPriority, p.DefaultJurisdiction)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	describe := &cobra.Command{
		Use:     "describe NAME",
		Short:   "Show a pipeline's layout: hub, lane and index of every partition",
		Example: `  sense pipeline describe payments`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := adminCall(addr, admin.DescribePipeline{Pipeline: args[0]})
			if err != nil {
				return err
			}
			return printDescribe(cmd.OutOrStdout(), resp, asJSON)
		},
	}
	describe.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(create, alter, list, describe)
	return cmd
}

// newPipelineAlterCmd is sense pipeline alter, on the node at *addr.
func newPipelineAlterCmd(addr *string) *cobra.Command {
	var r admin.AlterPipeline
	var partitions int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "alter NAME",
		Short: "Change a pipeline's retention or default jurisdiction and priority while it serves",
		Long: `Change the settings of a pipeline that may change while it serves: how long and how
much its buffers keep, and the jurisdiction and priority given to events that name none
(new events are routed by them at once). Flags not given stay as they are. In a
cluster the change goes through the cluster metadata to every node.

A pipeline's layout (its partitions, hubs and lanes) cannot change this way; a
pipeline declared in the server's config file takes its settings from the file:
change them there and restart.`,
		Example: `  sense pipeline alter payments --retention 72h --retention-bytes 10GiB
  sense pipeline alter payments --default-jurisdiction MA,SN --default-priority medium
  sense pipeline alter payments --retention forever --retention-bytes none`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("partitions") {
				return fmt.Errorf("--partitions %d: a pipeline's partitions cannot change with alter; a Kafka client grows a topic with CreatePartitions (kafka-topics --alter --partitions), or create another pipeline with more", partitions)
			}
			if r.Retention == "" && r.RetentionBytes == "" && r.DefaultJurisdiction == "" && r.DefaultPriority == "" && r.CleanupPolicy == "" && r.MaxMessageBytes == "" {
				return fmt.Errorf("nothing to change in pipeline %s: give --retention, --retention-bytes, --default-jurisdiction, --default-priority, --cleanup-policy or --max-message-bytes", args[0])
			}
			r.Pipeline = args[0]
			resp, err := adminCall(*addr, r)
			if err != nil {
				return err
			}
			return printDescribe(cmd.OutOrStdout(), resp, asJSON)
		},
	}
	cmd.Flags().StringVar(&r.Retention, "retention", "", "how long to keep events, e.g. 72h, or forever")
	cmd.Flags().StringVar(&r.RetentionBytes, "retention-bytes", "", "the most a buffer keeps, e.g. 10GiB or 1073741824, or none")
	cmd.Flags().StringVar(&r.DefaultJurisdiction, "default-jurisdiction", "", "jurisdiction of events that name none: codes or groups, e.g. MA,SN, or *")
	cmd.Flags().StringVar(&r.DefaultPriority, "default-priority", "", "priority of events that name none: low, medium or critical")
	cmd.Flags().StringVar(&r.CleanupPolicy, "cleanup-policy", "", "delete, compact or compact,delete")
	cmd.Flags().StringVar(&r.MaxMessageBytes, "max-message-bytes", "", "the largest batch and record a Kafka producer may send, e.g. 4MiB, or default")
	cmd.Flags().IntVar(&partitions, "partitions", 0, "refused: the layout cannot change")
	cmd.Flags().MarkHidden("partitions")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printDescribe(w io.Writer, resp admin.Response, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(resp)
	}
	for _, p := range resp.Pipelines {
		fmt.Fprintf(w, "pipeline %s: %d partitions (%d per hub and lane), retention %s, retention bytes %s, default priority %s, default jurisdiction %s, cleanup policy %s, max message bytes %d\n",
			p.Name, p.TotalPartitions, p.Partitions, p.Retention, p.RetentionBytes, p.DefaultPriority, p.DefaultJurisdiction, p.CleanupPolicy, p.MaxMessageBytes)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tHUB\tLANE\tINDEX\tSTART\tHIGH WATERMARK")
	for _, l := range resp.Layout {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\n", l.Partition, l.Hub, l.Lane, l.Index, l.Start, l.HighWatermark)
	}
	return tw.Flush()
}

func newRouteCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "route", Short: "Explain routing decisions",
		Example: "  sense route explain --pipeline payments --jurisdiction MA,SN --priority critical"}
	var addr, pipeline, juris, prio string
	var asJSON bool
	explain := &cobra.Command{
		Use:     "explain",
		Short:   "Show which buffers are eligible for an event, and why the others are not",
		Example: `  sense route explain --pipeline payments --jurisdiction SN --priority critical`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := adminCall(addr, admin.ExplainRoute{Pipeline: pipeline, Jurisdiction: juris, Priority: prio})
			if err != nil {
				return err
			}
			// In a cluster, every node's table version too: a node that
			// has not applied a change yet routes by the version it shows.
			var nodes []admin.NodeStatus
			if cs, err := adminCall(addr, admin.ClusterStatus{}); err == nil && cs.Cluster != nil {
				nodes = cs.Cluster.Nodes
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(struct {
					TableVersion uint64              `json:"table_version"`
					Nodes        []admin.NodeStatus  `json:"nodes,omitempty"`
					Verdicts     []admin.VerdictInfo `json:"verdicts"`
				}{resp.TableVersion, nodes, resp.Verdicts})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "routing table version %d (the node at %s)\n", resp.TableVersion, addr)
			for _, nd := range nodes {
				state := "up"
				if !nd.Up {
					state = "down (as last heard)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "  node %s routes with version %d, %s\n", nd.ID, nd.TableVersion, state)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PARTITION\tHUB\tLANE\tELIGIBLE\tWHY")
			n := 0
			for _, v := range resp.Verdicts {
				if v.Eligible {
					n++
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%s\n", v.Partition, v.Hub, v.Lane, v.Eligible, v.Why)
			}
			tw.Flush()
			if n == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no buffer is eligible: such an event is refused with NO_COMPLIANT_HUB")
			}
			return nil
		},
	}
	explain.Flags().StringVar(&addr, "addr", envOr("SENSE_ADDR", defaultAddr), "address of a Sense node's native listener (env SENSE_ADDR)")
	explain.Flags().StringVar(&pipeline, "pipeline", "", "pipeline (required)")
	explain.Flags().StringVar(&juris, "jurisdiction", "*", "the event's jurisdiction: codes, groups or *")
	explain.Flags().StringVar(&prio, "priority", "low", "the event's priority")
	explain.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	explain.MarkFlagRequired("pipeline")
	cmd.AddCommand(explain)
	return cmd
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
