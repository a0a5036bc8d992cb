package run

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/orchestrator"
	"github.com/shoal-dev/shoal/internal/secrets"
	"github.com/shoal-dev/shoal/internal/services"
	"github.com/shoal-dev/shoal/internal/store"
)

// Services (swarm mode's service API) keep their desired state in a store:
// the built-in cluster's replicated one, or under `shoal manage` a store of
// its own in --data-dir. The API serves them from any manager; the
// orchestrator, which turns them into task containers, runs only on the
// leader (the store leader in the cluster; manage always leads).

// ErrDataDirReplication refuses --data-dir with --replication: replicated
// managers share no store, so they have no services to keep there.
var ErrDataDirReplication = errors.New("--data-dir: not with --replication (replicated managers keep no services; use the built-in cluster, shoal init/join, for services with several managers)")

// startServices serves services over st and, while lead says this manager
// leads, runs the orchestrator. A nil st leaves the API's Services nil:
// service calls are answered 503 naming the built-in cluster and --data-dir.
func (s *stack) startServices(g *Group, st *store.Store, lead Leadership) {
	if st == nil {
		s.log.Info("services: unavailable (no store): service and task calls are answered 503")
		return
	}
	wireServices(s, g, st, lead)
}

// wireServices sets the API's services backend over st and runs the
// orchestrator as a leader-only component of g.
func wireServices(s *stack, g *Group, st *store.Store, lead Leadership) {
	sec := secrets.New(secrets.Config{Store: st, Logger: s.log, NoSecretDelivery: !s.mgr.DeliversSecrets()})
	s.api.Secrets, s.api.Configs = sec, sec
	s.api.Services = services.New(services.Config{Store: st, Engines: s.mgr, Logger: s.log, Refs: sec})
	// ViewSince: the pool watches the nodes from now on, so a leader change
	// later does not wait for nodes it finds down (only a fresh start does).
	orch := orchestrator.New(orchestrator.Config{Store: st, Runtime: s.mgr.TaskRuntimeWith(sec), Logger: s.log, ViewSince: time.Now(),
		Observe: s.metrics.ObserveOrchestrator})
	s.metrics.WatchStore(st)
	g.Go("orchestrator", &LeaderOnly{Name: "orchestrator", Leadership: lead, Component: s.afterContact(orch), Log: s.log})
	g.Go("ingress", &LeaderOnly{Name: "ingress", Leadership: lead, Component: s.afterContact(Func(s.mgr.KeepIngress)), Log: s.log})
}

// afterContact runs c once the pool holds engines and none of them is
// still being contacted for the first time, or after contactWait: an
// orchestrator started at once, before discovery and the first contact
// with the engines, would take every node for lost and replace every task
// (seen at each restart of shoal manage). Once settled it starts at once,
// as on a leader change of a running manager.
func (s *stack) afterContact(c Component) Component {
	return Func(func(ctx context.Context) error {
		if !waitContact(ctx, s.pool, contactWait(s.pool)) {
			return nil // ctx ended
		}
		return c.Run(ctx)
	})
}

// contactWait bounds afterContact's wait: twice the engine timeout, after
// which an engine that has not answered is unhealthy anyway.
func contactWait(p *engine.Pool) time.Duration {
	if t := p.Timeout(); t > 0 {
		return 2 * t
	}
	return 10 * time.Second
}

// waitContact waits until the pool is settled or limit passes; false when
// ctx ended first.
func waitContact(ctx context.Context, p *engine.Pool, limit time.Duration) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !settled(p) {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return ctx.Err() == nil
		case <-tick.C:
		}
	}
	return ctx.Err() == nil
}

// settled: the pool has engines and each has answered or failed once.
func settled(p *engine.Pool) bool {
	es := p.Engines()
	for _, e := range es {
		if st, lastErr := e.State(); st == engine.Pending && lastErr == "" {
			return false
		}
	}
	return len(es) > 0
}

// openManageStore opens manage's own store in c.DataDir, or none: with
// --replication, without a data directory, or when the default directory
// cannot be made (a read-only /var/lib: manage keeps working as before,
// without services). A directory given with --data-dir must work, and one
// in use by another shoal is an error either way.
func (c *ManageConfig) openManageStore(ctx context.Context, log *slog.Logger) (*localStore, error) {
	switch {
	case c.Replication && c.DataDirSet:
		return nil, ErrDataDirReplication
	case c.Replication || c.DataDir == "":
		return nil, nil
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		if !c.DataDirSet && (errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)) {
			log.Warn("services: unavailable: cannot create the default data directory; give shoal manage a writable --data-dir", "data_dir", c.DataDir, "error", err)
			return nil, nil
		}
		return nil, fmt.Errorf("--data-dir %s: %w", c.DataDir, err)
	}
	return openLocalStore(ctx, c.DataDir, log)
}

// storeOf is the store of manage's local store, nil when there is none.
func storeOf(l *localStore) *store.Store {
	if l == nil {
		return nil
	}
	return l.Store
}
