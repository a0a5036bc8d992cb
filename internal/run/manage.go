package run

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal/internal/audit"
	"github.com/shoal-dev/shoal/internal/authz"
	"github.com/shoal-dev/shoal/internal/discovery"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/replica"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// ManageConfig is `shoal manage`: its flags and its <discovery> argument.
type ManageConfig struct {
	Discovery     string   // the <discovery> URI
	DiscoveryOpts []string // --discovery-opt key=value entries
	Hosts         []string // -H addresses the API is served on
	TLS           TLSFiles // --tls, --tlsverify, --tlscacert, --tlscert, --tlskey
	InsecureAPI   bool     // --insecure-no-tlsverify: TCP beyond loopback without --tlsverify
	EngineTLS     TLSFiles // the --engine-tls* flags
	Debug         bool     // serve Go profiles under /debug/pprof/
	UI            bool     // serve the web console at /ui/ (--ui)
	// Limits bound the API's connections, headers and idle time; zero
	// is dockerapi.DefaultLimits.
	Limits dockerapi.Limits
	Authz  authz.Config // who may do what: --authz-default-role, --authz-policy
	Audit  audit.Config // --audit-log*: the audit trail of API calls

	Strategy        string // spread, binpack or random
	Overcommit      float64
	Refresh         time.Duration // engine health check period
	Resync          time.Duration // engine full reload period
	Timeout         time.Duration // engine health check timeout
	FailureRetry    int
	PingRate        int // health checks a second across the pool (engine.Options.PingRate)
	RescheduleAfter time.Duration

	Replication    bool
	Advertise      string // with Replication: this manager's API as others reach it
	ReplicationTTL time.Duration

	// DataDir holds manage's own store of services (empty: none, service
	// calls answer 503); DataDirSet says --data-dir was given (services.go).
	DataDir    string
	DataDirSet bool

	// Name and Labels are this shoal's own (--name, --label): see
	// manager.Config.
	Name   string
	Labels map[string]string

	Version string
	Log     *slog.Logger
}

// Manage runs `shoal manage` until ctx ends: the pool of engines named by
// the discovery, the manager and the Docker API over them, and with
// --replication the election of a primary.
func Manage(ctx context.Context, c ManageConfig) error {
	policy, err := c.Authz.Load()
	if err != nil {
		return err
	}
	in, err := c.open()
	if err != nil {
		return err
	}
	log := c.Log
	st, err := c.openManageStore(ctx, log)
	if err != nil {
		closeAll(in.listeners)
		return err
	}
	if st != nil {
		defer st.Close()
	}
	loaded, loadDone := loadGC(log) // loadmem.go
	defer loadDone()
	pool := engine.NewPool(engine.Options{
		RefreshInterval: c.Refresh, ResyncInterval: c.Resync, Timeout: c.Timeout,
		FailureRetry: c.FailureRetry, PingRate: c.PingRate, Logger: log,
		Loaded: loaded,
	}, in.engineTLS)
	s := newStack(pool, manager.Config{
		Strategy: c.Strategy, Version: c.Version, Logger: log, RescheduleAfter: c.RescheduleAfter, LocalSwarm: st != nil,
		Name: c.Name, Labels: c.Labels,
	}, in.strategy, c.Overcommit)
	s.api.Debug = c.Debug
	s.mountUI(c.UI)
	s.api.Authz = policy
	s.api.Streams = streamLimiter(c.Limits, log)
	var handler http.Handler = s.api
	var lead Leadership = Single{}
	var elect Component
	if c.Replication {
		h, e, err := c.replicate(s.api, in.disc, log)
		if err != nil {
			closeAll(in.listeners)
			return err
		}
		// Callers are authorized here, before a replica forwards them
		// to the primary under its own (admin) certificate.
		handler, lead, elect = s.api.Guard(h), Replication{Handler: h}, e
	}
	handler, closeAudit, err := audited(c.Audit, policy, handler, log)
	if err != nil {
		closeAll(in.listeners)
		return err
	}
	defer closeAudit()

	g := NewGroup(ctx, logFailure(log))
	s.start(g, lead)
	s.startManageServices(g, st, lead)
	g.Go("discovery", watchDiscovery(in.disc, pool))
	if elect != nil {
		g.Go("replication", elect)
	}
	serve(g, handler, in.listeners, c.Limits, log)
	return outcome(g.Wait())
}

// manageInputs are what manage's configuration opens before anything runs.
type manageInputs struct {
	strategy  scheduler.Strategy
	disc      discovery.Backend
	engineTLS *tls.Config
	listeners []net.Listener
}

// open checks the configuration and opens the discovery and the API's
// listeners, in the order their errors have always been reported.
func (c *ManageConfig) open() (*manageInputs, error) {
	var in manageInputs
	var err error
	if in.strategy, err = scheduler.ParseStrategy(c.Strategy); err != nil {
		return nil, fmt.Errorf("--strategy: %w", err)
	}
	if err := checkAPISecurity(c.Hosts, c.TLS, c.InsecureAPI, c.Log); err != nil {
		return nil, err
	}
	if in.disc, err = c.openDiscovery(c.Log); err != nil {
		return nil, err
	}
	if in.engineTLS, err = c.EngineTLS.engineClient(); err != nil {
		return nil, fmt.Errorf("engine TLS: %w", err)
	}
	serverTLS, err := c.TLS.server()
	if err != nil {
		return nil, fmt.Errorf("API TLS: %w", err)
	}
	if in.listeners, err = listen(c.Hosts, serverTLS, connLimiter(c.Limits, c.Log), c.Log); err != nil {
		return nil, err
	}
	return &in, nil
}

// watchDiscovery keeps the pool's engines those the discovery names.
func watchDiscovery(disc discovery.Backend, pool *engine.Pool) Component {
	return Func(func(ctx context.Context) error {
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
}

// replicate wraps the API handler for --replication: the returned
// component campaigns (or follows the swarm leader), and the handler
// forwards to the primary while this manager is a replica.
func (c *ManageConfig) replicate(api http.Handler, disc discovery.Backend, log *slog.Logger) (*replica.Handler, Component, error) {
	fwdTLS, err := c.TLS.forward()
	if err != nil {
		return nil, nil, fmt.Errorf("replication TLS: %w", err)
	}
	h := replica.New(api, c.Advertise, fwdTLS, log)
	if sw, ok := disc.(*discovery.Swarm); ok {
		// The shoal on the swarm leader's node is primary; one that stops
		// answering is passed over after --replication-ttl.
		sw.Probe = discovery.PingProbe(fwdTLS)
		log.Info("replication: primary follows the swarm leader", "advertise", c.Advertise, "swarm", sw.String(), "ttl", c.ReplicationTTL)
		return h, Func(func(ctx context.Context) error { return h.Run(ctx, sw) }), nil
	}
	kv := disc.(*discovery.KV)
	log.Info("replication: campaigning for primary", "advertise", c.Advertise, "store", kv.String(), "ttl", c.ReplicationTTL)
	return h, Func(func(ctx context.Context) error { return h.Run(ctx, kv) }), nil
}
