package manager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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
// While held, reading it blocks (a test holds the rescheduler mid-check).
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	hold chan struct{} // closed on release
	held chan struct{} // a reader waits
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	h, held := c.hold, c.held
	c.mu.Unlock()
	if h != nil {
		select {
		case held <- struct{}{}:
		default:
		}
		<-h
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// Hold makes readers of the clock wait until the returned release is called.
func (c *fakeClock) Hold() (release func()) {
	h := make(chan struct{})
	c.mu.Lock()
	c.hold, c.held = h, make(chan struct{}, 1)
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.hold = nil
			c.mu.Unlock()
			close(h)
		})
	}
}

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

// simCluster is a manager over two simulated engines, a and b; the pool
// reaches a through aLink, which can cut it off as a failed host would.
type simCluster struct {
	a, b  *enginesim.Engine
	aLink *link
	pool  *engine.Pool
	mgr   *manager.Manager
}

func startSimCluster(t *testing.T, cfg manager.Config) *simCluster {
	t.Helper()
	return startSimClusterWith(t, cfg, engine.Options{})
}

// startSimClusterWith is startSimCluster with pool options.
func startSimClusterWith(t *testing.T, cfg manager.Config, opts engine.Options) *simCluster {
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
	opts.RefreshInterval, opts.Timeout, opts.FailureRetry = 50*time.Millisecond, time.Second, 1
	pool := engine.NewPool(opts, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pool.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	aLink := startLink(t, sims[0].Addr())
	pool.Update([]string{aLink.Addr(), sims[1].Addr()})
	waitUntil(t, "both engines are healthy", func() bool { return len(pool.Healthy()) == 2 })
	cfg.Pool = pool
	cfg.Placer = scheduler.New(scheduler.Spread{}, scheduler.Options{})
	return &simCluster{a: sims[0], b: sims[1], aLink: aLink, pool: pool, mgr: manager.New(cfg)}
}

// engineOf is the pool's engine for sim s.
func (c *simCluster) engineOf(s *enginesim.Engine) *engine.Engine {
	addr := s.Addr()
	if s == c.a {
		addr = c.aLink.Addr()
	}
	for _, e := range c.pool.Engines() {
		if e.Addr == addr {
			return e
		}
	}
	return nil
}

// link is a TCP relay to an engine that can be cut (every connection
// closed, new ones refused) and restored, as a host that fails and comes
// back with its containers.
type link struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func startLink(t *testing.T, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); l.Cut() })
	go l.serve()
	return l
}

func (l *link) Addr() string { return l.ln.Addr().String() }

func (l *link) serve() {
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", l.target)
		if err != nil || !l.track(in, out) {
			in.Close()
			if out != nil {
				out.Close()
			}
			continue
		}
		go func() { _, _ = io.Copy(out, in); out.Close() }()
		go func() { _, _ = io.Copy(in, out); in.Close() }()
	}
}

// track records a relayed connection pair, unless the link is cut.
func (l *link) track(conns ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return false
	}
	for _, c := range conns {
		l.conns[c] = true
	}
	return true
}

// Cut closes every relayed connection and refuses new ones.
func (l *link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for c := range l.conns {
		c.Close()
	}
	clear(l.conns)
}

