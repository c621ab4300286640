// Command sense is the Sense event-ingestion engine: one binary that serves
// the engine and carries its tools.
//
// Each subcommand lives in its own file of this package and is attached to
// the root command in newRootCmd.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args, writing output to stdout and errors to
// stderr, and returns the process exit code: 0 on success, 1 on any error.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(stderr, "sense: %v\n", err)
		return 1
	}
	return 0
}

// newRootCmd builds the command tree. A fresh tree per call keeps tests
// independent of each other's flags.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "sense",
		Short: "Sense stores every event only where its jurisdiction allows",
		Long: `Sense is a sovereign event-ingestion engine: it accepts events over its own
protocol, QUIC, HTTP/2 and the Kafka wire protocol, and writes each one only to
a durable log in a hub whose jurisdiction the event's mask allows.`,
		Example: `  # Run a node on the embedded default, then produce and consume
  sense serve &
  printf 'a\nb\n' | sense produce --pipeline demo
  sense consume --pipeline demo --from beginning

  # Print the version, Go version and platform of this binary
  sense version

  # Show the help of a command
  sense help version`,
		// Errors are printed once, by run; a failing command should not
		// bury its message under the usage text.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	cliCreds = newCredentials()
	addTokenFileFlag(root, cliCreds)
	root.AddCommand(newVersionCmd(), newServeCmd(), newProduceCmd(), newConsumeCmd(), newPipelineCmd(), newRouteCmd(), newHubCmd(), newJurisdictionCmd(), newAuditCmd(), newBenchCmd(), newClusterCmd(),
		newUserCmd(), newTokenCmd(), newACLCmd(), newProcessorCmd(), newProcessCmd())
	return root
}
