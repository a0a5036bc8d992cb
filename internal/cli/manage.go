package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/audit"
	"github.com/shoal-dev/shoal/internal/authz"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/run"
)

type manageOpts struct {
	hosts                                    []string
	strategy                                 string
	overcommit                               float64
	refresh, resync, timeout                 time.Duration
	failureRetry                             int
	pingRate                                 int
	rescheduleAfter                          time.Duration
	apiTLS                                   apiTLSOpts
	engineTLS, engineTLSVerify               bool
	engineTLSCA, engineTLSCert, engineTLSKey string
	logLevel, logFormat                      string
	debug                                    bool
	identity                                 identityOpts
	discoveryOpts                            []string
	replication                              bool
	advertise                                string
	replicationTTL                           time.Duration
	limits                                   dockerapi.Limits
	authz                                    authz.Config
	audit                                    audit.Config
	ui                                       bool
	dataDir                                  dataDirOpts
}

func newManageCmd() *cobra.Command {
	o := &manageOpts{}
	cmd := &cobra.Command{
		Use:   "manage [flags] <discovery>",
		Short: "Serve the Docker API over a pool of engines",
		Long: `Serve the Docker Engine API on the -H addresses and make the engines named
by <discovery> behave as one Docker host.

Discovery:
  nodes://10.0.0.11:2375,10.0.0.12:2375,10.0.0.[13:15]:2375
      a fixed list; [a:b] expands to a range (decimal a <= b; at most
      65536 addresses in all, counted before expanding)
  file:///etc/shoal/engines
      one address per line, '#' comments, [a:b] ranges; the file is watched
      and engines join or leave the pool without a restart; a bad file is
      logged and the last good list kept
  etcd://h1:2379,h2:2379/prefix, zk://h1:2181,h2:2181/prefix, consul://h:8500/prefix
      the engines registered by 'shoal join' under
      <prefix>/docker/swarm/nodes/; the store is watched, and while it cannot
      be reached the last known engines stay (TLS to the store:
      --discovery-opt kv.cacertfile=... kv.certfile=... kv.keyfile=...)
  swarm://unix:///var/run/docker.sock, swarm://tcp://host:2375, swarm://host:2375
      the nodes of a Docker swarm, read from that swarm-mode manager engine
      and kept current from its node events; each node's engine at
      <node address>:2375 (--discovery-opt swarm.port=N; TLS with the
      --engine-tls* flags); paused, drained and not-Ready nodes take nothing

Replication (key-value or swarm discovery): with --replication --advertise
host:port the managers elect a primary through the store (with swarm://:
the shoal on the swarm leader's node is primary); the others forward every
API call to it and answer /_ping and /info themselves.

Services: 'docker service create/ls/ps/scale/update/rollback/logs/rm' work
as on a swarm manager, with task containers placed over the engines. The
services and their tasks are kept in a store of this manager's own in
--data-dir (default /var/lib/shoal/manage as root, else
~/.local/state/shoal/manage) and survive a restart; one shoal manage per
directory. With --replication there is no such store and service calls
are answered 503: for services with several managers use the built-in
cluster ('shoal init', 'shoal join').

Engine addresses: host:port, tcp://host:port, unix:///path (TLS to engines
with the --engine-tls* flags); an IPv6 host in brackets: [fd00::1]:2375.

TLS: as dockerd 27+, a TCP -H address beyond loopback (0.0.0.0 included) is
refused unless clients are verified (--tlsverify with --tlscacert,
--tlscert, --tlskey); --insecure-no-tlsverify overrides this for labs.

Metrics: Prometheus metrics at /metrics on the -H addresses, behind the same
TLS and authorization (viewers and up); see docs/metrics.md.`,
		Example: `  shoal manage --tlsverify --tlscacert ca.pem --tlscert server-cert.pem --tlskey server-key.pem \
      -H tcp://0.0.0.0:2376 nodes://10.0.0.11:2375,10.0.0.12:2375
  shoal manage -H tcp://127.0.0.1:2375 nodes://10.0.0.11:2375,10.0.0.12:2375
  shoal manage -H unix:///run/shoal.sock file:///etc/shoal/engines
  shoal manage --data-dir /srv/shoal nodes://10.0.0.11:2375,10.0.0.12:2375
  export DOCKER_HOST=tcp://127.0.0.1:2375; docker run --rm busybox echo hi`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runManage(cmd.Context(), o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.hosts, "host", "H", []string{"tcp://127.0.0.1:2375"}, "address to serve the Docker API on (tcp://host:port or unix:///path; repeatable)")
	f.StringVar(&o.strategy, "strategy", "spread", "placement strategy: spread, binpack or random")
	f.Float64Var(&o.overcommit, "overcommit", 0.05, "fraction of extra CPU and memory a node may be reserved beyond its capacity (0.05 = 5%)")
	f.DurationVar(&o.refresh, "engine-refresh-interval", 2*time.Second, "how often each engine's health is checked (less often past --engine-ping-rate × this many engines: 2,000 by default); a check waits at most this long (at least 1s, at most --engine-timeout)")
	f.IntVar(&o.pingRate, "engine-ping-rate", engine.DefaultPingRate, "health checks a second across all engines: in a larger pool each engine is checked every engines/rate seconds instead of every --engine-refresh-interval, so a hung engine takes longer to be marked unhealthy (0: no bound)")
	f.DurationVar(&o.resync, "engine-resync-interval", 60*time.Second, "how often each engine's containers, images and info are fully reloaded (less often past 1,500 engines: at most 25 reloads a second in all)")
	f.DurationVar(&o.timeout, "engine-timeout", 5*time.Second, "timeout of one contact with an engine (connect, refresh); bounds health checks too")
	f.IntVar(&o.failureRetry, "engine-failure-retry", 3, "failed health checks in a row before an engine is marked unhealthy")
	f.DurationVar(&o.rescheduleAfter, "reschedule-after", 10*time.Second, "how long a node must stay unhealthy before its containers with reschedule:on-node-failure are recreated on other nodes")
	apiTLSFlags(f, &o.apiTLS, false)
	f.BoolVar(&o.engineTLS, "engine-tls", false, "connect to tcp engines with TLS (implied by --engine-tlsverify)")
	f.BoolVar(&o.engineTLSVerify, "engine-tlsverify", false, "connect to engines with TLS and verify their certificates against --engine-tlscacert")
	f.StringVar(&o.engineTLSCA, "engine-tlscacert", "", "CA certificate that engine certificates must be signed by")
	f.StringVar(&o.engineTLSCert, "engine-tlscert", "", "client certificate shoal presents to engines")
	f.StringVar(&o.engineTLSKey, "engine-tlskey", "", "client key shoal presents to engines")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	logFormatFlag(f, &o.logFormat)
	f.BoolVarP(&o.debug, "debug", "D", false, "serve Go profiles under /debug/pprof/ on the API addresses")
	limitFlags(f, &o.limits)
	identityFlags(f, &o.identity)
	authzFlags(f, &o.authz)
	auditFlags(f, &o.audit)
	uiFlag(f, &o.ui)
	dataDirFlag(f, &o.dataDir)
	f.StringArrayVar(&o.discoveryOpts, "discovery-opt", nil, "discovery option key=value (kv.cacertfile, kv.certfile, kv.keyfile, swarm.port; repeatable)")
	f.BoolVar(&o.replication, "replication", false, "run as one of several managers that elect a primary through the key-value or swarm discovery; replicas forward to it")
	f.StringVar(&o.advertise, "advertise", "", "with --replication: host:port at which the other managers reach this manager's API")
	f.DurationVar(&o.replicationTTL, "replication-ttl", 15*time.Second, "with --replication: how long a dead primary keeps its role before another takes over")
	return cmd
}

// config is manage's flags as the run package takes them.
func (o *manageOpts) config(uri string, log *slog.Logger) run.ManageConfig {
	return run.ManageConfig{
		Discovery:       uri,
		DiscoveryOpts:   o.discoveryOpts,
		Hosts:           o.hosts,
		TLS:             o.apiTLS.files,
		InsecureAPI:     o.apiTLS.insecure,
		EngineTLS:       run.TLSFiles{On: o.engineTLS, Verify: o.engineTLSVerify, CA: o.engineTLSCA, Cert: o.engineTLSCert, Key: o.engineTLSKey},
		Debug:           o.debug,
		UI:              o.ui,
		Limits:          o.limits,
		Authz:           o.authz,
		Audit:           o.audit,
		Strategy:        o.strategy,
		Overcommit:      o.overcommit,
		Refresh:         o.refresh,
		Resync:          o.resync,
		Timeout:         o.timeout,
		FailureRetry:    o.failureRetry,
		PingRate:        pingRate(o.pingRate),
		RescheduleAfter: o.rescheduleAfter,
		Replication:     o.replication,
		Advertise:       o.advertise,
		ReplicationTTL:  o.replicationTTL,
		Version:         Version,
		Log:             log,
	}
}

// pingRate is --engine-ping-rate as engine.Options takes it (where 0 is
// the default and a negative rate no bound).
func pingRate(flag int) int {
	if flag == 0 {
		return -1
	}
	return flag
}

func runManage(ctx context.Context, o *manageOpts, uri string) error {
	if o.pingRate < 0 {
		return fmt.Errorf("--engine-ping-rate %d: want a number of checks a second, or 0 for no bound", o.pingRate)
	}
	log, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	c := o.dataDir.applied(o.config(uri, log))
	if c.Labels, err = o.identity.labelMap(); err != nil {
		return err
	}
	c.Name = o.identity.name
	return run.Manage(ctx, c)
}
