// Package cli holds shoal's commands: flags become configuration, and
// configuration starts the components.
package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/dockerapi"
)

// Version and GitCommit describe the build, set with -ldflags -X.
var (
	Version   = "0.1.0-dev"
	GitCommit = "unknown"
)

// Execute runs the command line and returns the process exit code.
func Execute(ctx context.Context, args []string) int {
	root := newRootCmd()
	dockerapi.GitCommit = commit()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "shoal:", err)
		return 1
	}
	return 0
}

// newRootCmd is shoal and its subcommands (cobra adds `completion`).
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "shoal",
		Short: "shoal turns a pool of Docker engines into one Docker endpoint",
		Long: `shoal turns a pool of ordinary Docker engines into one Docker endpoint.
Point the docker CLI, docker compose or any Docker API client at shoal and it
behaves like one large Docker host: containers are placed on the engine that
fits best, and every later call goes to the engine that holds the object.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newManageCmd(), newJoinCmd(), newListCmd(), newVersionCmd(), newInitCmd(), newJoinTokenCmd(), newLeaveCmd(), newCertCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print shoal's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "shoal %s (commit %s, Docker API %s)\n", Version, commit(), dockerapi.APIVersion)
			return nil
		},
	}
}
