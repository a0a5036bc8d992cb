package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/discovery"
)

func newListCmd() *cobra.Command {
	var optEntries []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "list [flags] <discovery>",
		Short: "Print the engines a discovery holds, one a line",
		Long: `Print the engine addresses that <discovery> holds now, one a line: the
entries registered by 'shoal join' in etcd://, zk:// or consul://, or the
expanded list of nodes:// or file://.`,
		Example: `  shoal list etcd://10.0.0.2:2379/shoal
  shoal list --discovery-opt kv.cacertfile=ca.pem --discovery-opt kv.certfile=cert.pem \
    --discovery-opt kv.keyfile=key.pem etcd://10.0.0.2:2379/shoal
  shoal list nodes://10.0.0.[11:13]:2375`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := discovery.ParseOptions(optEntries)
			if err != nil {
				return err
			}
			d, err := discovery.Open(args[0], opts)
			if err != nil {
				return err
			}
			if kv, ok := d.(*discovery.KV); ok {
				defer kv.Close()
			}
			l, ok := d.(discovery.Lister)
			if !ok {
				return fmt.Errorf("discovery %q cannot be listed", args[0])
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			addrs, err := l.List(ctx)
			if err != nil {
				return err
			}
			for _, a := range addrs {
				fmt.Fprintln(cmd.OutOrStdout(), a)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&optEntries, "discovery-opt", nil, "discovery option key=value (kv.cacertfile, kv.certfile, kv.keyfile; repeatable)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the store")
	return cmd
}
