package orchestrator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// harness runs the real loop over a real store, a fake runtime and a fake
// clock.
type harness struct {
	t     *testing.T
	ctx   context.Context
	st    *store.Store
	rt    *fakeRuntime
	clock *fakeClock
	svcs  store.Services
	tasks store.Tasks
	stop  func()
	// viewSince is the Config.ViewSince of the orchestrators it starts.
	viewSince time.Time
	// downGrace is their Config.DownGrace: none (-1) unless a test sets it.
	downGrace time.Duration
}

func newHarness(t *testing.T, nodes int) *harness {
	t.Helper()
	st := storetest.Open(t)
	clock := newFakeClock()
	h := &harness{t: t, ctx: context.Background(), st: st, rt: newFakeRuntime(clock, nodes), clock: clock,
		svcs: store.NewServices(st), tasks: store.NewTasks(st), downGrace: -1}
	h.stop = h.startOrchestrator()
	t.Cleanup(func() { h.stop() })
	return h
}

// startOrchestrator runs one orchestrator; the func returned stops it and
// waits for it.
func (h *harness) startOrchestrator() func() {
	ctx, cancel := context.WithCancel(context.Background())
	o := New(Config{Store: h.st, Runtime: h.rt, Clock: h.clock, Debounce: 2 * time.Millisecond,
		Logger: testLogger(), ViewSince: h.viewSince, DownGrace: h.downGrace})
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("ORCH_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func spec(name string, replicas uint64) swarm.ServiceSpec {
	return swarm.ServiceSpec{
		Annotations:  swarm.Annotations{Name: name},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "nginx"}},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: ptr(replicas)}},
	}
}

func (h *harness) create(sp swarm.ServiceSpec) string {
	h.t.Helper()
	id := store.NewID()
	if _, err := h.svcs.Create(h.ctx, id, sp, h.clock.Now()); err != nil {
		h.t.Fatal(err)
	}
	return id
}

