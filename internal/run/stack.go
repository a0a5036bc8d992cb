package run

import (
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/metrics"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// stack is what every manager runs, in classic and built-in cluster mode
// alike: the engine pool, the manager over it and the Docker API.
type stack struct {
	pool    *engine.Pool
	mgr     *manager.Manager
	api     *dockerapi.Server
	log     *slog.Logger
	metrics *metrics.Metrics // metrics.go
}

// newStack builds the manager and the API over pool. The manager follows
// the pool through its event bus; nothing else connects them.
func newStack(pool *engine.Pool, cfg manager.Config, strategy scheduler.Strategy, overcommit float64) *stack {
	m := newMetrics(cfg.Version)
	cfg.Pool = pool
	cfg.Placer = m.Placer(scheduler.New(strategy, scheduler.Options{Overcommit: overcommit}))
	mgr := manager.New(cfg)
	s := &stack{pool: pool, mgr: mgr, api: dockerapi.New(mgr, cfg.Version, cfg.Logger), log: cfg.Logger, metrics: m}
	s.instrument()
	return s
}

// start runs the pool, the manager's housekeeping and, while lead says
// this manager leads, the rescheduler.
func (s *stack) start(g *Group, lead Leadership) {
	g.Go("pool", Func(s.pool.Run))
	g.Go("manager", Func(s.mgr.Run))
	g.Go("metrics", Func(s.metrics.FollowEvents(s.pool)))
	g.Go("rescheduler", &LeaderOnly{Name: "rescheduler", Leadership: lead, Component: s.mgr.Rescheduler(), Log: s.log})
}

// serve runs the API server on its listeners as a component of g.
func serve(g *Group, h http.Handler, ls []net.Listener, lim dockerapi.Limits, log *slog.Logger) {
	g.Go("api", &apiServer{handler: h, listeners: ls, limits: limitsOrDefault(lim), log: log})
}

// limitsOrDefault is lim, or shoal's defaults for a configuration that
// set none (callers other than the CLI).
func limitsOrDefault(lim dockerapi.Limits) dockerapi.Limits {
	if lim == (dockerapi.Limits{}) {
		return dockerapi.DefaultLimits()
	}
	return lim
}

// connLimiter is the connection caps all of the API's listeners share.
func connLimiter(lim dockerapi.Limits, log *slog.Logger) *dockerapi.ConnLimiter {
	return dockerapi.NewConnLimiter(limitsOrDefault(lim), log)
}

// outcome turns how the group ended into the command's result: shoal
// stops when any component fails, but only the API server's failure makes
// it exit with an error; the others are logged (onFail) as they happen.
func outcome(err error) error {
	var f *Failure
	if !errors.As(err, &f) {
		return err
	}
	if f.Component == "api" && !errors.Is(f.Err, errAPIClosed) {
		return f.Err
	}
	return nil
}

// logFailure is a group's onFail: the API server logs its own failure.
func logFailure(log *slog.Logger) func(*Failure) {
	return func(f *Failure) {
		if f.Component != "api" {
			log.Error("component stopped", "component", f.Component, "error", f.Err)
		}
	}
}
