package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is the release version, set at link time with
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/sense
//
// When it is empty, versionString falls back to the module version recorded
// in the binary's build information, then to "dev".
var version string

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Long: `Print the version of this binary, the Go version that built it and the
platform it was built for.`,
		Example: `  sense version`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionLine())
			return err
		},
	}
}

// versionLine returns "sense <version> (<go version>, <GOOS>/<GOARCH>)".
func versionLine() string {
	return fmt.Sprintf("sense %s (%s, %s/%s)", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// versionString returns the link-time version, else the main module's
// version from the build information, else "dev".
func versionString() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		if v := info.Main.Version; v != "" && v != "(devel)" {
			return v
		}
	}
	return "dev"
}