// update changes a service's spec as the API does.
func (h *harness) update(id string, fn func(*swarm.ServiceSpec)) {
	h.t.Helper()
	svc, err := h.svcs.Get(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	sp := svc.Spec
	cs := *sp.TaskTemplate.ContainerSpec
	sp.TaskTemplate.ContainerSpec = &cs
	if sp.Mode.Replicated != nil {
		sp.Mode.Replicated = &swarm.ReplicatedService{Replicas: ptr(*sp.Mode.Replicated.Replicas)}
	}
	fn(&sp)
	now := h.clock.Now()
	_, err = h.svcs.Change(h.ctx, id, svc.Version.Index, func(s *store.Service) error { // as the API updates
		prev := s.Spec
		s.PreviousSpec, s.Spec, s.UpdatedAt, s.UpdateStatus = &prev, sp, now, nil
		s.SpecVersion++
		if s.JobStatus != nil {
			s.JobStatus.JobIteration.Index++
			s.JobStatus.LastExecution = now
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) service(id string) store.Service {
	h.t.Helper()
	svc, err := h.svcs.Get(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return svc
}

func (h *harness) list(svcID string) []store.Task {
	h.t.Helper()
	all, _, err := h.tasks.List(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []store.Task
	for _, t := range all {
		if svcID == "" || t.ServiceID == svcID {
			out = append(out, t)
		}
	}
	return out
}

// running are a service's tasks desired and seen running.
func running(ts []store.Task) []store.Task {
	var out []store.Task
	for _, t := range ts {
		if t.DesiredState == swarm.TaskStateRunning && t.Status.State == swarm.TaskStateRunning {
			out = append(out, t)
		}
	}
	return out
}

// eventually waits (real time) until cond holds of the service's tasks.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for _, t := range h.list("") {
				h.t.Logf("task %s slot %d node %s desired %s state %s %q %q v%d image %s", t.ID, t.Slot, t.NodeID, t.DesiredState, t.Status.State, t.Status.Message, t.Status.Err, t.SpecVersion, t.Spec.ContainerSpec.Image)
			}
			for _, c := range h.rt.running() {
				h.t.Logf("running container of %s on %s", c.TaskID, c.NodeID)
			}
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) waitRunning(svcID string, n int) []store.Task {
	h.t.Helper()
	var run []store.Task
	h.eventually(fmt.Sprintf("%d tasks running", n), func() bool {
		run = running(h.list(svcID))
		return len(run) == n
	})
	return run
}

// noTwoPerSlot fails if two containers of one slot of svcID run.
func (h *harness) noTwoPerSlot(svcID string) {
	h.t.Helper()
	slotOf := map[string]int{}
	for _, t := range h.list(svcID) {
		slotOf[t.ID] = t.Slot
	}
	seen := map[int]string{}
	for _, c := range h.rt.running() {
		slot, ok := slotOf[c.TaskID]
		if !ok {
			continue
		}
		if other, dup := seen[slot]; dup {
			h.t.Fatalf("two running containers in slot %d: tasks %s and %s", slot, other, c.TaskID)
		}
		seen[slot] = c.TaskID
	}
}

func TestScenarioScaleUpAndDown(t *testing.T) {
	h := newHarness(t, 3)
	id := h.create(spec("web", 3))
	run := h.waitRunning(id, 3)
	for _, tk := range run {
		if tk.Status.ContainerStatus == nil || tk.Status.ContainerStatus.ContainerID == "" || tk.Status.Message != "started" {
			t.Fatalf("running task without its container: %+v", tk.Status)
		}
	}
	h.update(id, func(sp *swarm.ServiceSpec) { sp.Mode.Replicated.Replicas = ptr(uint64(8)) })
	h.waitRunning(id, 8)
	h.update(id, func(sp *swarm.ServiceSpec) { sp.Mode.Replicated.Replicas = ptr(uint64(2)) })
	h.eventually("scaled down to 2 tasks and 2 containers", func() bool {
		return len(h.list(id)) == 2 && h.rt.count() == 2
	})
	for _, tk := range h.list(id) {
		if tk.Slot > 2 {
			t.Fatalf("slot %d kept after scaling down", tk.Slot)
		}
	}
}

func TestScenarioGlobalFollowsNodes(t *testing.T) {
	h := newHarness(t, 2)
	sp := spec("agent", 0)
	sp.Mode = swarm.ServiceMode{Global: &swarm.GlobalService{}}
	id := h.create(sp)
	h.waitRunning(id, 2)
	h.rt.addNode(node("n03"))
	h.waitRunning(id, 3)
	h.rt.setNode("n01", func(n *Node) { n.Availability = swarm.NodeAvailabilityDrain })
	run := h.waitRunning(id, 2)
	for _, tk := range run {
		if tk.NodeID == "n01" {
			t.Fatalf("a task still runs on the drained node")
		}
	}
	h.rt.setNode("n02", func(n *Node) { n.Ready = false })
	h.waitRunning(id, 1)
}

func TestScenarioRestartBackoff(t *testing.T) {
	h := newHarness(t, 1)
	h.rt.exit["crash"] = 2
	sp := spec("crash", 1)
	sp.TaskTemplate.ContainerSpec.Image = "crash"
	id := h.create(sp)
	failed := func(n int) func() bool {
		return func() bool {
			c := 0
			for _, tk := range h.list(id) {
				if tk.Status.State == swarm.TaskStateFailed && tk.DesiredState == swarm.TaskStateShutdown {
					c++
				}
			}
			return c == n
		}
	}
	h.eventually("the first task failed", failed(1))
	if err := h.list(id)[0].Status.Err; err != "task: non-zero exit (2)" {
		t.Fatalf("error %q", err)
	}
	for i, delay := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second} {
		h.clock.Advance(delay - time.Second)
		time.Sleep(100 * time.Millisecond)
		if n := len(h.list(id)); n != i+1 {
			t.Fatalf("restart %d came before its %v delay", i+1, delay)
		}
		h.clock.Advance(time.Second)
		h.eventually(fmt.Sprintf("restart %d after %v", i+1, delay), failed(i+2))
	}
	for _, tk := range h.list(id) {
		if tk.Slot != 1 {
			t.Fatalf("a restart stays in its slot: %+v", tk)
		}
	}
}

func TestScenarioNodeLossReplacedAtOnceAndStaleRemovedOnReturn(t *testing.T) {
	h := newHarness(t, 3)
	id := h.create(spec("web", 3))
	run := h.waitRunning(id, 3)
	lostNode := run[0].NodeID
	start := time.Now()
	h.rt.setNode(lostNode, func(n *Node) { n.Ready = false })
	h.eventually("3 tasks running on the other nodes", func() bool {
		r := running(h.list(id))
		for _, tk := range r {
			if tk.NodeID == lostNode {
				return false
			}
		}
		return len(r) == 3
	})
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("replacement took %v with no delay on the clock", took)
	}
	for _, tk := range h.list(id) {
		if tk.NodeID == lostNode && (tk.DesiredState != swarm.TaskStateShutdown || tk.Status.State != swarm.TaskStateRunning) {
			t.Fatalf("lost task: want desired shutdown, last status kept: %+v", tk)
		}
	}
	lostTasks := map[string]bool{}
	for _, tk := range h.list(id) {
		if tk.NodeID == lostNode {
			lostTasks[tk.ID] = true
		}
	}
	h.rt.setNode(lostNode, func(n *Node) { n.Ready = true })
	h.eventually("the stale container removed", func() bool {
		h.rt.mu.Lock()
		defer h.rt.mu.Unlock()
		for id := range lostTasks {
			if h.rt.containers[id] != nil {
				return false
			}
		}
		return true
	})
	// The node back, the service is rebalanced onto it: a move starts the
	// replacement before the old task stops (two in one slot meanwhile),
	// so the slots are checked once the spread is even again.
	h.eventually("3 tasks running, one per node", func() bool {
		perNode := map[string]int{}
		for _, c := range h.rt.running() {
			perNode[c.NodeID]++
		}
		for _, n := range perNode {
			if n != 1 {
				return false
			}
		}
		return len(running(h.list(id))) == 3 && len(perNode) == 3
	})
	h.noTwoPerSlot(id)
}

func TestScenarioRejectedImage(t *testing.T) {
	h := newHarness(t, 1)
	h.rt.missing["nope"] = true
	sp := spec("bad", 1)
	sp.TaskTemplate.ContainerSpec.Image = "nope"
	id := h.create(sp)
	h.eventually("the task rejected", func() bool {
		ts := h.list(id)
		return len(ts) > 0 && ts[0].Status.State == swarm.TaskStateRejected
	})
	if err := h.list(id)[0].Status.Err; err != "No such image: nope" {
		t.Fatalf("error %q, want the engine's words", err)
	}
}

func TestScenarioServiceRemoval(t *testing.T) {
	h := newHarness(t, 2)
	id := h.create(spec("web", 4))
	h.waitRunning(id, 4)
	if err := h.svcs.Delete(h.ctx, id); err != nil {
		t.Fatal(err)
	}
	h.eventually("no task records or containers left", func() bool {
		return len(h.list(id)) == 0 && h.rt.count() == 0
	})
}

func TestScenarioReplicatedJob(t *testing.T) {
	h := newHarness(t, 2)
	h.rt.exit["job"] = 0
	sp := spec("job", 0)
	sp.TaskTemplate.ContainerSpec.Image = "job"
	sp.Mode = swarm.ServiceMode{ReplicatedJob: &swarm.ReplicatedJob{MaxConcurrent: ptr(uint64(2)), TotalCompletions: ptr(uint64(4))}}
	id := h.create(sp)
	h.eventually("4 completions", func() bool {
		done := 0
		for _, tk := range h.list(id) {
			if tk.Status.State == swarm.TaskStateComplete {
				done++
			}
		}
		return done == 4
	})
	if js := h.service(id).JobStatus; js == nil || js.JobIteration.Index != 0 {
		t.Fatalf("job status %+v", js)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(h.list(id)); n != 4 {
		t.Fatalf("completed tasks are not restarted: %d tasks", n)
	}
}

func TestScenarioRollingUpdateStartFirst(t *testing.T) {
	h := newHarness(t, 3)
	sp := spec("web", 4)
	sp.UpdateConfig = &swarm.UpdateConfig{Parallelism: 2, Order: swarm.UpdateOrderStartFirst}
	id := h.create(sp)
	h.waitRunning(id, 4)
	h.update(id, func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "nginx:2" })
	h.eventually("4 updated tasks running", func() bool {
		r := running(h.list(id))
		for _, tk := range r {
			if tk.Spec.ContainerSpec.Image != "nginx:2" {
				return false
			}
		}
		return len(r) == 4
	})
	h.eventually("update status updating", func() bool {
		us := h.service(id).UpdateStatus
		return us != nil && us.State == swarm.UpdateStateUpdating && us.Message == "update in progress"
	})
	h.clock.Advance(DefaultMonitor)
	h.eventually("update completed", func() bool {
		us := h.service(id).UpdateStatus
		return us != nil && us.State == swarm.UpdateStateCompleted && us.Message == "update completed"
	})
}

func TestScenarioUpdateFailureRollsBack(t *testing.T) {
	h := newHarness(t, 2)
	h.rt.exit["broken"] = 1
	sp := spec("web", 2)
	sp.UpdateConfig = &swarm.UpdateConfig{FailureAction: swarm.UpdateFailureActionRollback}
	id := h.create(sp)
	h.waitRunning(id, 2)
	h.update(id, func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "broken" })
	h.eventually("rollback started", func() bool {
		us := h.service(id).UpdateStatus
		return us != nil && us.State == swarm.UpdateStateRollbackStarted &&
			strings.HasPrefix(us.Message, "update rolled back due to failure or early termination of task ")
	})
	h.eventually("the old spec running again", func() bool {
		r := running(h.list(id))
		for _, tk := range r {
			if tk.Spec.ContainerSpec.Image != "nginx" {
				return false
			}
		}
		return len(r) == 2
	})
	h.clock.Advance(DefaultMonitor)
	h.eventually("rollback completed", func() bool {
		us := h.service(id).UpdateStatus
		return us != nil && us.State == swarm.UpdateStateRollbackCompleted && us.Message == "rollback completed"
	})
	if svc := h.service(id); svc.Spec.TaskTemplate.ContainerSpec.Image != "nginx" {
		t.Fatalf("spec not rolled back: %s", svc.Spec.TaskTemplate.ContainerSpec.Image)
	}
}

func TestScenarioLeaderHandoverMidUpdate(t *testing.T) {
	h := newHarness(t, 3)
	sp := spec("web", 6)
	sp.UpdateConfig = &swarm.UpdateConfig{Parallelism: 1, Delay: 10 * time.Second}
	id := h.create(sp)
	h.waitRunning(id, 6)
	h.update(id, func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "nginx:2" })
	h.eventually("the first slot updated", func() bool {
		for _, tk := range running(h.list(id)) {
			if tk.Spec.ContainerSpec.Image == "nginx:2" {
				return true
			}
		}
		return false
	})
	h.stop() // the leader goes away mid-update
	h.stop = h.startOrchestrator()
	h.eventually("6 updated tasks running", func() bool {
		h.clock.Advance(time.Second) // the update's delay passes
		r := running(h.list(id))
		for _, tk := range r {
			if tk.Spec.ContainerSpec.Image != "nginx:2" {
				return false
			}
		}
		return len(r) == 6
	})
	h.noTwoPerSlot(id)
	wanted := 0
	for _, tk := range h.list(id) {
		if tk.DesiredState == swarm.TaskStateRunning {
			wanted++
		}
	}
	if wanted != 6 || len(h.rt.running()) != 6 {
		t.Fatalf("after the handover: %d tasks wanted, %d containers running; want 6 and 6", wanted, len(h.rt.running()))
	}
}

