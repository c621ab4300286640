package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sensehq/sense/admin"
)

// errAuditFailed makes `sense audit` exit non-zero after printing its
// report.
var errAuditFailed = errors.New("audit failed")

func newAuditCmd() *cobra.Command {
	var addr, pipeline, nodeID, output string
	var all bool
	cmd := &cobra.Command{
		Use:   "audit [--pipeline P] [--node N | --all] [--output text|json]",
		Short: "Read every stored record and prove it rests in a hub of its jurisdiction",
		Long: `Each node reads every record it stores (its replicas of each buffer), checks
every batch's CRC, and checks that the record's stored mask (the sense.j header
every edge writes, Kafka's included) includes the jurisdiction of the hub that
holds it. The report gives, per node and hub: records, bytes, the masks seen,
violations (records outside their jurisdiction, or without a provable mask:
there must be none), records awaiting migration (of pipelines the hub's policy
now denies) and damaged buffers.

In a cluster it audits every node (--all, the default) or one (--node). The exit
status is non-zero on any violation, damaged buffer, or node that could not be
audited.`,
		Example: `  sense audit
  sense audit --pipeline payments --output json
  sense audit --node n2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q: use text or json", output)
			}
			if all && nodeID != "" {
				return fmt.Errorf("give --node or --all, not both")
			}
			targets := []admin.NodeStatus{{Native: addr}}
			if cs, err := adminCall(addr, admin.ClusterStatus{}); err == nil && cs.Cluster != nil {
				targets = nil
				for _, nd := range cs.Cluster.Nodes {
					if nodeID == "" || nd.ID == nodeID {
						targets = append(targets, nd)
					}
				}
				if len(targets) == 0 {
					return fmt.Errorf("--node %q is not a node of the cluster; see `sense cluster status`", nodeID)
				}
			} else if nodeID != "" {
				return fmt.Errorf("--node %q: the node at %s is not in a cluster (%v); audit it without --node", nodeID, addr, err)
			}
			var reports []admin.AuditReport
			var failures []string
			for _, t := range targets {
				if t.Native == "" {
					failures = append(failures, fmt.Sprintf("node %s: its native address is not known yet (is it up?)", t.ID))
					continue
				}
				resp, err := adminCall(t.Native, admin.Audit{Pipeline: pipeline})
				if err != nil || resp.Audit == nil {
					failures = append(failures, fmt.Sprintf("node %s at %s: %v", t.ID, t.Native, err))
					continue
				}
				reports = append(reports, *resp.Audit)
			}
			bad := len(failures) > 0
			for _, r := range reports {
				for _, h := range r.Hubs {
					bad = bad || h.Violations > 0 || h.Corrupt > 0
				}
			}
			if output == "json" {
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(struct {
					Nodes    []admin.AuditReport `json:"nodes"`
					Failures []string            `json:"failures,omitempty"`
					OK       bool                `json:"ok"`
				}{reports, failures, !bad}); err != nil {
					return err
				}
			} else {
				printAudit(cmd.OutOrStdout(), reports, failures)
			}
			if bad {
				cmd.SilenceUsage = true
				return errAuditFailed
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", envOr("SENSE_ADDR", defaultAddr), "address of a Sense node's native listener (env SENSE_ADDR)")
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "audit this pipeline only (default: all)")
	cmd.Flags().StringVar(&nodeID, "node", "", "audit this node of the cluster only")
	cmd.Flags().BoolVar(&all, "all", false, "audit every node of the cluster (the default)")
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	cmd.AddCommand(newAuditLogCmd())
	return cmd
}

func newAuditLogCmd() *cobra.Command {
	var addr, output string
	var sec bool
	cmd := &cobra.Command{
		Use:   "log [--output text|json]",
		Short: "Show the audit log of moves: every batch of events the migrator moved out of a hub",
		Long: `When a hub's policy stops allowing a pipeline, or a hub is re-designated to
another jurisdiction, the migrator moves the events stored there that it may
no longer hold to hubs their masks allow, a step at a time. Each step is
recorded in the cluster metadata log, append-only and replicated (on a node
alone, in the move log under its data directory, append-only and synced): the source
buffer and offset range, per destination the partition and offsets, the
record count and a CRC-32C of the records' keys and values, why they moved,
the routing table version of the plan, and when the step was planned and
finished.

With --security it shows the node's security audit log instead: the last
authentications it saw on every edge (the last 1024, kept in memory; every one
is also in the node's log), successful or not, with the principal, mechanism,
edge, client address and the reason of a refusal.`,
		Example: `  sense audit log
  sense audit log --output json
  sense audit log --security --token-file /etc/sense/bootstrap.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sec {
				return securityLog(cmd.OutOrStdout(), addr, output)
			}
			resp, err := adminCall(addr, admin.AuditLog{})
			if err != nil {
				return err
			}
			if output == "json" {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(resp.Moves)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FINISHED\tSOURCE\tRANGE\tDEST\tDEST RANGE\tRECORDS\tCHECKSUM\tREASON\tCAUSE")
			for _, m := range resp.Moves {
				fmt.Fprintf(tw, "%s\t%s\t%d-%d\t%s/%d (%s)\t%d-%d\t%d\t%08x\t%s\tv%d\n", m.Finished, m.Source, m.From, m.To, m.Pipeline, m.Dest, m.DestHub,
					m.DestFrom, m.DestTo, m.Records, m.Checksum, m.Reason, m.Cause)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&addr, "addr", envOr("SENSE_ADDR", defaultAddr), "address of a Sense node's native listener (env SENSE_ADDR)")
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	cmd.Flags().BoolVar(&sec, "security", false, "show the security audit log (authentications) instead")
	return cmd
}

// securityLog prints a node's security audit log.
func securityLog(w io.Writer, addr, output string) error {
	resp, err := adminCall(addr, admin.SecurityAudit{})
	if err != nil {
		return err
	}
	if output == "json" {
		return json.NewEncoder(w).Encode(resp.SecurityEvents)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEDGE\tREMOTE\tMECHANISM\tPRINCIPAL\tRESULT\tREASON")
	for _, e := range resp.SecurityEvents {
		res := "ok"
		if !e.Success {
			res = "refused"
		}
		if e.Op != "" {
			// A change to the ACLs: the op where the edge goes, the ACL
			// where the reason goes.
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t%s\t%s\t%s\n", e.Time, e.Op, dash(e.Principal), res, e.Detail)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time, e.Edge, e.Remote, dash(e.Mechanism), dash(e.Principal), res, dash(e.Reason))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d shown, %d recorded since the node started\n", len(resp.SecurityEvents), resp.SecurityEventsTotal)
	return nil
}

func printAudit(w io.Writer, reports []admin.AuditReport, failures []string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHUB\tJURISDICTION\tBUFFERS\tRECORDS\tBYTES\tVIOLATIONS\tAWAITING MIGRATION\tDAMAGED\tMASKS")
	var examples []string
	for _, r := range reports {
		node := r.Node
		if node == "" {
			node = "-"
		}
		for _, h := range r.Hubs {
			var masks []string
			for m, c := range h.Masks {
				masks = append(masks, fmt.Sprintf("%s=%d", m, c))
			}
			sort.Strings(masks)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", node, h.Hub, h.Jurisdiction, h.Buffers, h.Records, h.Bytes,
				h.Violations, h.AwaitingMigration, h.Corrupt, dash(strings.Join(masks, " ")))
			for _, e := range h.Examples {
				examples = append(examples, fmt.Sprintf("node %s, hub %s: %s", node, h.Hub, e))
			}
		}
	}
	tw.Flush()
	for _, e := range examples {
		fmt.Fprintln(w, "  "+e)
	}
	for _, f := range failures {
		fmt.Fprintln(w, "not audited: "+f)
	}
}
