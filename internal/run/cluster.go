package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/shoal-dev/shoal/internal/audit"
	"github.com/shoal-dev/shoal/internal/authz"
	"github.com/shoal-dev/shoal/internal/cluster"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// ClusterConfig is a node of the built-in cluster: `shoal init` and
// `shoal join --token`.
type ClusterConfig struct {
	// Cluster says how to create, join or restart the node: Init or
	// Token+JoinAddr, CertExpiry, DataDir, ListenAddr, AdvertiseAddr and
	// Engine. Pool and Logger are set by ClusterNode.
	Cluster cluster.Config
	Hosts   []string // -H addresses the API is served on while a manager
	// TLS is the API's: with --tlsverify and no files, the node's
	// certificate and the cluster's CA; InsecureAPI is --insecure-no-tlsverify.
	TLS         TLSFiles
	InsecureAPI bool
	apiFiles    apiFiles // TLS's files, loaded once
	// Limits bound the API's connections, headers and idle time; zero
	// is dockerapi.DefaultLimits.
	Limits dockerapi.Limits
	Authz  authz.Config // who may do what: --authz-default-role, --authz-policy
	Audit  audit.Config // --audit-log*: the audit trail of API calls
	UI     bool         // serve the web console at /ui/ (--ui)
	Debug  bool         // serve Go profiles under /debug/pprof/ (-D)

	Strategy     string        // spread, binpack or random
	Refresh      time.Duration // engine health check period
	FailureRetry int

	// Name and Labels are this shoal's own (--name, --label): see
	// manager.Config.
	Name   string
	Labels map[string]string

	Version string
	Log     *slog.Logger
	Stdout  io.Writer // where the join commands are printed; os.Stdout if nil

	policy *authz.Policy // Authz, loaded
}

// clusterOvercommit is the scheduler's overcommit in the built-in cluster,
// which has no flag for it.
const clusterOvercommit = 0.05