func TestScenarioDrainWithoutDowntime(t *testing.T) {
	h := newHarness(t, 2)
	id := h.create(spec("web", 2))
	h.waitRunning(id, 2)
	var drained string
	for _, tk := range running(h.list(id)) {
		drained = tk.NodeID
	}
	h.rt.setNode(drained, func(n *Node) { n.Availability = swarm.NodeAvailabilityDrain })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n := len(h.rt.running()); n < 2 {
			t.Fatalf("only %d containers running during the drain", n)
		}
		onDrained := 0
		for _, c := range h.rt.running() {
			if c.NodeID == drained {
				onDrained++
			}
		}
		if onDrained == 0 && len(running(h.list(id))) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the drain did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.noTwoPerSlot(id)
}

func TestScenarioPendingPlacedWhenANodeJoins(t *testing.T) {
	h := newHarness(t, 0)
	id := h.create(spec("web", 2))
	h.eventually("2 pending tasks with the reason", func() bool {
		ts := h.list(id)
		if len(ts) != 2 {
			return false
		}
		for _, tk := range ts {
			if tk.Status.State != swarm.TaskStatePending || !strings.HasPrefix(tk.Status.Err, "no suitable node") {
				return false
			}
		}
		return true
	})
	h.rt.addNode(node("n01"))
	h.waitRunning(id, 2)
	if n := len(h.list(id)); n != 2 {
		t.Fatalf("the pending tasks are placed, not replaced: %d tasks", n)
	}
}

