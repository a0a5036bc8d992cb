package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-connections/tlsconfig"
	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/discovery"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/replica"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

type manageOpts struct {
	hosts                                    []string
	strategy                                 string
	overcommit                               float64
	refresh, resync, timeout                 time.Duration
	failureRetry                             int
	rescheduleAfter                          time.Duration
	tls, tlsVerify                           bool
	tlsCA, tlsCert, tlsKey                   string
	engineTLS, engineTLSVerify               bool
	engineTLSCA, engineTLSCert, engineTLSKey string
	logLevel                                 string
	debug                                    bool
	discoveryOpts                            []string
	replication                              bool
	advertise                                string
	replicationTTL                           time.Duration
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
      a fixed list; [a:b] expands to a range
  file:///etc/shoal/engines
      one address per line, '#' comments, [a:b] ranges; the file is watched
      and engines join or leave the pool without a restart
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

Engine addresses: host:port, tcp://host:port, unix:///path (TLS to engines
with the --engine-tls* flags).`,
		Example: `  shoal manage -H tcp://127.0.0.1:2375 nodes://10.0.0.11:2375,10.0.0.12:2375
  shoal manage -H unix:///run/shoal.sock file:///etc/shoal/engines
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
	f.DurationVar(&o.refresh, "engine-refresh-interval", 5*time.Second, "how often each engine's health is checked")
	f.DurationVar(&o.resync, "engine-resync-interval", 60*time.Second, "how often each engine's containers, images and info are fully reloaded")
	f.DurationVar(&o.timeout, "engine-timeout", 5*time.Second, "timeout of a health check")
	f.IntVar(&o.failureRetry, "engine-failure-retry", 3, "failed health checks in a row before an engine is marked unhealthy")
	f.DurationVar(&o.rescheduleAfter, "reschedule-after", 10*time.Second, "how long a node must stay unhealthy before its containers with reschedule:on-node-failure are recreated on other nodes")
	f.BoolVar(&o.tls, "tls", false, "serve the API with TLS (implied by --tlsverify)")
	f.BoolVar(&o.tlsVerify, "tlsverify", false, "serve with TLS and require client certificates signed by --tlscacert")
	f.StringVar(&o.tlsCA, "tlscacert", "", "CA certificate that client certificates must be signed by")
	f.StringVar(&o.tlsCert, "tlscert", "", "TLS certificate of the API server")
	f.StringVar(&o.tlsKey, "tlskey", "", "TLS key of the API server")
	f.BoolVar(&o.engineTLS, "engine-tls", false, "connect to tcp engines with TLS (implied by --engine-tlsverify)")
	f.BoolVar(&o.engineTLSVerify, "engine-tlsverify", false, "connect to engines with TLS and verify their certificates against --engine-tlscacert")
	f.StringVar(&o.engineTLSCA, "engine-tlscacert", "", "CA certificate that engine certificates must be signed by")
	f.StringVar(&o.engineTLSCert, "engine-tlscert", "", "client certificate shoal presents to engines")
	f.StringVar(&o.engineTLSKey, "engine-tlskey", "", "client key shoal presents to engines")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.BoolVarP(&o.debug, "debug", "D", false, "serve Go profiles under /debug/pprof/ on the API addresses")
	f.StringArrayVar(&o.discoveryOpts, "discovery-opt", nil, "discovery option key=value (kv.cacertfile, kv.certfile, kv.keyfile, swarm.port; repeatable)")
	f.BoolVar(&o.replication, "replication", false, "run as one of several managers that elect a primary through the key-value or swarm discovery; replicas forward to it")
	f.StringVar(&o.advertise, "advertise", "", "with --replication: host:port at which the other managers reach this manager's API")
	f.DurationVar(&o.replicationTTL, "replication-ttl", 15*time.Second, "with --replication: how long a dead primary keeps its role before another takes over")
	return cmd
}

func (o *manageOpts) engineTLSConfig() (*tls.Config, error) {
	if !o.engineTLS && !o.engineTLSVerify && o.engineTLSCert == "" {
		return nil, nil
	}
	return tlsconfig.Client(tlsconfig.Options{
		CAFile:             o.engineTLSCA,
		CertFile:           o.engineTLSCert,
		KeyFile:            o.engineTLSKey,
		InsecureSkipVerify: !o.engineTLSVerify,
	})
}

