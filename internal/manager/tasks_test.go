package manager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/orchestrator"
	"github.com/shoal-dev/shoal/internal/scheduler"
	"github.com/shoal-dev/shoal/internal/store"
)

// taskEnv is a manager under `shoal manage` over simulated engines, with
// its task runtime.
type taskEnv struct {
	m    *manager.Manager
	rt   orchestrator.Runtime
	pool *engine.Pool
	sims []*enginesim.Engine
}

func newTaskEnv(t testing.TB, n int) *taskEnv { return newTaskEnvWrapped(t, n, nil) }

// newTaskEnvWrapped reaches each engine through wrap (nil: directly).
func newTaskEnvWrapped(t testing.TB, n int, wrap func(*enginesim.Engine) http.Handler) *taskEnv {
	return newTaskEnvWith(t, n, wrap, nil)
}

// newTaskEnvWith lets mod (nil: none) change the options of engine i.
func newTaskEnvWith(t testing.TB, n int, wrap func(*enginesim.Engine) http.Handler, mod func(i int, o *enginesim.Options)) *taskEnv {
	t.Helper()
	env := &taskEnv{}
	var addrs []string
	for i := range n {
		opts := enginesim.Options{Name: fmt.Sprintf("node%d", i+1), Labels: []string{fmt.Sprintf("rack=r%d", i+1)}}
		if mod != nil {
			mod(i, &opts)
		}
		s, err := enginesim.Start(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		addr := s.Addr()
		if wrap != nil {
			srv := httptest.NewServer(wrap(s))
			t.Cleanup(srv.Close)
			addr = srv.Listener.Addr().String()
		}
		env.sims, addrs = append(env.sims, s), append(addrs, addr)
	}
	env.pool = engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond, FailureRetry: 1, Timeout: 2 * time.Second}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = env.pool.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	env.pool.Update(addrs)
	waitFor(t, "every engine is healthy", func() bool { return len(env.pool.Healthy()) == n })
	env.m = manager.New(manager.Config{Pool: env.pool, Placer: scheduler.New(nil, scheduler.Options{})})
	env.rt = env.m.TaskRuntime()
	return env
}