func TestScenarioRebalanceOnReturn(t *testing.T) {
	h := newHarness(t, 2)
	id := h.create(spec("web", 4))
	h.waitRunning(id, 4)
	h.rt.addNode(node("n03"))
	h.rt.addNode(node("n04"))
	h.eventually("one task per node", func() bool {
		per := map[string]int{}
		for _, c := range h.rt.running() {
			per[c.NodeID]++
		}
		return len(per) == 4 && per["n01"] == 1 && per["n02"] == 1 && per["n03"] == 1 && per["n04"] == 1
	})
	h.waitRunning(id, 4)
}

func TestScenarioGlobalJob(t *testing.T) {
	h := newHarness(t, 3)
	h.rt.exit["once"] = 0
	sp := spec("once", 0)
	sp.TaskTemplate.ContainerSpec.Image = "once"
	sp.Mode = swarm.ServiceMode{GlobalJob: &swarm.GlobalJob{}}
	id := h.create(sp)
	h.eventually("one completion per node", func() bool {
		nodes := map[string]bool{}
		for _, tk := range h.list(id) {
			if tk.Status.State == swarm.TaskStateComplete && tk.DesiredState == swarm.TaskStateComplete {
				nodes[tk.NodeID] = true
			}
		}
		return len(nodes) == 3
	})
	h.update(id, func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ForceUpdate++ })
	h.eventually("a second iteration", func() bool {
		done := 0
		for _, tk := range h.list(id) {
			if tk.Status.State == swarm.TaskStateComplete && tk.JobIteration != nil && tk.JobIteration.Index == 1 {
				done++
			}
		}
		return done == 3
	})
}

