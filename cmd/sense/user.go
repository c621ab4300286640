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
	"github.com/sensehq/sense/security"
)

func newUserCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Create, delete and list the users that authenticate to Sense",
		Long: `Users authenticate with SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN (Kafka SASL, the
native protocol, QUIC) or with tokens (sense token create). Sense keeps only
their SCRAM credentials (salt, iterations, StoredKey, ServerKey), never the
password: this command derives them here and sends them. In a cluster the users
go through the cluster metadata to every node; a node alone keeps them in
security.json under its data directory. With security.enabled, authenticate
this command with --token-file (the bootstrap token file at first).`,
		Example: `  sense user create alice --password 's3cret' --token-file /etc/sense/bootstrap.token
  sense user create bob --password 'pw' --mechanism SCRAM-SHA-256
  sense user list
  sense user delete bob`,
	}
	var addr string
	var asJSON bool
	cmd.PersistentFlags().StringVar(&addr, "addr", envOr("SENSE_ADDR", defaultAddr), "address of a Sense node's native listener (env SENSE_ADDR)")
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")

	var password, mech string
	var iterations int
	create := &cobra.Command{
		Use:   "create NAME --password P [--mechanism SCRAM-SHA-256|SCRAM-SHA-512]",
		Short: "Create a user, or replace its password",
		Long: `Without --mechanism the user gets a credential for both SCRAM mechanisms (and
PLAIN works with either). Creating a user that exists replaces its credentials.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if password == "" {
				return fmt.Errorf("give the user's password: --password P")
			}
			u, err := security.UserWithPassword(args[0], password, iterations, mech)
			if err != nil {
				return err
			}
			req := admin.CreateUser{User: u.Name}
			for _, c := range u.Credentials {
				req.Credentials = append(req.Credentials, admin.ScramCredential(c))
			}
			resp, err := adminCall(addr, req)
			if err != nil {
				return err
			}
			return printUsers(cmd.OutOrStdout(), resp.Users, asJSON)
		},
	}
	create.Flags().StringVar(&password, "password", "", "the user's password")
	create.Flags().StringVar(&mech, "mechanism", "", "SCRAM-SHA-256 or SCRAM-SHA-512 (default: both)")
	create.Flags().IntVar(&iterations, "iterations", security.DefaultIterations, fmt.Sprintf("PBKDF2 iterations of the credential, %d to %d", security.MinIterations, security.MaxIterations))

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user: it can no longer authenticate, and its tokens stop working",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := adminCall(addr, admin.DeleteUser{User: args[0]})
			if err != nil {
				return err
			}
			return printUsers(cmd.OutOrStdout(), resp.Users, asJSON)
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the users and their mechanisms",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := adminCall(addr, admin.ListUsers{})
			if err != nil {
				return err
			}
			return printUsers(cmd.OutOrStdout(), resp.Users, asJSON)
		},
	}
	cmd.AddCommand(create, del, list)
	return cmd
}

func printUsers(w io.Writer, users []admin.UserInfo, asJSON bool) error {
	if users == nil {
		users = []admin.UserInfo{}
	}
	if asJSON {
		return json.NewEncoder(w).Encode(users)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tMECHANISMS")
	for _, u := range users {
		ms := append([]string(nil), u.Mechanisms...)
		sort.Strings(ms)
		fmt.Fprintf(tw, "%s\t%s\n", u.Name, strings.Join(ms, ","))
	}
	return tw.Flush()
}

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make tokens: a user's credential for HTTP, the CLI and any edge, valid until it expires",
	}
	var addr, user, ttl, out string
	var asJSON bool
	create := &cobra.Command{
		Use:   "create --user U --ttl D",
		Short: "Make a token for a user, signed with the cluster's token key",
		Long: `The token is printed (or written to --out, mode 0600): whoever holds it acts as
the user until it expires or the user is deleted. Every node of the cluster
checks it on its own. Use it as "Authorization: Bearer <token>" over HTTP, with
--token-file F on the CLI, as the token of the Go client, or through Kafka
SASL PLAIN with the user "token" and the token as the password.`,
		Example: `  sense token create --user alice --ttl 24h > alice.token
  sense produce --pipeline demo --token-file alice.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" {
				return fmt.Errorf("name the token's user: --user U")
			}
			resp, err := adminCall(addr, admin.CreateToken{User: user, TTL: ttl})
			if err != nil {
				return err
			}
			t := resp.Token
			if t == nil {
				return fmt.Errorf("the server answered without a token")
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(t)
			}
			if out != "" {
				if err := writeSecret(out, t.Token+"\n"); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "token %s for %s, valid until %s, written to %s\n", t.ID, t.User, t.Expires, out)
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s for %s, valid until %s\n", t.ID, t.User, t.Expires)
			return nil
		},
	}
	create.Flags().StringVar(&addr, "addr", envOr("SENSE_ADDR", defaultAddr), "address of a Sense node's native listener (env SENSE_ADDR)")
	create.Flags().StringVar(&user, "user", "", "the user the token authenticates as")
	create.Flags().StringVar(&ttl, "ttl", "24h", "how long the token is valid, such as 1h or 720h")
	create.Flags().StringVar(&out, "out", "", "write the token to this file (mode 0600) instead of printing it")
	create.Flags().BoolVar(&asJSON, "json", false, "print JSON (token, user, id, expiry)")
	cmd.AddCommand(create)
	return cmd
}