// ClusterNode runs this node of the cluster until ctx ends, starting it
// again from its data directory each time it is promoted or demoted.
func ClusterNode(ctx context.Context, c ClusterConfig) error {
	strategy, err := scheduler.ParseStrategy(c.Strategy)
	if err != nil {
		return fmt.Errorf("--strategy: %w", err)
	}
	if c.policy, err = c.Authz.Load(); err != nil {
		return err
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if err := checkAPISecurity(c.Hosts, c.TLS, c.InsecureAPI, c.Log); err != nil {
		return err
	}
	if c.apiFiles, err = c.TLS.loadAPIFiles(); err != nil {
		return err
	}
	for {
		err := c.runOnce(ctx, strategy)
		if !errors.Is(err, cluster.ErrRoleChanged) || ctx.Err() != nil {
			return err
		}
		c.Cluster.Init, c.Cluster.Token = false, "" // from now on the data directory says who we are
	}
}

// runOnce starts this node of the cluster and, on a manager, the engine
// pool, the manager and the Docker API over them. It returns
// cluster.ErrRoleChanged when the node must start again in a new role.
func (c *ClusterConfig) runOnce(ctx context.Context, strategy scheduler.Strategy) error {
	log := c.Log
	pool := engine.NewPool(engine.Options{RefreshInterval: c.Refresh, FailureRetry: c.FailureRetry, Logger: log}, nil)
	cc := c.Cluster
	cc.Pool, cc.Logger = pool, log
	cl, err := cluster.New(cc)
	if err != nil {
		return err
	}
	start := time.Now()
	openAPI := func(t clusterTLS) ([]net.Listener, error) {
		return listen(c.Hosts, c.TLS.clusterServer(c.apiFiles, t), connLimiter(c.Limits, log), log)
	}
	lk, err := c.startCluster(ctx, cl, openAPI)
	if err != nil {
		return err
	}
	defer cl.Close()
	defer lk.close()
	defer func() { c.Cluster.UnlockKey = cl.HeldUnlockKey() }() // a role change restarts the node unlocked
	log.Info("cluster node ready", "node", cl.NodeID(), "manager", cl.IsManager(), "took", time.Since(start).Round(time.Millisecond))

	g := NewGroup(ctx, func(f *Failure) {
		switch {
		case errors.Is(f.Err, cluster.ErrRoleChanged):
			log.Info("role changed: restarting this node in its new role")
		case errors.Is(f.Err, cluster.ErrLeft), errors.Is(f.Err, cluster.ErrRemoved):
			// the end of this node's membership: leaveOrFail says it once
		default:
			logFailure(log)(f)
		}
	})
	g.Go("cluster", Func(cl.Run))
	if !cl.IsManager() {
		fmt.Fprintf(c.Stdout, "This node joined the cluster as a worker (node ID %s).\n", cl.NodeID())
		return c.leaveOrFail(cl, g.Wait())
	}
	listeners, err := lk.listen(openAPI, cl)
	if err != nil {
		g.Stop()
		_ = g.Wait()
		return err
	}
	s := newStack(pool, manager.Config{
		Strategy: c.Strategy, Version: c.Version, Logger: log, Cluster: cl,
		Name: c.Name, Labels: c.Labels,
	}, strategy, clusterOvercommit)
	s.api.Authz = c.policy
	s.api.Streams = streamLimiter(c.Limits, log)
	s.api.Debug = c.Debug
	s.mountUI(c.UI)
	s.metrics.WatchTunnels(cl.TunnelsUp)
	handler, closeAudit, err := audited(c.Audit, c.policy, s.api, log)
	if err != nil {
		closeAll(listeners)
		g.Stop()
		_ = g.Wait()
		return err
	}
	defer closeAudit()
	s.start(g, StoreElection{Store: cl})
	g.Go("join loads", newJoinLoads(pool, log)) // joinmem.go
	s.startServices(g, cl.Store(), StoreElection{Store: cl})
	if c.Cluster.Init {
		printJoinCommands(g.Context(), c.Stdout, cl)
		printUnlockKey(g.Context(), c.Stdout, cl)
	}
	lk.serveAPI(g, handler, listeners, c.Limits, log)
	return c.leaveOrFail(cl, g.Wait())
}

// leaveOrFail ends the node's run: a node that left clears its membership
// and stops as swarm mode's does (exit 0); a removed node stops with an
// error, logged once, since retrying with a revoked certificate cannot
// succeed and an operator must act (empty the data dir to join anew).
func (c *ClusterConfig) leaveOrFail(cl *cluster.Cluster, err error) error {
	switch {
	case errors.Is(err, cluster.ErrLeft):
		cl.Close()
		if err := cluster.ClearMembership(c.Cluster.DataDir); err != nil {
			return err
		}
		c.Log.Info("this node left the cluster; its membership was cleared from the data directory", "data_dir", c.Cluster.DataDir)
		fmt.Fprintln(c.Stdout, "Node left the swarm.")
		return nil
	case errors.Is(err, cluster.ErrRemoved):
		var f *Failure
		if errors.As(err, &f) {
			err = f.Err
		}
		c.Log.Error("stopping: this node was removed from the cluster", "node", cl.NodeID(), "err", err)
		return err
	}
	return clusterOutcome(err)
}

// clusterOutcome is outcome, except that a role change is handed up so
// that ClusterNode starts the node again.
func clusterOutcome(err error) error {
	if errors.Is(err, cluster.ErrRoleChanged) {
		return cluster.ErrRoleChanged
	}
	return outcome(err)
}

// printJoinCommands tells the user how to add nodes, as docker swarm init does.
func printJoinCommands(ctx context.Context, out io.Writer, cl *cluster.Cluster) {
	sw, err := cl.Swarm(ctx)
	if err != nil {
		return
	}
	fmt.Fprintf(out, "Cluster initialized: current node (%s) is now a manager.\n\n", cl.NodeID())
	fmt.Fprintf(out, "To add a worker to this cluster, run the following command:\n\n    shoal join --token %s %s\n\n", sw.JoinTokens.Worker, cl.ClusterAddr())
	fmt.Fprintf(out, "To add a manager to this cluster, run 'shoal join-token manager' and follow the instructions.\n\n")
}
