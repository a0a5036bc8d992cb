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

	"github.com/shoal-dev/shoal/internal/dockerapi"
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
	svc, sec := wireServices(s, g, st, lead)
	s.api.Services, s.api.Secrets, s.api.Configs = svc, sec, sec
}

// startManageServices serves services over manage's store l (none: 503),
// which starts at the first call needing it unless it started already
// (a directory holding a store: lazystore.go).
func (s *stack) startManageServices(g *Group, l *lazyStore, lead Leadership) {
	if l == nil {
		s.startServices(g, nil, lead)
		return
	}
	l.start = func(st *localStore) {
		l.svc, l.sec = wireServices(s, g, st.Store, lead)
		g.Go("store", watchStore(st))
	}
	if l.st != nil { // before the API serves: nothing calls open yet
		l.start(l.st)
	} else {
		s.log.Info("services: the local store starts at the first service, secret or config call", "data_dir", l.dir)
	}
	z := lazyServices{l}
	s.api.Services, s.api.Secrets, s.api.Configs = z, z, z
}

// wireServices makes the services and secrets backends over st and runs
// the orchestrator as a leader-only component of g.
func wireServices(s *stack, g *Group, st *store.Store, lead Leadership) (dockerapi.Services, *secrets.Backend) {
	sec := secrets.New(secrets.Config{Store: st, Logger: s.log, NoSecretDelivery: !s.mgr.DeliversSecrets()})
	svc := services.New(services.Config{Store: st, Engines: s.mgr, Logger: s.log, Refs: sec})
	// ViewSince: the pool watches the nodes from now on, so a leader change
	// later does not wait for nodes it finds down (only a fresh start does).
	orch := orchestrator.New(orchestrator.Config{Store: st, Runtime: s.mgr.TaskRuntimeWith(sec), Logger: s.log, ViewSince: time.Now(),
		Observe: s.metrics.ObserveOrchestrator})
	s.metrics.WatchStore(st)
	g.Go("orchestrator", &LeaderOnly{Name: "orchestrator", Leadership: lead, Component: s.afterContact(orch), Log: s.log})
	g.Go("ingress", &LeaderOnly{Name: "ingress", Leadership: lead, Component: s.afterContact(Func(s.mgr.KeepIngress)), Log: s.log})
	return svc, sec
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
// in use by another shoal is an error either way. The directory is locked
// now; its store starts now if it holds one, else at the first call that
// needs it (lazystore.go).
func (c *ManageConfig) openManageStore(ctx context.Context, log *slog.Logger) (*lazyStore, error) {
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
	lock, err := lockDir(c.DataDir)
	if err != nil {
		return nil, err
	}
	l := &lazyStore{ctx: ctx, dir: c.DataDir, lock: lock, log: log}
	if storeExists(c.DataDir) {
		if l.st, err = startLocalStore(ctx, c.DataDir, lock, log); err != nil {
			lock.Close()
			return nil, err
		}
	}
	return l, nil
}