// node is the node ID of the i-th simulated engine.
func (env *taskEnv) node(i int) string {
	for _, e := range env.pool.Engines() {
		if e.Name() == env.sims[i].Name() {
			return e.ID
		}
	}
	panic("no engine " + env.sims[i].Name())
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func webService(image string) store.Service {
	var s store.Service
	s.ID = "svcid0000000000000000000a"
	s.Spec.Name = "web"
	s.Spec.TaskTemplate.ContainerSpec = &swarm.ContainerSpec{Image: image, Labels: map[string]string{"tier": "front"}, Args: []string{"sleep", "1d"}}
	s.SpecVersion = 1
	return s
}

func webTask(svc store.Service, id, node string, slot int) store.Task {
	var t store.Task
	t.ID, t.ServiceID, t.NodeID, t.Slot = id, svc.ID, node, slot
	t.Spec = svc.Spec.TaskTemplate
	t.DesiredState = swarm.TaskStateRunning
	return t
}

// observedTask is the task's container as Containers reports it.
func (env *taskEnv) observedTask(t *testing.T, taskID string) (orchestrator.Observed, bool) {
	t.Helper()
	obs, _, err := env.rt.Containers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range obs {
		if o.TaskID == taskID {
			return o, true
		}
	}
	return orchestrator.Observed{}, false
}

func TestTaskStartNamesAndLabelsTheContainer(t *testing.T) {
	env := newTaskEnv(t, 2)
	ctx := context.Background()
	svc := webService("busybox")
	task := webTask(svc, "task00000000000000000000a", env.node(1), 3)
	id, err := env.rt.Start(ctx, svc, task)
	if err != nil {
		t.Fatal(err)
	}
	e := env.pool.Engines()[0]
	if e.ID != env.node(1) {
		e = env.pool.Engines()[1]
	}
	waitFor(t, "the container is cached running", func() bool { c := e.Container(id); return c != nil && c.State == "running" })
	c := e.Container(id)
	if c.Name() != "web.3.task00000000000000000000a" || c.State != "running" {
		t.Errorf("container %q in state %s; want web.3.task00000000000000000000a, running", c.Name(), c.State)
	}
	want := map[string]string{
		"com.docker.swarm.service.id": svc.ID, "com.docker.swarm.service.name": "web",
		"com.docker.swarm.task.id": task.ID, "com.docker.swarm.task.name": "web.3.task00000000000000000000a",
		"com.docker.swarm.node.id": env.node(1), "tier": "front",
	}
	for k, v := range want {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	o, ok := env.observedTask(t, task.ID)
	if !ok || o.NodeID != env.node(1) || o.ContainerID != id || o.State != "running" || o.PID == 0 || o.StartedAt.IsZero() {
		t.Errorf("observed %+v (found %v); want running on %s with a PID and a start time", o, ok, env.node(1))
	}

	// A global task (no slot) is named after its node.
	g := webTask(svc, "task00000000000000000000b", env.node(0), 0)
	id, err = env.rt.Start(ctx, svc, g)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the global task is observed", func() bool { o, _ := env.observedTask(t, g.ID); return o.ContainerID == id })
	if c := findContainer(env.pool, id); c == nil || c.Name() != "web."+env.node(0)+".task00000000000000000000b" {
		t.Errorf("global task container %v", c)
	}
}

func findContainer(p *engine.Pool, id string) *engine.Container {
	for _, e := range p.Engines() {
		if c := e.Container(id); c != nil {
			return c
		}
	}
	return nil
}

func TestTaskStartIsIdempotent(t *testing.T) {
	env := newTaskEnv(t, 1)
	ctx := context.Background()
	svc := webService("busybox")
	task := webTask(svc, "task00000000000000000000a", env.node(0), 1)
	id, err := env.rt.Start(ctx, svc, task)
	if err != nil {
		t.Fatal(err)
	}
	again, err := env.rt.Start(ctx, svc, task)
	if err != nil || again != id {
		t.Fatalf("second Start = %q, %v; want the same container %s", again, err, id)
	}
	// A stopped one is started again, not made again.
	if err := env.rt.Stop(ctx, task, time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stop is seen", func() bool { o, _ := env.observedTask(t, task.ID); return o.State == "exited" })
	if again, err = env.rt.Start(ctx, svc, task); err != nil || again != id {
		t.Fatalf("Start after stop = %q, %v; want %s", again, err, id)
	}
	if all, running := env.sims[0].Count(); all != 1 || running != 1 {
		t.Fatalf("engine holds %d containers, %d running; want 1, 1", all, running)
	}
	// One the cache has not seen yet (made by an attempt whose answer was
	// lost) is found on the node, by its label.
	e := env.pool.Engines()[0]
	e.ForgetContainer(id)
	if again, err = env.rt.Start(ctx, svc, task); err != nil || again != id {
		t.Fatalf("Start with a stale cache = %q, %v; want %s", again, err, id)
	}
}

func TestTaskNameIsReserved(t *testing.T) {
	env := newTaskEnv(t, 1)
	ctx := context.Background()
	svc := webService("busybox")
	task := webTask(svc, "task00000000000000000000a", env.node(0), 1)
	if _, err := env.rt.Start(ctx, svc, task); err != nil {
		t.Fatal(err)
	}
	_, err := env.m.CreateContainer(ctx, backend.ContainerCreateRequest{
		Name: "web.1.task00000000000000000000a", Body: []byte(`{"Image":"busybox"}`),
		Config: backend.ContainerConfig{Image: "busybox"},
	})
	if !errdefs.IsConflict(err) {
		t.Fatalf("docker run with the task's name: %v; want a conflict", err)
	}
	// And a name a user took first is refused to the task.
	if _, err := env.m.CreateContainer(ctx, backend.ContainerCreateRequest{
		Name: "web.2.task00000000000000000000b", Body: []byte(`{"Image":"busybox"}`),
		Config: backend.ContainerConfig{Image: "busybox"},
	}); err != nil {
		t.Fatal(err)
	}
	_, err = env.rt.Start(ctx, svc, webTask(svc, "task00000000000000000000b", env.node(0), 2))
	if !errdefs.IsConflict(err) {
		t.Fatalf("task Start on a taken name: %v; want a conflict", err)
	}
}

func TestTaskReservationsCount(t *testing.T) {
	env := newTaskEnv(t, 1)
	ctx := context.Background()
	svc := webService("busybox")
	svc.Spec.TaskTemplate.Resources = &swarm.ResourceRequirements{
		Reservations: &swarm.Resources{NanoCPUs: 2e9, MemoryBytes: 1 << 30},
	}
	task := webTask(svc, "task00000000000000000000a", env.node(0), 1)
	if _, err := env.rt.Start(ctx, svc, task); err != nil {
		t.Fatal(err)
	}
	nodes, err := env.rt.Nodes(ctx)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("Nodes = %v, %v", nodes, err)
	}
	if n := nodes[0]; n.ReservedNanoCPUs != 2e9 || n.ReservedMemoryBytes != 1<<30 {
		t.Fatalf("reserved %d CPU, %d bytes; want 2e9, 1 GiB", n.ReservedNanoCPUs, n.ReservedMemoryBytes)
	}
	// docker run sees them: 4 CPUs, 2 reserved, so 3 more do not fit.
	_, err = env.m.CreateContainer(ctx, backend.ContainerCreateRequest{
		Body:   []byte(`{"Image":"busybox","HostConfig":{"NanoCpus":3000000000}}`),
		Config: backend.ContainerConfig{Image: "busybox", HostConfig: &backend.HostConfig{NanoCpus: 3e9}},
	})
	if err == nil || !strings.Contains(err.Error(), "lack") {
		t.Fatalf("docker run reserving 3 of the 2 free CPUs: %v; want no fit", err)
	}
}

func TestTaskStartPullsAMissingImage(t *testing.T) {
	env := newTaskEnv(t, 1)
	ctx := context.Background()
	svc := webService("redis")
	if _, err := env.rt.Start(ctx, svc, webTask(svc, "task00000000000000000000a", env.node(0), 1)); err != nil {
		t.Fatal(err)
	}
	if !hasImage(env.pool.Engines()[0], "redis:latest") {
		t.Fatalf("redis:latest is not on the node after Start")
	}
	bad := webService("missing/nope")
	_, err := env.rt.Start(ctx, bad, webTask(bad, "task00000000000000000000b", env.node(0), 1))
	if !errdefs.IsNotFound(err) || err.Error() != "No such image: missing/nope:latest" {
		t.Fatalf("Start with an image that cannot be pulled: %v; want No such image: missing/nope:latest", err)
	}
	if _, found := env.observedTask(t, "task00000000000000000000b"); found {
		t.Fatal("a container was made for a task whose image could not be pulled")
	}
}

func hasImage(e *engine.Engine, tag string) bool {
	for _, img := range e.Images() {
		for _, t := range img.RepoTags {
			if t == tag {
				return true
			}
		}
	}
	return false
}

func TestTaskStopAndRemove(t *testing.T) {
	env := newTaskEnv(t, 1)
	ctx := context.Background()
	svc := webService("busybox")
	task := webTask(svc, "task00000000000000000000a", env.node(0), 1)
	if _, err := env.rt.Start(ctx, svc, task); err != nil {
		t.Fatal(err)
	}
	if err := env.rt.Stop(ctx, task, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the task's container is seen exited", func() bool { o, _ := env.observedTask(t, task.ID); return o.State == "exited" })
	if err := env.rt.Remove(ctx, task); err != nil {
		t.Fatal(err)
	}
	if all, _ := env.sims[0].Count(); all != 0 {
		t.Fatalf("engine still holds %d containers", all)
	}
	if _, found := env.observedTask(t, task.ID); found {
		t.Fatal("removed task container still observed")
	}
	// Gone already: both are no error.
	if err := env.rt.Remove(ctx, task); err != nil {
		t.Fatalf("Remove of a missing container: %v", err)
	}
	if err := env.rt.Stop(ctx, task, time.Second); err != nil {
		t.Fatalf("Stop of a missing container: %v", err)
	}
}

// waitChanged drains Changed, then runs act and waits for a signal.
func waitChanged(t *testing.T, ch <-chan struct{}, what string, act func()) {
	t.Helper()
	time.Sleep(50 * time.Millisecond)
	for len(ch) > 0 {
		<-ch
	}
	act()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no Changed signal after %s", what)
	}
}

func TestTaskChangedOnContainerDeathAndEngineDown(t *testing.T) {
	env := newTaskEnv(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := env.rt.Changed(ctx)
	svc := webService("busybox")
	task := webTask(svc, "task00000000000000000000a", env.node(0), 1)
	waitChanged(t, ch, "a task start", func() {
		if _, err := env.rt.Start(ctx, svc, task); err != nil {
			t.Fatal(err)
		}
	})
	waitChanged(t, ch, "a task container's death", func() {
		if err := env.sims[0].StopContainer("web.1."+task.ID, true); err != nil {
			t.Fatal(err)
		}
	})
	// The signal may come with the kill event, before the die event's.
	waitFor(t, "the task's container is seen exited with 137", func() bool {
		o, _ := env.observedTask(t, task.ID)
		return o.State == "exited" && o.ExitCode == 137
	})
	start := time.Now()
	waitChanged(t, ch, "an engine going down", func() { env.sims[1].Close() })
	waitFor(t, "node2 reported stale", func() bool {
		_, stale, _ := env.rt.Containers(ctx)
		return len(stale) == 1 && stale[0] == env.node(1)
	})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the engine loss took %v to reach the orchestrator", d)
	}
	nodes, _ := env.rt.Nodes(ctx)
	for _, n := range nodes {
		if n.Ready != (n.ID == env.node(0)) {
			t.Errorf("node %s (%s) Ready = %v", n.ID, n.Hostname, n.Ready)
		}
	}
}

func TestTaskChangedIgnoresOtherContainers(t *testing.T) {
	env := newTaskEnv(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := env.rt.Changed(ctx)
	time.Sleep(100 * time.Millisecond)
	for len(ch) > 0 {
		<-ch
	}
	if _, err := env.sims[0].Create(enginesim.CreateSpec{Name: "plain", Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("Changed fired for a container that is not a task's")
	case <-time.After(300 * time.Millisecond):
	}
}

func TestTaskNodesUnderManage(t *testing.T) {
	env := newTaskEnv(t, 2)
	env.pool.SetAvailability(env.sims[1].Addr(), "drain")
	nodes, err := env.rt.Nodes(context.Background())
	if err != nil || len(nodes) != 2 {
		t.Fatalf("Nodes = %v, %v", nodes, err)
	}
	byID := map[string]orchestrator.Node{nodes[0].ID: nodes[0], nodes[1].ID: nodes[1]}
	for i := range env.sims {
		n, ok := byID[env.node(i)]
		if !ok {
			t.Fatalf("no node %s (the engine's node ID) in %v", env.node(i), nodes)
		}
		wantAvail := swarm.NodeAvailabilityActive
		if i == 1 {
			wantAvail = swarm.NodeAvailabilityDrain
		}
		if !n.Ready || n.Availability != wantAvail || n.Role != swarm.NodeRoleWorker || n.Hostname != env.sims[i].Name() ||
			n.OS != "linux" || n.Arch != "x86_64" || n.NanoCPUs != 4e9 || n.MemoryBytes != 8<<30 ||
			n.EngineLabels["rack"] != fmt.Sprintf("r%d", i+1) {
			t.Errorf("node %d: %+v", i, n)
		}
	}
}

// The runtime's errors keep their class for the orchestrator.
func TestTaskStartOnUnknownNode(t *testing.T) {
	env := newTaskEnv(t, 1)
	svc := webService("busybox")
	_, err := env.rt.Start(context.Background(), svc, webTask(svc, "task00000000000000000000a", "nosuchnode", 1))
	if !errdefs.IsNotFound(err) {
		t.Fatalf("Start on an unknown node: %v", err)
	}
}

// fakeCluster is the built-in cluster's node records, for the runtime.
type fakeCluster struct {
	manager.Cluster // the methods the runtime does not call
	nodes           []swarm.Node
}

func (c *fakeCluster) Nodes(context.Context) ([]swarm.Node, error) { return c.nodes, nil }
func (c *fakeCluster) NodeLabels(string) map[string]string         { return nil }

// In the built-in cluster, nodes are the cluster's records and a node's
// engine is the pool's "tunnel://<node ID>".
func TestTaskRuntimeInTheBuiltInCluster(t *testing.T) {
	a := sim(t, enginesim.Options{Name: "alpha"})
	b := sim(t, enginesim.Options{Name: "beta"})
	byNode := map[string]string{"nodeaaaaaaaaaaaaaaaaaaaaa": a.Addr(), "nodebbbbbbbbbbbbbbbbbbbbb": b.Addr()}
	pool := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond, FailureRetry: 1, Timeout: 2 * time.Second}, nil)
	pool.RegisterScheme("tunnel", func(ctx context.Context, node string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", byNode[node])
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pool.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	pool.Update([]string{"tunnel://nodeaaaaaaaaaaaaaaaaaaaaa", "tunnel://nodebbbbbbbbbbbbbbbbbbbbb"})
	waitFor(t, "both engines healthy", func() bool { return len(pool.Healthy()) == 2 })

	rec := func(id, host string, avail swarm.NodeAvailability, labels map[string]string) swarm.Node {
		var n swarm.Node
		n.ID, n.Description.Hostname = id, host
		n.Spec.Role, n.Spec.Availability, n.Spec.Labels = swarm.NodeRoleManager, avail, labels
		return n
	}
	cl := &fakeCluster{nodes: []swarm.Node{
		rec("nodeaaaaaaaaaaaaaaaaaaaaa", "alpha", swarm.NodeAvailabilityActive, map[string]string{"zone": "eu"}),
		rec("nodebbbbbbbbbbbbbbbbbbbbb", "beta", swarm.NodeAvailabilityPause, nil),
		rec("nodeccccccccccccccccccccc", "gamma", swarm.NodeAvailabilityActive, nil), // no engine: down
	}}
	m := manager.New(manager.Config{Pool: pool, Placer: scheduler.New(nil, scheduler.Options{}), Cluster: cl})
	rt := m.TaskRuntime()
	nodes, err := rt.Nodes(ctx)
	if err != nil || len(nodes) != 3 {
		t.Fatalf("Nodes = %v, %v", nodes, err)
	}
	for i, n := range nodes {
		want := cl.nodes[i]
		if n.ID != want.ID || n.Hostname != want.Description.Hostname || n.Availability != want.Spec.Availability ||
			n.Role != swarm.NodeRoleManager || n.Ready != (i < 2) || (i < 2 && n.NanoCPUs != 4e9) {
			t.Errorf("node %d: %+v", i, n)
		}
	}
	if nodes[0].Labels["zone"] != "eu" {
		t.Errorf("node labels %v", nodes[0].Labels)
	}

	svc := webService("busybox")
	task := webTask(svc, "task00000000000000000000a", "nodebbbbbbbbbbbbbbbbbbbbb", 1)
	id, err := rt.Start(ctx, svc, task)
	if err != nil {
		t.Fatal(err)
	}
	if all, _ := b.Count(); all != 1 {
		t.Fatalf("beta holds %d containers, want the task's", all)
	}
	var obs []orchestrator.Observed
	var stale []string
	waitFor(t, "the task's container is observed", func() bool { obs, stale, _ = rt.Containers(ctx); return len(obs) > 0 })
	if len(obs) != 1 || obs[0].NodeID != "nodebbbbbbbbbbbbbbbbbbbbb" || obs[0].ContainerID != id || len(stale) != 0 {
		t.Fatalf("Containers = %+v, stale %v", obs, stale)
	}
	if _, err := rt.Start(ctx, svc, webTask(svc, "task00000000000000000000b", "nodeccccccccccccccccccccc", 2)); !errdefs.IsNotFound(err) {
		t.Fatalf("Start on a node without an engine: %v", err)
	}
}

// Changed fires when a node's availability changes, which has no event.
func TestTaskChangedOnNodeAvailability(t *testing.T) {
	env := newTaskEnv(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := env.rt.Changed(ctx)
	waitChanged(t, ch, "a node drained", func() { env.pool.SetAvailability(env.sims[0].Addr(), "drain") })
}

// A start the engine refuses is told as swarm mode tells it, with the
// engine's words and class.
func TestTaskStartRefusedByTheEngine(t *testing.T) {
	env := newTaskEnvWrapped(t, 1, func(s *enginesim.Engine) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/start") {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"message":"OCI runtime create failed: exec: \"nope\": executable file not found in $PATH"}`))
				return
			}
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/json") && strings.Contains(r.URL.Path, "/containers/") &&
				!strings.HasSuffix(r.URL.Path, "/containers/json") {
				// dockerd keeps the failure in State.Error.
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, r)
				var ins map[string]any
				_ = json.Unmarshal(rec.Body.Bytes(), &ins)
				if st, ok := ins["State"].(map[string]any); ok {
					st["Error"] = "exec: nope: not found"
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(rec.Code)
				_ = json.NewEncoder(w).Encode(ins)
				return
			}
			s.ServeHTTP(w, r)
		})
	})
	svc := webService("busybox")
	_, err := env.rt.Start(context.Background(), svc, webTask(svc, "task00000000000000000000a", env.node(0), 1))
	want := `starting container failed: OCI runtime create failed: exec: "nope": executable file not found in $PATH`
	if err == nil || err.Error() != want || !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Start = %v; want %q of the invalid-argument class", err, want)
	}
	waitFor(t, "the created container is observed with the engine's error", func() bool {
		o, ok := env.observedTask(t, "task00000000000000000000a")
		return ok && o.State == "created" && o.Error == "exec: nope: not found"
	})
}

// While a task's create is in flight, its reservation counts for docker
// run's placement and for Nodes, as a docker run's own does.
func TestTaskReservationCountsWhileCreating(t *testing.T) {
	held, release := make(chan struct{}), make(chan struct{})
	env := newTaskEnvWrapped(t, 1, func(s *enginesim.Engine) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/containers/create") && strings.HasPrefix(r.URL.Query().Get("name"), "web.") {
				close(held)
				<-release
			}
			s.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	svc := webService("busybox")
	svc.Spec.TaskTemplate.Resources = &swarm.ResourceRequirements{Reservations: &swarm.Resources{NanoCPUs: 3e9}}
	started := make(chan error, 1)
	go func() {
		_, err := env.rt.Start(ctx, svc, webTask(svc, "task00000000000000000000a", env.node(0), 1))
		started <- err
	}()
	<-held
	nodes, _ := env.rt.Nodes(ctx)
	if len(nodes) != 1 || nodes[0].ReservedNanoCPUs != 3e9 {
		t.Errorf("Nodes while the task is being created: %+v; want 3 CPUs reserved", nodes)
	}
	_, err := env.m.CreateContainer(ctx, backend.ContainerCreateRequest{
		Body:   []byte(`{"Image":"busybox","HostConfig":{"NanoCpus":2000000000}}`),
		Config: backend.ContainerConfig{Image: "busybox", HostConfig: &backend.HostConfig{NanoCpus: 2e9}},
	})
	close(release)
	if err == nil || !strings.Contains(err.Error(), "lack") {
		t.Errorf("docker run reserving 2 CPUs beside a task creating with 3 of 4: %v; want no fit", err)
	}
	if err := <-started; err != nil {
		t.Fatal(err)
	}
}

// Right after start-up, an engine still being contacted is waited for, not
// reported down (its tasks would be replaced for nothing).
func TestTaskNodesWaitForEnginesBeingContacted(t *testing.T) {
	s := sim(t, enginesim.Options{Name: "late"})
	addr := slowAtFirst(t, s, 300*time.Millisecond)
	pool := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond, Timeout: 2 * time.Second}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pool.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	pool.Update([]string{addr})
	waitFor(t, "the engine is in the pool", func() bool { return len(pool.Engines()) == 1 })
	if st, _ := pool.Engines()[0].State(); st != engine.Pending {
		t.Fatalf("engine %s before its first answer; want Pending", st)
	}
	rt := manager.New(manager.Config{Pool: pool}).TaskRuntime()
	nodes, err := rt.Nodes(ctx)
	if err != nil || len(nodes) != 1 || !nodes[0].Ready || nodes[0].Hostname != "late" {
		t.Fatalf("Nodes right after start-up = %+v, %v; want the engine, ready", nodes, err)
	}
	if _, stale, _ := rt.Containers(ctx); len(stale) != 0 {
		t.Fatalf("stale nodes %v right after start-up", stale)
	}
}
