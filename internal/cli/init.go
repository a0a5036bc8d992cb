package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/audit"
	"github.com/shoal-dev/shoal/internal/authz"
	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/cluster"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/run"
)

// clusterOpts are the flags of `shoal init` and of `shoal join --token`.
type clusterOpts struct {
	hosts         []string
	limits        dockerapi.Limits
	identity      identityOpts
	apiTLS        apiTLSOpts
	authz         authz.Config
	audit         audit.Config
	ui            bool
	debug         bool
	advertiseAddr string
	listenAddr    string
	dataDir       string
	engine        string
	strategy      string
	refresh       time.Duration
	failureRetry  int
	logLevel      string
	logFormat     string
	certExpiry    time.Duration // init
	testExpiry    time.Duration // init, hidden: below the 30 min floor, for tests
}

func (o *clusterOpts) flags(cmd *cobra.Command, withHosts bool) {
	f := cmd.Flags()
	if withHosts {
		f.StringArrayVarP(&o.hosts, "host", "H", []string{"tcp://127.0.0.1:2375"}, "address to serve the Docker API on when this node is a manager (tcp://host:port or unix:///path; repeatable)")
		limitFlags(f, &o.limits)
		identityFlags(f, &o.identity)
		apiTLSFlags(f, &o.apiTLS, true)
		authzFlags(f, &o.authz)
		auditFlags(f, &o.audit)
		uiFlag(f, &o.ui)
		f.BoolVarP(&o.debug, "debug", "D", false, "serve Go profiles under /debug/pprof/ on the API addresses when this node is a manager")
	}
	f.StringVar(&o.advertiseAddr, "advertise-addr", "", "IP address other nodes reach this node at (default: the listen address, or the address used to reach the manager, or the first non-loopback address)")
	f.StringVar(&o.listenAddr, "listen-addr", "0.0.0.0:2377", "cluster port of a manager (joins and agent tunnels); its store uses the next two ports")
	f.StringVar(&o.dataDir, "data-dir", "/var/lib/shoal", "directory of this node's certificates, state and (managers) replicated store, which keeps the cluster's nodes, services and tasks")
	f.StringVar(&o.engine, "engine", "unix:///var/run/docker.sock", "this host's Docker engine (unix:///path or tcp://host:port); managers reach it only through this node's tunnel")
	f.StringVar(&o.strategy, "strategy", "spread", "placement strategy when this node is a manager: spread, binpack or random")
	f.DurationVar(&o.refresh, "engine-refresh-interval", 2*time.Second, "how often each engine's health is checked (managers); a check waits at most this long (at least 1s)")
	f.IntVar(&o.failureRetry, "engine-failure-retry", 3, "failed health checks in a row before an engine is marked unhealthy (managers)")
}

func newInitCmd() *cobra.Command {
	o := &clusterOpts{}
	lock := &lockOpts{}
	cmd := &cobra.Command{
		Use:   "init [flags]",
		Short: "Create a built-in cluster with this host as its first manager",
		Long: `Create a cluster: a cluster ID, a root CA, join tokens and the replicated
store, with this host as its first manager. The Docker API is served on the
-H addresses and joins and node tunnels on --listen-addr. The command prints
the 'shoal join' commands for workers and managers, as 'docker swarm init'
does, then keeps serving. Started again with the same --data-dir, the node
comes back as it was.

Services ('docker service create/scale/ps/...') are kept in the replicated
store; every manager serves them and the store's leader keeps them at their
desired state, so a manager lost hands this over to another.

TLS: with --tlsverify and no certificate files the API is served with this
node's cluster certificate (it names the advertise address, the host name,
127.0.0.1 and localhost, and is renewed automatically) and requires client
certificates of the cluster's CA: issue them with 'shoal cert create'. A TCP
-H address beyond loopback without --tlsverify is refused.

Metrics: every manager serves Prometheus metrics at /metrics on its -H
addresses, behind the same TLS and authorization (viewers and up).`,
		Example: `  shoal init --tlsverify -H tcp://0.0.0.0:2376 --advertise-addr 10.0.0.1
  shoal cert create --name alice --role admin --out ~/.docker/shoal
  export DOCKER_HOST=tcp://10.0.0.1:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=~/.docker/shoal
  docker swarm join-token worker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			life, err := o.expiry()
			if err != nil {
				return err
			}
			return runClusterNode(cmd.Context(), o, cluster.Config{Init: true, CertExpiry: life, AutoLock: lock.autolock})
		},
	}
	o.flags(cmd, true)
	lock.flags(cmd.Flags())
	cmd.Flags().StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	logFormatFlag(cmd.Flags(), &o.logFormat)
	cmd.Flags().DurationVar(&o.certExpiry, "cert-expiry", ca.DefaultNodeLifetime, "validity of node certificates; each node renews its own between 50% and 80% of it")
	cmd.Flags().DurationVar(&o.testExpiry, "test-cert-expiry", 0, "certificate validity below the 1h floor of --cert-expiry (tests of renewal)")
	_ = cmd.Flags().MarkHidden("test-cert-expiry")
	return cmd
}

// expiry checks --cert-expiry (and the hidden test override).
func (o *clusterOpts) expiry() (time.Duration, error) {
	if o.testExpiry > 0 {
		if o.testExpiry < ca.MinTestLifetime {
			return 0, fmt.Errorf("--test-cert-expiry %s: at least %s", o.testExpiry, ca.MinTestLifetime)
		}
		return o.testExpiry, nil
	}
	if o.certExpiry < ca.MinNodeLifetime {
		return 0, fmt.Errorf("--cert-expiry %s: at least %s", o.certExpiry, ca.MinNodeLifetime)
	}
	return o.certExpiry, nil
}

// runClusterNode runs this node of the cluster (see run.ClusterNode).
func runClusterNode(ctx context.Context, o *clusterOpts, cc cluster.Config) error {
	log, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	labels, err := o.identity.labelMap()
	if err != nil {
		return err
	}
	cc.DataDir, cc.ListenAddr, cc.AdvertiseAddr, cc.Engine = o.dataDir, o.listenAddr, o.advertiseAddr, o.engine
	return run.ClusterNode(ctx, run.ClusterConfig{
		Cluster: cc, Hosts: o.hosts, TLS: o.apiTLS.files, InsecureAPI: o.apiTLS.insecure, Limits: o.limits, Authz: o.authz, Audit: o.audit,
		Strategy: o.strategy, Refresh: o.refresh, FailureRetry: o.failureRetry, UI: o.ui, Debug: o.debug,
		Name: o.identity.name, Labels: labels,
		Version: Version, Log: log,
	})
}