func TestScenarioNewLeaderWaitsForConnectingNodes(t *testing.T) {
	h := newHarness(t, 2)
	id := h.create(spec("web", 2))
	before := h.waitRunning(id, 2)
	h.stop()
	h.rt.setNode("n01", func(n *Node) { n.Ready = false }) // still connecting when the next leader starts
	h.stop = h.startOrchestrator()
	time.Sleep(300 * time.Millisecond)
	for _, tk := range before {
		if got, _ := h.tasks.Get(h.ctx, tk.ID); got.DesiredState != swarm.TaskStateRunning {
			t.Fatalf("a new leader replaced the tasks of a node it has not seen yet: %+v", got)
		}
	}
	h.rt.setNode("n01", func(n *Node) { n.Ready = true })
	time.Sleep(100 * time.Millisecond)
	h.clock.Advance(StartupGrace)
	time.Sleep(300 * time.Millisecond)
	if got := len(h.list(id)); got != 2 {
		t.Fatalf("nothing replaced once the node connected: %d tasks", got)
	}
}

// An engine that dies while the update starts a task there: the start
// fails before the node is seen down. That is the node's loss, not the
// task's failure: the update must not pause (issue 12: an engine killed
// mid-update, the update completes), and the task is replaced elsewhere
// once the node is down.
func TestScenarioEngineDiesDuringUpdateStart(t *testing.T) {
	h := newHarness(t, 3)
	sp := spec("web", 6)
	sp.UpdateConfig = &swarm.UpdateConfig{Parallelism: 6, Monitor: time.Second}
	id := h.create(sp)
	h.waitRunning(id, 6)
	h.rt.mu.Lock()
	h.rt.unreached["n03"] = true // its engine died; the runtime has not noticed
	h.rt.mu.Unlock()
	h.update(id, func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "nginx:2" })
	h.eventually("a start on n03 failed", func() bool {
		h.rt.mu.Lock()
		defer h.rt.mu.Unlock()
		return h.rt.unreachedN > 0
	})
	time.Sleep(200 * time.Millisecond) // passes while n03 still looks ready
	for _, tk := range h.list(id) {
		if tk.NodeID == "n03" && tk.Status.State == swarm.TaskStateRejected {
			t.Fatalf("a task whose node did not answer was rejected: %+v", tk.Status)
		}
	}
	h.rt.setNode("n03", func(n *Node) { n.Ready = false })
	h.eventually("the update completed, 6 new tasks on n01 and n02", func() bool {
		h.clock.Advance(time.Second) // monitor periods pass
		if us := h.service(id).UpdateStatus; us == nil || us.State != swarm.UpdateStateCompleted {
			if us != nil && us.State == swarm.UpdateStatePaused {
				t.Fatalf("update paused: %s", us.Message)
			}
			return false
		}
		r := running(h.list(id))
		for _, tk := range r {
			if tk.NodeID == "n03" || tk.Spec.ContainerSpec.Image != "nginx:2" {
				return false
			}
		}
		return len(r) == 6
	})
}

