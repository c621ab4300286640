package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/security"
)

// credentials are how a command authenticates to a node with
// security.enabled (docs/security.md): --token-file (every command; env
// SENSE_TOKEN_FILE), or a user and password (--user, --password,
// --mechanism on produce and consume; env SENSE_USER, SENSE_PASSWORD,
// SENSE_MECHANISM for every command).
type credentials struct {
	tokenFile, user, password, mechanism string
}

// cliCreds is the root command's --token-file and the environment's user
// and password, set anew by newRootCmd for each command line.
var cliCreds = &credentials{}

func newCredentials() *credentials {
	return &credentials{tokenFile: os.Getenv("SENSE_TOKEN_FILE"), user: os.Getenv("SENSE_USER"),
		password: os.Getenv("SENSE_PASSWORD"), mechanism: os.Getenv("SENSE_MECHANISM")}
}

// addTokenFileFlag adds --token-file to the root command, for every
// subcommand.
func addTokenFileFlag(root *cobra.Command, c *credentials) {
	root.PersistentFlags().StringVar(&c.tokenFile, "token-file", c.tokenFile,
		"authenticate with the token in this file (sense token create, or the bootstrap token file) (env SENSE_TOKEN_FILE)")
}

// addUserFlags adds --user, --password and --mechanism to a command that
// talks to a node's edges (produce, consume).
func addUserFlags(cmd *cobra.Command, c *credentials) {
	cmd.Flags().StringVar(&c.user, "user", c.user, "authenticate as this user (env SENSE_USER)")
	cmd.Flags().StringVar(&c.password, "password", c.password, "the user's password (env SENSE_PASSWORD)")
	cmd.Flags().StringVar(&c.mechanism, "mechanism", c.mechanism, "SCRAM-SHA-512 (default), SCRAM-SHA-256 or PLAIN (env SENSE_MECHANISM)")
}

// apply puts the credentials into client options: a token file wins over a
// user.
func (c *credentials) apply(o *client.Options) error {
	if c.tokenFile != "" {
		tok, err := security.ReadTokenFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		o.Token = tok
		return nil
	}
	if c.user != "" {
		if c.password == "" {
			return fmt.Errorf("--user %s needs --password (or SENSE_PASSWORD)", c.user)
		}
		o.User, o.Password, o.Mechanism = c.user, c.password, c.mechanism
	}
	return nil
}

// writeSecret writes a file only its owner can read.
func writeSecret(path, data string) error {
	return os.WriteFile(path, []byte(data), 0o600)
}
