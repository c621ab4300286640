package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sensehq/sense/admin"
)

func newHubCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "List hubs, set their status and policy",
		Long: `Hubs hold the buffers of the pipelines in one jurisdiction. In a cluster, a
change goes through the cluster metadata log: every node routes with it
within milliseconds, and "sense cluster status" shows each node's routing
table version. In dev mode it changes this node only, until a restart.`,
		Example: `  sense hub list
  sense hub set dakhla --status draining
  sense hub policy tangier --deny payments
  sense hub policy tangier --allow payments`,
	}
	var addr string
	var asJSON bool
	cmd.PersistentFlags().StringVar(&addr, "addr", envOr("SENSE_ADDR", defaultAddr), "address of a Sense node's native listener (env SENSE_ADDR)")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the hubs: jurisdiction, status and the pipelines each may not hold",
		Example: `  sense hub list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := adminCall(addr, admin.ListHubs{})
			if err != nil {
				return err
			}
			return printHubs(cmd.OutOrStdout(), resp, asJSON)
		},
	}

	var status, jur string
	set := &cobra.Command{
		Use:   "set HUB [--status up|draining|down] [--jurisdiction J]",
		Short: "Set a hub's status (only an up hub takes new events) or re-designate its jurisdiction",
		Long: `--status sets whether the hub takes new events. --jurisdiction re-designates it
(a cluster only): from then on it takes events whose mask allows the new
jurisdiction, and the events it stored that the new jurisdiction does not allow
are moved to a hub their mask allows (` + "`sense audit log`" + ` lists the moves).`,
		Example: `  sense hub set dakhla --status down
  sense hub set dakar --jurisdiction MA`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if status == "" && jur == "" {
				return fmt.Errorf("give the hub's new status (--status up, draining or down), its new jurisdiction (--jurisdiction J), or both")
			}
			resp, err := adminCall(addr, admin.SetHubStatus{Hub: args[0], Status: status, Jurisdiction: jur})
			if err != nil {
				return err
			}
			return printHubs(cmd.OutOrStdout(), resp, asJSON)
		},
	}
	set.Flags().StringVar(&status, "status", "", "up, draining or down")
	set.Flags().StringVar(&jur, "jurisdiction", "", "a registered jurisdiction code or group, or *")

	var deny, allow []string
	policy := &cobra.Command{
		Use:   "policy HUB --deny PIPELINE[,...] | --allow PIPELINE[,...]",
		Short: "Forbid a hub to hold pipelines, or allow them again",
		Long: `--deny makes the hub unfit for the pipelines named: new events go to other
hubs their jurisdiction allows, Kafka writes to the hub's partitions are refused
with POLICY_VIOLATION, and the events already stored there are moved to a
compliant hub. --allow lifts it.`,
		Example: `  sense hub policy tangier --deny payments,refunds`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(deny) == 0 && len(allow) == 0 {
				return fmt.Errorf("name the pipelines to deny or allow: --deny P[,...] or --allow P[,...]")
			}
			resp, err := adminCall(addr, admin.SetHubPolicy{Hub: args[0], Deny: deny, Allow: allow})
			if err != nil {
				return err
			}
			return printHubs(cmd.OutOrStdout(), resp, asJSON)
		},
	}
	policy.Flags().StringSliceVar(&deny, "deny", nil, "pipelines the hub may no longer hold")
	policy.Flags().StringSliceVar(&allow, "allow", nil, "pipelines the hub may hold again")
	cmd.AddCommand(list, set, policy)
	return cmd
}

func printHubs(w io.Writer, resp admin.Response, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(struct {
			TableVersion uint64          `json:"table_version"`
			Hubs         []admin.HubInfo `json:"hubs"`
		}{resp.TableVersion, resp.Hubs})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HUB\tJURISDICTION\tSTATUS\tDENIED PIPELINES\tFORMERLY")
	for _, h := range resp.Hubs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, h.Jurisdiction, h.Status, dash(strings.Join(h.Deny, ",")), dash(strings.Join(h.Former, ",")))
	}
	tw.Flush()
	fmt.Fprintf(w, "routing table version %d\n", resp.TableVersion)
	return nil
}

func newJurisdictionCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "jurisdiction", Short: "Show the jurisdiction registry"}
	var addr string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the registered jurisdictions, their mask bits, groups and hubs",
		Long: `Every jurisdiction code has a bit in an event's mask (bit i is the i-th
code); a group names several codes. The hubs column lists the hubs of each
jurisdiction: where an event whose mask holds that code may rest.`,
		Example: `  sense jurisdiction list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := adminCall(addr, admin.GetRegistry{})
			if err != nil {
				return err
			}
			hubs, err := adminCall(addr, admin.ListHubs{})
			if err != nil {
				return err
			}
			if reg.Registry == nil {
				return fmt.Errorf("the node at %s answered without its registry", addr)
			}
			byCode := map[string][]string{}
			for _, h := range hubs.Hubs {
				byCode[h.Jurisdiction] = append(byCode[h.Jurisdiction], h.Name)
			}
			groupsOf := map[string][]string{}
			var groups []string
			for g, codes := range reg.Registry.Groups {
				groups = append(groups, g)
				for _, c := range codes {
					groupsOf[c] = append(groupsOf[c], g)
				}
			}
			sort.Strings(groups)
			type row struct {
				Code   string   `json:"code"`
				Bit    int      `json:"bit"`
				Groups []string `json:"groups,omitempty"`
				Hubs   []string `json:"hubs,omitempty"`
			}
			var rows []row
			for bit, c := range reg.Registry.Codes {
				gs := groupsOf[c]
				sort.Strings(gs)
				rows = append(rows, row{Code: c, Bit: bit, Groups: gs, Hubs: byCode[c]})
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(struct {
					Jurisdictions []row               `json:"jurisdictions"`
					Groups        map[string][]string `json:"groups,omitempty"`
					AnyHubs       []string            `json:"any_jurisdiction_hubs,omitempty"`
				}{rows, reg.Registry.Groups, byCode["*"]})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CODE\tBIT\tGROUPS\tHUBS")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Code, r.Bit, dash(strings.Join(r.Groups, ",")), dash(strings.Join(r.Hubs, ",")))
			}
			if hs := byCode["*"]; len(hs) > 0 {
				fmt.Fprintf(tw, "*\t-\t-\t%s\n", strings.Join(hs, ","))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&addr, "addr", envOr("SENSE_ADDR", defaultAddr), "address of a Sense node's native listener (env SENSE_ADDR)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}
