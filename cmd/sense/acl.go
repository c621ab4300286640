package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sensehq/sense/admin"
)

// aclFlags are the flags naming ACLs, shared by add, list and remove.
type aclFlags struct {
	user, pipeline, group, txn string
	cluster, prefix, deny      bool
	operations, jurisdictions  []string
}

func (f *aclFlags) register(cmd *cobra.Command, what string) {
	fl := cmd.Flags()
	fl.StringVar(&f.user, "user", "", "the user "+what+" (\"*\": every user)")
	fl.StringVar(&f.pipeline, "pipeline", "", "a pipeline (a Kafka topic); with --prefix, the pipelines whose names begin so; \"*\": every one")
	fl.StringVar(&f.pipeline, "topic", "", "same as --pipeline")
	fl.StringVar(&f.group, "group", "", "a consumer group (with --prefix, a prefix)")
	fl.StringVar(&f.txn, "transactional-id", "", "a Kafka transactional id (with --prefix, a prefix)")
	fl.BoolVar(&f.cluster, "cluster", false, "the cluster: hubs, users, ACLs, producer ids, creating pipelines")
	fl.BoolVar(&f.prefix, "prefix", false, "the name is a prefix (a prefixed ACL)")
	fl.BoolVar(&f.deny, "deny", false, "a deny ACL (deny wins over allow)")
	fl.StringSliceVar(&f.operations, "operation", nil, "operations: produce (write), consume (read), create, delete, alter, describe, describe_configs, alter_configs, idempotent_write, all")
}

// resource returns the resource type and name the flags give; "" when
// none (allowed only when optional).
func (f *aclFlags) resource(optional bool) (typ, name string, err error) {
	n := 0
	for _, s := range []string{f.pipeline, f.group, f.txn} {
		if s != "" {
			n++
		}
	}
	if f.cluster {
		n++
	}
	switch {
	case n > 1:
		return "", "", fmt.Errorf("name one resource: --pipeline, --group, --transactional-id or --cluster")
	case n == 0 && !optional:
		return "", "", fmt.Errorf("name the resource: --pipeline P, --group G, --transactional-id T or --cluster")
	case f.pipeline != "":
		return "pipeline", f.pipeline, nil
	case f.group != "":
		return "group", f.group, nil
	case f.txn != "":
		return "transactional_id", f.txn, nil
	case f.cluster:
		if f.prefix {
			return "", "", fmt.Errorf("--prefix does not go with --cluster: there is one cluster")
		}
		return "cluster", "", nil
	}
	return "", "", nil
}

func (f *aclFlags) principal() string {
	if f.user == "" {
		return ""
	}
	if strings.HasPrefix(f.user, "User:") {
		return f.user
	}
	return "User:" + f.user
}

func (f *aclFlags) permission() string {
	if f.deny {
		return "deny"
	}
	return "allow"
}

func (f *aclFlags) pattern() string {
	if f.prefix {
		return "prefixed"
	}
	return "literal"
}

func newACLCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Grant, list and revoke what users may do (ACLs)",
		Long: `With security.enabled everything a user does must be allowed by an ACL, unless
the user is a superuser; a deny ACL wins over any allow. An ACL names a user (or
"*" for every user), a resource (a pipeline, a group, a transactional id, or the
cluster; by name, by prefix with --prefix, or "*" for every one), operations,
and allow or deny. Read, write, delete and alter imply describe, as in Kafka.

--jurisdiction limits a consume ACL: the user then receives only the records
whose jurisdiction mask allows every jurisdiction listed (a user limited to SN
reads records of SN and of MA,SN, never one of MA alone); its fetches skip the
others. In a cluster the ACLs go through the cluster metadata to every node; a
node alone keeps them in security.json. See docs/security.md.`,
		Example: `  sense acl add --user alice --pipeline payments --operation produce,consume
  sense acl add --user analyst --pipeline payments --operation consume --jurisdiction SN
  sense acl add --user alice --group billing- --prefix --operation consume
  sense acl add --user '*' --pipeline secret --prefix --operation all --deny
  sense acl add --user ops --cluster --operation alter,describe
  sense acl list --user alice
  sense acl list --pipeline payments          # every ACL that applies to it
  sense acl remove --user alice --pipeline payments --operation produce`,
	}
	var addr string
	var asJSON bool
	cmd.PersistentFlags().StringVar(&addr, "addr", envOr("SENSE_ADDR", defaultAddr), "address of a Sense node's native listener (env SENSE_ADDR)")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")

	var af aclFlags
	add := &cobra.Command{
		Use:   "add --user U (--pipeline P | --group G | --transactional-id T | --cluster) [--prefix] --operation OPS [--deny] [--jurisdiction J,...]",
		Short: "Add ACLs: one per operation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if af.user == "" {
				return fmt.Errorf("name the user: --user U (or --user '*' for every user)")
			}
			typ, name, err := af.resource(false)
			if err != nil {
				return err
			}
			if len(af.operations) == 0 {
				return fmt.Errorf("name the operations: --operation produce,consume (or create, delete, alter, describe, describe_configs, alter_configs, idempotent_write, all)")
			}
			if len(af.jurisdictions) > 0 {
				for _, op := range af.operations {
					if o := strings.ToLower(op); o != "consume" && o != "read" {
						return fmt.Errorf("--jurisdiction limits what a user reads: give it with --operation consume alone, and add the %s ACL apart", op)
					}
				}
				if af.deny || typ != "pipeline" {
					return fmt.Errorf("--jurisdiction goes on an allow consume ACL of a pipeline only")
				}
			}
			var req admin.CreateACLs
			for _, op := range af.operations {
				req.ACLs = append(req.ACLs, admin.ACLInfo{Principal: af.principal(), ResourceType: typ, Pattern: af.pattern(), Name: name,
					Operation: op, Permission: af.permission(), Jurisdictions: af.jurisdictions})
			}
			resp, err := adminCall(addr, req)
			if err != nil {
				return err
			}
			return printACLs(cmd.OutOrStdout(), resp.ACLs, asJSON)
		},
	}
	af.register(add, "the ACLs are for")
	add.Flags().StringSliceVar(&af.jurisdictions, "jurisdiction", nil, "limit a consume ACL to the records whose mask allows all these jurisdictions (codes or groups)")

	var lf aclFlags
	var exact bool
	list := &cobra.Command{
		Use:   "list [--user U] [--pipeline P | --group G | --transactional-id T | --cluster] [--prefix] [--operation OP] [--deny]",
		Short: "List ACLs: every one, or those that apply to a user, a resource, an operation",
		Long: `With --pipeline P (or --group, --transactional-id) the list holds the ACLs that
apply to that resource: of its name, of "*", and prefixed ACLs whose prefix
begins it; with --exact (or --prefix) only the ACLs of exactly that name or prefix.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			typ, name, err := lf.resource(true)
			if err != nil {
				return err
			}
			f := admin.ACLFilter{Principal: lf.principal(), ResourceType: typ, Name: name}
			switch {
			case lf.prefix:
				f.Pattern = "prefixed"
			case exact:
				f.Pattern = "literal"
			case name != "":
				f.Pattern = "match"
			}
			if lf.deny {
				f.Permission = "deny"
			}
			var req admin.ListACLs
			if len(lf.operations) == 0 {
				req.Filters = []admin.ACLFilter{f}
			}
			for _, op := range lf.operations {
				f.Operation = op
				req.Filters = append(req.Filters, f)
			}
			resp, err := adminCall(addr, req)
			if err != nil {
				return err
			}
			return printACLs(cmd.OutOrStdout(), resp.ACLs, asJSON)
		},
	}
	lf.register(list, "whose ACLs to list")
	list.Flags().BoolVar(&exact, "exact", false, "only the ACLs of exactly that name (not \"*\" nor prefixes)")

	var rf aclFlags
	remove := &cobra.Command{
		Use:   "remove --user U (--pipeline P | --group G | --transactional-id T | --cluster) [--prefix] [--operation OPS] [--deny]",
		Short: "Remove ACLs: those of the user on exactly that resource (and those operations, allow or with --deny deny)",
		Long: `Removes every ACL of the user on exactly the resource named (its literal name, or
with --prefix its prefix), of the operations given (all when none), allow ACLs
(deny ACLs with --deny), with or without jurisdictions. It prints what it removed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rf.user == "" {
				return fmt.Errorf("name the user: --user U (or --user '*' for every user's ACLs of User:*)")
			}
			typ, name, err := rf.resource(false)
			if err != nil {
				return err
			}
			f := admin.ACLFilter{Principal: rf.principal(), ResourceType: typ, Name: name, Pattern: rf.pattern(), Permission: rf.permission()}
			var req admin.DeleteACLs
			if len(rf.operations) == 0 {
				req.Filters = []admin.ACLFilter{f}
			}
			for _, op := range rf.operations {
				f.Operation = op
				req.Filters = append(req.Filters, f)
			}
			resp, err := adminCall(addr, req)
			if err != nil {
				return err
			}
			if len(resp.ACLs) == 0 && !asJSON {
				return fmt.Errorf("no ACL matched: nothing removed (`sense acl list --user %s` shows the user's ACLs)", rf.user)
			}
			return printACLs(cmd.OutOrStdout(), resp.ACLs, asJSON)
		},
	}
	rf.register(remove, "whose ACLs to remove")
	cmd.AddCommand(add, list, remove)
	return cmd
}

func printACLs(w io.Writer, acls []admin.ACLInfo, asJSON bool) error {
	if acls == nil {
		acls = []admin.ACLInfo{}
	}
	if asJSON {
		return json.NewEncoder(w).Encode(acls)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRINCIPAL\tPERMISSION\tOPERATION\tRESOURCE\tPATTERN\tNAME\tJURISDICTIONS")
	for _, a := range acls {
		js := "-"
		if len(a.Jurisdictions) > 0 {
			js = strings.Join(a.Jurisdictions, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Principal, a.Permission, a.Operation, a.ResourceType, a.Pattern, a.Name, js)
	}
	return tw.Flush()
}
