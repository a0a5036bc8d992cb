package manager_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/run"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// fakeClock is the rescheduler's clock in tests: it moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// switchLeadership is leadership a test turns on and off.
type switchLeadership struct {
	mu sync.Mutex
	on bool
}

func (l *switchLeadership) Leading() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.on }
func (l *switchLeadership) Set(on bool)   { l.mu.Lock(); l.on = on; l.mu.Unlock() }

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// simCluster is a manager over two simulated engines, a and b.
type simCluster struct {
	a, b *enginesim.Engine
	pool *engine.Pool
	mgr  *manager.Manager
}

func startSimCluster(t *testing.T, cfg manager.Config) *simCluster {
	t.Helper()
	var sims [2]*enginesim.Engine
	for i, name := range []string{"node-a", "node-b"} {
		s, err := enginesim.Start(enginesim.Options{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		sims[i] = s
	}
	pool := engine.NewPool(engine.Options{
		RefreshInterval: 50 * time.Millisecond, Timeout: time.Second, FailureRetry: 1,
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pool.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	pool.Update([]string{sims[0].Addr(), sims[1].Addr()})
	waitUntil(t, "both engines are healthy", func() bool { return len(pool.Healthy()) == 2 })
	cfg.Pool = pool
	cfg.Placer = scheduler.New(scheduler.Spread{}, scheduler.Options{})
	return &simCluster{a: sims[0], b: sims[1], pool: pool, mgr: manager.New(cfg)}
}

// engineOf is the pool's engine for sim s.
func (c *simCluster) engineOf(s *enginesim.Engine) *engine.Engine {
	for _, e := range c.pool.Engines() {
		if e.Addr == s.Addr() {
			return e
		}
	}
	return nil
}

// hasContainer says whether the pool sees a container called name on s.
func (c *simCluster) hasContainer(s *enginesim.Engine, name string) bool {
	for _, ct := range c.engineOf(s).Containers() {
		if ct.Name() == name {
			return true
		}
	}
	return false
}

// runReschedulerWhileLeading starts the rescheduler as the run group does
// (leader-only), driven by clock and tick.
func runReschedulerWhileLeading(t *testing.T, mgr *manager.Manager, lead run.Leadership, clock *fakeClock, tick chan time.Time) {
	r := mgr.Rescheduler()
	r.Now, r.Tick = clock.Now, tick
	g := run.NewGroup(context.Background(), nil)
	g.Go("rescheduler", &run.LeaderOnly{Name: "rescheduler", Leadership: lead, Component: r, Poll: 5 * time.Millisecond})
	t.Cleanup(func() {
		g.Stop()
		if err := g.Wait(); err != nil {
			t.Error(err)
		}
	})
}

// pass makes the rescheduler do one full pass at fake time now: the second
// tick is taken only once the first pass has finished.
func pass(t *testing.T, clock *fakeClock, tick chan time.Time, now time.Time) {
	t.Helper()
	clock.Set(now)
	for range 2 {
		select {
		case tick <- now:
		case <-time.After(10 * time.Second):
			t.Fatal("the rescheduler does not take ticks")
		}
	}
}

// TestRescheduleAfterFakeTime: a container with reschedule:on-node-failure
// on an engine that went unhealthy is recreated on the other node once the
// engine has been down RescheduleAfter (by default 10 s: the config leaves
// it zero, as shoal init and join do), not before; a manager that does not
// lead never reschedules.
func TestRescheduleAfterFakeTime(t *testing.T) {
	c := startSimCluster(t, manager.Config{})
	ctx := context.Background()
	env := []string{"reschedule:on-node-failure", "constraint:node==~node-a"}
	body, err := json.Marshal(map[string]any{"Image": "busybox", "Cmd": []string{"sleep", "1000"}, "Env": env})
	if err != nil {
		t.Fatal(err)
	}
	created, err := c.mgr.CreateContainer(ctx, backend.ContainerCreateRequest{
		Name: "web", Body: body, Config: backend.ContainerConfig{Image: "busybox", Env: env},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.a.StartContainer(created.ID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "web runs on node-a", func() bool {
		ct := c.engineOf(c.a).Container(created.ID)
		return ct != nil && ct.State == "running" && len(ct.Spec) > 0
	})

	c.a.Close()
	ea := c.engineOf(c.a)
	waitUntil(t, "node-a is unhealthy", func() bool { st, _ := ea.State(); return st == engine.Unhealthy })
	down := ea.StateSince()

	clock, tick := &fakeClock{}, make(chan time.Time)
	lead := &switchLeadership{on: true}
	runReschedulerWhileLeading(t, c.mgr, lead, clock, tick)
	for _, after := range []time.Duration{0, time.Second, manager.DefaultRescheduleAfter - time.Millisecond} {
		pass(t, clock, tick, down.Add(after))
		if c.hasContainer(c.b, "web") || !c.hasContainer(c.a, "web") {
			t.Fatalf("web was rescheduled %v after its node went down, before RescheduleAfter (%v)", after, manager.DefaultRescheduleAfter)
		}
	}

	lead.Set(false)
	waitUntil(t, "the rescheduler stops taking ticks once not leading", func() bool {
		select {
		case tick <- clock.Now():
			return false
		case <-time.After(50 * time.Millisecond):
			return true
		}
	})
	clock.Set(down.Add(time.Hour))
	select {
	case tick <- clock.Now():
		t.Fatal("a manager that does not lead runs the rescheduler")
	case <-time.After(100 * time.Millisecond):
	}
	if c.hasContainer(c.b, "web") {
		t.Fatal("a manager that does not lead rescheduled web")
	}

	lead.Set(true)
	pass(t, clock, tick, down.Add(manager.DefaultRescheduleAfter))
	if !c.hasContainer(c.b, "web") {
		t.Fatal("web was not recreated on node-b after RescheduleAfter")
	}
	if all, running := c.b.Count(); all != 1 || running != 1 {
		t.Errorf("node-b has %d containers, %d running; want web, running", all, running)
	}
}
