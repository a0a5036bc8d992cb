// Package cli holds shoal's commands: flags become configuration, and
// configuration starts the components.
package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

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
	dockerapi.GitCommit = GitCommit
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "shoal:", err)
		return 1
	}
	return 0
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print shoal's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "shoal %s (Docker API %s)\n", Version, "1.56")
			return nil
		},
	}
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