// A leader change in a manager that has watched the nodes for a while (its
// view is established): a node it finds down is down, and its tasks are
// replaced at once, not after StartupGrace (the leader killed with its
// node in the built-in cluster took 5 s more than a node loss).
func TestScenarioLeaderChangeInRunningManagerReplacesAtOnce(t *testing.T) {
	h := newHarness(t, 2)
	id := h.create(spec("web", 2))
	h.waitRunning(id, 2)
	h.stop()
	h.viewSince = h.clock.Now().Add(-time.Minute)          // this manager started a minute ago
	h.rt.setNode("n01", func(n *Node) { n.Ready = false }) // lost with the old leader
	h.stop = h.startOrchestrator()
	h.eventually("2 tasks running on n02, the clock not moved", func() bool {
		r := running(h.list(id))
		return len(r) == 2 && r[0].NodeID == "n02" && r[1].NodeID == "n02"
	})
}

// TestScenarioNodeDownGrace: a node down for less than the down grace (an
// agent restarting) keeps its tasks; one down longer has them replaced
// once the grace has passed since it began to fail, as the runtime says.
func TestScenarioNodeDownGrace(t *testing.T) {
	h := newHarness(t, 2)
	h.stop()
	h.downGrace = 3 * time.Second
	h.stop = h.startOrchestrator()
	id := h.create(spec("web", 2))
	run := h.waitRunning(id, 2)
	byNode := map[string]string{}
	for _, tk := range run {
		byNode[tk.NodeID] = tk.ID
	}
	h.rt.setNode("n01", func(n *Node) { n.Ready, n.DownSince = false, h.clock.Now() })
	h.clock.Advance(2 * time.Second)
	time.Sleep(100 * time.Millisecond) // real time for passes to run
	h.rt.setNode("n01", func(n *Node) { n.Ready, n.DownSince = true, time.Time{} })
	h.clock.Advance(5 * time.Second)
	time.Sleep(100 * time.Millisecond)
	for _, tk := range h.list(id) {
		if tk.DesiredState != swarm.TaskStateRunning || byNode[tk.NodeID] != tk.ID {
			t.Fatalf("a task changed across a down time shorter than the grace: %+v", tk)
		}
	}
	// Down again, failing for 2 s already when marked down: replaced 1 s later.
	h.rt.setNode("n01", func(n *Node) { n.Ready, n.DownSince = false, h.clock.Now().Add(-2*time.Second) })
	time.Sleep(100 * time.Millisecond)
	if r := running(h.list(id)); len(r) != 2 || r[0].NodeID == r[1].NodeID {
		t.Fatalf("replaced before the grace passed: %+v", r)
	}
	h.clock.Advance(time.Second)
	h.eventually("both tasks running on n02", func() bool {
		r := running(h.list(id))
		return len(r) == 2 && r[0].NodeID == "n02" && r[1].NodeID == "n02"
	})
}

// TestScenarioTaskPortStatus: the ports a running task's container
// publishes on its node show in its Status.PortStatus, as swarm mode
// shows its host-mode ports (docker service ps's PORTS).
func TestScenarioTaskPortStatus(t *testing.T) {
	h := newHarness(t, 1)
	id := h.create(spec("web", 1))
	run := h.waitRunning(id, 1)
	want := []swarm.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: swarm.PortConfigPublishModeHost}}
	h.rt.mu.Lock()
	h.rt.containers[run[0].ID].Ports = want
	h.rt.mu.Unlock()
	h.rt.notify()
	h.eventually("the task's PortStatus", func() bool {
		l := running(h.list(id))
		return len(l) == 1 && len(l[0].Status.PortStatus.Ports) == 1 && l[0].Status.PortStatus.Ports[0] == want[0]
	})
}
