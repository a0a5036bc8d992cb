package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/cluster"
	"github.com/shoal-dev/shoal/internal/run"
)

type joinOpts struct {
	advertise     string
	heartbeat     time.Duration
	ttl           time.Duration
	discoveryOpts []string
	logLevel      string
	logFormat     string
	token         string // built-in cluster join
	cluster       clusterOpts
}

func newJoinCmd() *cobra.Command {
	o := &joinOpts{}
	cmd := &cobra.Command{
		Use:   "join --token <token> [flags] <manager host:port> | join [flags] [<manager host:port>] | join --advertise <engine address> [flags] <discovery>",
		Short: "Join a built-in cluster, or register an engine in a key-value store discovery",
		Long: `With --token: join the built-in cluster of the manager at <manager
host:port> (its cluster port, 2377). The node checks the manager's root CA
against the token, receives its certificate and keeps mutual-TLS tunnels to
the managers, through which they reach the local --engine (no TCP port
needed). With a manager token the host also joins the replicated store and
serves the Docker API on -H (--tlsverify without files: the node's cluster
certificate, clients of the cluster's CA, as with 'shoal init').

Resuming: when --data-dir already holds this host's cluster membership (it
joined before, or ran shoal init), 'shoal join' resumes it, with or without
--token and the manager address: the node comes back with its node ID and
its role (the managers it knew are tried; the token and address given are
not needed and not used). To join anew, e.g. after 'docker node rm', empty
--data-dir first. 'shoal leave' makes a worker leave the cluster.

With a discovery URL and no --token: register the engine at --advertise under
<discovery> (etcd://, zk://, consul://) and refresh the entry every
--heartbeat. The entry expires --ttl after the last refresh, so when this
process dies the engine leaves the pool of every shoal manager watching the
store; when it stops normally (SIGTERM, Ctrl-C) the entry is removed at once.

Discovery:
  etcd://h1:2379,h2:2379/prefix
  zk://h1:2181,h2:2181/prefix
  consul://h:8500/prefix
      entries are <prefix>/docker/swarm/nodes/<address> = <address>, the
      layout of classic Swarm

TLS to the store: --discovery-opt kv.cacertfile=ca.pem
  --discovery-opt kv.certfile=cert.pem --discovery-opt kv.keyfile=key.pem`,
		Example: `  shoal join --token SWMTKN-1-... 10.0.0.1:2377
  shoal join --token SWMTKN-1-... --engine unix:///var/run/docker.sock --data-dir /var/lib/shoal 10.0.0.1:2377
  shoal join --data-dir /var/lib/shoal            # resume after a restart
  shoal join --advertise 10.0.0.11:2375 etcd://10.0.0.2:2379/shoal
  shoal join --advertise 10.0.0.11:2375 --heartbeat 5s --ttl 15s zk://10.0.0.2,10.0.0.3/shoal`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mode, err := joinModeOf(o.token, args, o.cluster.dataDir, cluster.HasMembership(o.cluster.dataDir))
			if err != nil {
				return err
			}
			if mode == joinKV {
				return runJoin(cmd.Context(), o, args[0])
			}
			o.cluster.logLevel, o.cluster.logFormat = o.logLevel, o.logFormat
			cc := cluster.Config{Token: o.token}
			if len(args) == 1 {
				cc.JoinAddr = args[0]
			}
			return runClusterNode(cmd.Context(), &o.cluster, cc)
		},
	}
	o.cluster.flags(cmd, true)
	f := cmd.Flags()
	f.StringVar(&o.token, "token", "", "join token (SWMTKN-1-...) of the built-in cluster; the argument is then a manager's cluster port")
	f.StringVar(&o.advertise, "advertise", "", "address of the engine to register (host:port, as managers should dial it)")
	f.DurationVar(&o.heartbeat, "heartbeat", 20*time.Second, "how often the entry is refreshed")
	f.DurationVar(&o.ttl, "ttl", 60*time.Second, "how long the entry outlives its last refresh")
	f.StringArrayVar(&o.discoveryOpts, "discovery-opt", nil, "discovery option key=value (kv.cacertfile, kv.certfile, kv.keyfile; repeatable)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	logFormatFlag(f, &o.logFormat)
	return cmd
}

func runJoin(ctx context.Context, o *joinOpts, uri string) error {
	log, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	return run.Register(ctx, run.RegisterConfig{
		Discovery: uri, DiscoveryOpts: o.discoveryOpts, Advertise: o.advertise,
		Heartbeat: o.heartbeat, TTL: o.ttl, Log: log,
	})
}

// joinMode is what shoal join does with its arguments.
type joinMode int

const (
	joinCluster joinMode = iota // join the built-in cluster, or resume a membership
	joinKV                      // register an engine in key-value discovery
)

// joinModeOf picks the mode: a discovery URL (scheme://) is a key-value
// join; otherwise a token joins the built-in cluster, and a data directory
// that holds a membership resumes it, token or not.
func joinModeOf(token string, args []string, dataDir string, member bool) (joinMode, error) {
	if len(args) == 1 && strings.Contains(args[0], "://") && token == "" {
		return joinKV, nil
	}
	switch {
	case member:
		return joinCluster, nil
	case token == "" && len(args) == 0:
		return 0, fmt.Errorf("nothing to join: --data-dir %s holds no cluster membership to resume; give --token and a manager address, or --advertise and a discovery URL", dataDir)
	case token == "":
		return 0, fmt.Errorf("no --token, and --data-dir %s holds no cluster membership to resume: give the join token to join the cluster at %s", dataDir, args[0])
	case len(args) == 0:
		return 0, fmt.Errorf("--token needs the address of a manager's cluster port (host:2377)")
	}
	return joinCluster, nil
}
