package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/cluster"
)

func newLeaveCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "leave [--data-dir DIR]",
		Short: "Make this worker leave the built-in cluster (docker swarm leave on a worker)",
		Long: `Make the worker whose membership --data-dir holds leave the built-in
cluster, as 'docker swarm leave' does on a swarm mode worker. A worker serves
no Docker API, so this command stands in for that call: the managers mark the
node Down (it stays in 'docker node ls' until 'docker node rm'), the
worker's running 'shoal join' stops, and the membership is cleared from
--data-dir, so that the host can join again with a token.

A manager leaves with 'docker swarm leave --force' sent to its own Docker
API (-H); without --force it is refused, as in swarm mode.`,
		Example: `  shoal leave --data-dir /var/lib/shoal
  DOCKER_HOST=tcp://10.0.0.2:2375 docker swarm leave --force   # a manager`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := cluster.Leave(ctx, cluster.Config{DataDir: dataDir}); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Node left the swarm.")
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/shoal", "data directory of the node that leaves")
	return cmd
}