// Restore relays new connections again.
func (l *link) Restore() {
	l.mu.Lock()
	l.down = false
	l.mu.Unlock()
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
// (leader-only), driven by clock and tick (nil: the real clock and timer).
func runReschedulerWhileLeading(t *testing.T, mgr *manager.Manager, lead run.Leadership, clock *fakeClock, tick chan time.Time) {
	r := mgr.Rescheduler()
	if clock != nil {
		r.Now, r.Tick = clock.Now, tick
	}
	g := run.NewGroup(context.Background(), nil)
	g.Go("rescheduler", &run.LeaderOnly{Name: "rescheduler", Leadership: lead, Component: r, Poll: 5 * time.Millisecond})
	t.Cleanup(func() {
		g.Stop()
		if err := g.Wait(); err != nil {
			t.Error(err)
		}
	})
}

// pass makes the rescheduler act on the checks due at fake time now: the
// second tick is taken only once it has acted on the first.
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

// runWeb creates web on node-a, asking to be rescheduled and preferring
// node-a, starts it and waits until the pool keeps its spec.
func runWeb(t *testing.T, c *simCluster) string {
	t.Helper()
	env := []string{"reschedule:on-node-failure", "constraint:node==~node-a"}
	body, err := json.Marshal(map[string]any{"Image": "busybox", "Cmd": []string{"sleep", "1000"}, "Env": env})
	if err != nil {
		t.Fatal(err)
	}
	created, err := c.mgr.CreateContainer(context.Background(), backend.ContainerCreateRequest{
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
	return created.ID
}

// cutA cuts node-a off and returns when the pool saw it go down.
func cutA(t *testing.T, c *simCluster) time.Time {
	t.Helper()
	c.aLink.Cut()
	ea := c.engineOf(c.a)
	waitUntil(t, "node-a is unhealthy", func() bool { st, _ := ea.State(); return st == engine.Unhealthy })
	return ea.StateSince()
}

// TestRescheduleOnUnhealthyEvent: the rescheduler, already running while
// both nodes are healthy, learns from the pool's bus that node-a went down
// and arranges a check at StateSince+RescheduleAfter: nothing moves before
// it, web moves once the fake clock reaches it.
func TestRescheduleOnUnhealthyEvent(t *testing.T) {
	c := startSimCluster(t, manager.Config{})
	runWeb(t, c)
	clock, tick := &fakeClock{now: time.Now()}, make(chan time.Time)
	runReschedulerWhileLeading(t, c.mgr, &switchLeadership{on: true}, clock, tick)
	pass(t, clock, tick, clock.Now()) // the start pass is done: both nodes were healthy
	down := cutA(t, c)
	for _, after := range []time.Duration{0, manager.DefaultRescheduleAfter - time.Millisecond} {
		pass(t, clock, tick, down.Add(after))
		if c.hasContainer(c.b, "web") {
			t.Fatalf("web was rescheduled %v after its node went down, before RescheduleAfter", after)
		}
	}
	waitUntil(t, "web is recreated on node-b at RescheduleAfter", func() bool {
		pass(t, clock, tick, down.Add(manager.DefaultRescheduleAfter))
		return c.hasContainer(c.b, "web")
	})
}

// TestStaleCopyRemovedOnReturn: a new leader's first pass reschedules web
// off node-a, which has been down long enough; when node-a comes back with
// its old copy, the bus's Healthy event has that copy removed at once. No
// tick is ever sent, so nothing but the event can have removed it.
func TestStaleCopyRemovedOnReturn(t *testing.T) {
	c := startSimCluster(t, manager.Config{})
	id := runWeb(t, c)
	down := cutA(t, c)
	clock, tick := &fakeClock{now: down.Add(manager.DefaultRescheduleAfter)}, make(chan time.Time)
	runReschedulerWhileLeading(t, c.mgr, &switchLeadership{on: true}, clock, tick)
	waitUntil(t, "web is recreated on node-b by the start pass", func() bool { return c.hasContainer(c.b, "web") })
	if all, _ := c.a.Count(); all != 1 {
		t.Fatalf("node-a holds %d containers while cut off; want its copy of web", all)
	}

	c.aLink.Restore()
	ea := c.engineOf(c.a)
	waitUntil(t, "node-a is healthy again", func() bool { return ea.Healthy() })
	back := time.Now()
	waitUntil(t, "the stale copy on node-a is removed, from the engine and the view", func() bool {
		all, _ := c.a.Count()
		return all == 0 && ea.Container(id) == nil
	})
	if d := time.Since(back); d > 2*time.Second {
		t.Errorf("the stale copy was removed %v after node-a returned", d)
	}
	if all, running := c.b.Count(); all != 1 || running != 1 {
		t.Errorf("node-b has %d containers, %d running; want web, running", all, running)
	}
}

// TestRescheduleOnRealClock: without a test clock, the rescheduler's own
// timer runs the check RescheduleAfter after the node went down.
func TestRescheduleOnRealClock(t *testing.T) {
	c := startSimCluster(t, manager.Config{RescheduleAfter: 300 * time.Millisecond})
	runWeb(t, c)
	runReschedulerWhileLeading(t, c.mgr, &switchLeadership{on: true}, nil, nil)
	cutA(t, c)
	waitUntil(t, "web is recreated on node-b", func() bool { return c.hasContainer(c.b, "web") })
}

// TestRescheduleAfterFallingBehind: a rescheduler held up while the pool
// overflows its one-event buffer is cut off (ErrSubscriberTooSlow), so it
// never sees node-a go down; it subscribes again and makes a full pass,
// which finds node-a down and reschedules web at RescheduleAfter.
func TestRescheduleAfterFallingBehind(t *testing.T) {
	c := startSimClusterWith(t, manager.Config{}, engine.Options{SubscriberBuffer: 1})
	runWeb(t, c)
	clock, tick := &fakeClock{now: time.Now()}, make(chan time.Time)
	runReschedulerWhileLeading(t, c.mgr, &switchLeadership{on: true}, clock, tick)
	pass(t, clock, tick, clock.Now())

	release := c.holdRescheduler(t, clock, tick)
	eb := c.engineOf(c.b)
	for i := range 3 {
		id, err := c.b.Create(enginesim.CreateSpec{Name: fmt.Sprint("filler", i), Image: "busybox"})
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the pool saw the filler", func() bool { return eb.Container(id) != nil })
	}
	down := cutA(t, c)
	clock.Set(down)
	release()

	waitUntil(t, "web is recreated on node-b at RescheduleAfter", func() bool {
		pass(t, clock, tick, down.Add(manager.DefaultRescheduleAfter))
		return c.hasContainer(c.b, "web")
	})
}

// holdRescheduler stops the rescheduler inside its next check, until release.
func (c *simCluster) holdRescheduler(t *testing.T, clock *fakeClock, tick chan time.Time) (release func()) {
	t.Helper()
	release = clock.Hold()
	t.Cleanup(release)
	clock.mu.Lock()
	held := clock.held
	clock.mu.Unlock()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-held:
			return release
		case tick <- time.Time{}:
		case <-deadline:
			t.Fatal("the rescheduler does not read its clock")
		}
	}
}