func (o *manageOpts) serverTLSConfig() (*tls.Config, error) {
	if !o.tls && !o.tlsVerify {
		return nil, nil
	}
	if o.tlsCert == "" || o.tlsKey == "" {
		return nil, errors.New("--tls/--tlsverify need --tlscert and --tlskey")
	}
	opts := tlsconfig.Options{CertFile: o.tlsCert, KeyFile: o.tlsKey, ClientAuth: tls.NoClientCert}
	if o.tlsVerify {
		if o.tlsCA == "" {
			return nil, errors.New("--tlsverify needs --tlscacert")
		}
		opts.CAFile = o.tlsCA
		opts.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tlsconfig.Server(opts)
}

func runManage(ctx context.Context, o *manageOpts, uri string) error {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	strategy, err := scheduler.ParseStrategy(o.strategy)
	if err != nil {
		return fmt.Errorf("--strategy: %w", err)
	}
	disc, err := o.openDiscovery(uri, log)
	if err != nil {
		return err
	}
	if f, ok := disc.(*discovery.File); ok {
		f.OnError = func(err error) { log.Warn("discovery file", "path", f.Path, "error", err) }
	}
	engineTLS, err := o.engineTLSConfig()
	if err != nil {
		return fmt.Errorf("engine TLS: %w", err)
	}
	serverTLS, err := o.serverTLSConfig()
	if err != nil {
		return fmt.Errorf("API TLS: %w", err)
	}
	listeners, err := listen(o.hosts, serverTLS)
	if err != nil {
		return err
	}

	var mgr *manager.Manager // set below, before the pool runs
	pool := engine.NewPool(engine.Options{
		RefreshInterval: o.refresh, ResyncInterval: o.resync, Timeout: o.timeout,
		FailureRetry: o.failureRetry, Logger: log,
	}, engineTLS)
	sched := scheduler.New(strategy, scheduler.Options{Overcommit: o.overcommit})
	mgr = manager.New(manager.Config{
		Pool: pool, Placer: sched, Strategy: o.strategy, Version: Version, Logger: log,
		RescheduleAfter: o.rescheduleAfter,
	})
	api := dockerapi.New(mgr, Version, log)
	api.Debug = o.debug

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				log.Error("component stopped", "component", name, "error", err)
				cancel()
			}
		}()
	}
	run("pool", pool.Run)
	run("manager", mgr.Run)
	run("discovery", func(ctx context.Context) error {
		if nw, ok := disc.(discovery.NodeWatcher); ok {
			return nw.WatchNodes(ctx, func(nodes []discovery.Node) {
				addrs := make([]string, len(nodes))
				for i, n := range nodes {
					addrs[i] = n.Addr
				}
				pool.Update(addrs)
				for _, n := range nodes {
					pool.SetAvailability(n.Addr, n.Availability)
				}
			})
		}
		return disc.Watch(ctx, pool.Update)
	})
	handler, err := o.replicate(api, disc, log, run)
	if err != nil {
		return err
	}
	if h, ok := handler.(*replica.Handler); ok {
		mgr.SetPrimaryCheck(func() bool { _, self := h.Primary(); return self })
	}

	err = serveAPI(ctx, handler, listeners, log, cancel)
	wg.Wait()
	return err
}

// listen opens each -H address: tcp://host:port, host:port, unix:///path.
func listen(hosts []string, tlsConf *tls.Config) ([]net.Listener, error) {
	var out []net.Listener
	fail := func(err error) ([]net.Listener, error) {
		for _, l := range out {
			l.Close()
		}
		return nil, err
	}
	for _, h := range hosts {
		var l net.Listener
		var err error
		switch {
		case strings.HasPrefix(h, "unix://"):
			p := strings.TrimPrefix(h, "unix://")
			if fi, serr := os.Stat(p); serr == nil && fi.Mode()&os.ModeSocket != 0 {
				os.Remove(p) // stale socket of an earlier run
			}
			l, err = net.Listen("unix", p)
			if err == nil {
				_ = os.Chmod(p, 0o660)
			}
		default:
			addr := strings.TrimPrefix(h, "tcp://")
			if _, _, serr := net.SplitHostPort(addr); serr != nil {
				return fail(fmt.Errorf("-H %q: %v", h, serr))
			}
			l, err = net.Listen("tcp", addr)
			if err == nil && tlsConf != nil {
				l = tls.NewListener(l, tlsConf)
			}
		}
		if err != nil {
			return fail(fmt.Errorf("-H %q: %w", h, err))
		}
		out = append(out, l)
	}
	return out, nil
}
