package orchestrator

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func node(id string) Node {
	return Node{ID: id, Hostname: id, Ready: true, Availability: swarm.NodeAvailabilityActive, Role: swarm.NodeRoleWorker}
}

func nodes(n int) []Node {
	out := make([]Node, n)
	for i := range out {
		out[i] = node(fmt.Sprintf("n%02d", i+1))
	}
	return out
}

func replicated(id string, replicas uint64) store.Service {
	return store.Service{Service: swarm.Service{ID: id, Meta: swarm.Meta{CreatedAt: t0, UpdatedAt: t0}, Spec: swarm.ServiceSpec{
		Annotations:  swarm.Annotations{Name: "svc-" + id},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "nginx"}},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: ptr(replicas)}},
	}}, SpecVersion: 1}
}

// idGen makes task IDs t001, t002, ... so plans are comparable.
func idGen() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("t%03d", n) }
}

// sim is a pure fake of the loop and the runtime: it applies plans to
// the state and runs started containers at once.
type sim struct {
	st   State
	now  time.Time
	exit map[string]int // image → exit code of its containers (absent: keeps running)
	plan Plan
}

func newSim(svcs []store.Service, ns []Node) *sim {
	return &sim{st: State{Services: svcs, Nodes: ns, NewID: idGen(), OrphanSeen: map[string]time.Time{}}, now: t0, exit: map[string]int{}}
}

// step runs one pass and applies it.
func (s *sim) step() Plan {
	p := Reconcile(s.st, s.now)
	s.plan = p
	for _, w := range p.Services {
		for i := range s.st.Services {
			if s.st.Services[i].ID == w.ID {
				_ = applyWrite(&s.st.Services[i], w, s.now)
			}
		}
	}
	byID := map[string]int{}
	for i, t := range s.st.Tasks {
		byID[t.ID] = i
	}
	for _, t := range p.Puts {
		if i, ok := byID[t.ID]; ok {
			s.st.Tasks[i] = t
		} else {
			byID[t.ID] = len(s.st.Tasks)
			s.st.Tasks = append(s.st.Tasks, t)
		}
	}
	del := map[string]bool{}
	for _, id := range p.Deletes {
		del[id] = true
	}
	kept := s.st.Tasks[:0]
	for _, t := range s.st.Tasks {
		if !del[t.ID] {
			kept = append(kept, t)
		}
	}
	s.st.Tasks = kept
	for _, st := range p.Stops {
		s.stop(st.Task.ID, st.Remove)
	}
	for _, t := range p.Removes {
		s.stop(t.ID, true)
	}
	for _, t := range p.Starts {
		s.start(t)
	}
	return p
}

func (s *sim) stop(taskID string, remove bool) {
	out := s.st.Observed[:0]
	for _, o := range s.st.Observed {
		if o.TaskID == taskID {
			if remove {
				continue
			}
			if o.State == "running" {
				o.State, o.ExitCode, o.FinishedAt = "exited", 137, s.now
			}
		}
		out = append(out, o)
	}
	s.st.Observed = out
}

func (s *sim) start(t store.Task) {
	if len(s.st.Observed) < 1000 { // a big sim starts each task once
		for _, o := range s.st.Observed {
			if o.TaskID == t.ID {
				return
			}
		}
	}
	o := Observed{TaskID: t.ID, NodeID: t.NodeID, ContainerID: "c-" + t.ID, State: "running", PID: 100, StartedAt: s.now}
	if code, ok := s.exit[t.Spec.ContainerSpec.Image]; ok {
		o.State, o.ExitCode, o.FinishedAt = "exited", code, s.now
	}
	s.st.Observed = append(s.st.Observed, o)
}

// settle steps until a pass changes nothing (at most 20 passes).
func (s *sim) settle(t *testing.T) {
	t.Helper()
	for range 20 {
		if s.step().Empty() {
			return
		}
	}
	t.Fatalf("no fixed point after 20 passes; last plan: %+v", s.plan)
}

// running are the tasks desired and seen running, by slot or node.
func (s *sim) running() []store.Task {
	var out []store.Task
	for _, t := range s.st.Tasks {
		if t.DesiredState == swarm.TaskStateRunning && t.Status.State == swarm.TaskStateRunning {
			out = append(out, t)
		}
	}
	return out
}

func (s *sim) task(id string) store.Task {
	for _, t := range s.st.Tasks {
		if t.ID == id {
			return t
		}
	}
	return store.Task{}
}

func TestReconcileCreatesReplicasAssignedAndStartsThem(t *testing.T) {
	st := State{Services: []store.Service{replicated("s1", 3)}, Nodes: nodes(2), NewID: idGen()}
	p := Reconcile(st, t0)
	if len(p.Puts) != 3 || len(p.Starts) != 3 {
		t.Fatalf("want 3 puts and 3 starts, got %d and %d", len(p.Puts), len(p.Starts))
	}
	for i, tk := range p.Puts {
		if tk.Slot != i+1 || tk.Status.State != swarm.TaskStateAssigned || tk.Status.Message != msgAssigned || tk.NodeID == "" || tk.SpecVersion != 1 {
			t.Errorf("task %d: %+v", i, tk)
		}
	}
}

func TestReconcileIsDeterministic(t *testing.T) {
	st := func() State {
		return State{Services: []store.Service{replicated("s1", 5), replicated("s2", 2)}, Nodes: nodes(3), NewID: idGen()}
	}
	a, b := Reconcile(st(), t0), Reconcile(st(), t0)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two passes over the same state differ")
	}
}

func TestReconcilePendingWithoutNodesThenPlaced(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 1)}, nil)
	s.step()
	tk := s.st.Tasks[0]
	if tk.Status.State != swarm.TaskStatePending || tk.Status.Message != msgPending || !strings.HasPrefix(tk.Status.Err, "no suitable node") {
		t.Fatalf("want pending with the placer's reason, got %+v", tk.Status)
	}
	if p := s.step(); !p.Empty() {
		t.Fatalf("a pending task with nothing changed is not written again: %+v", p)
	}
	s.st.Nodes = nodes(1)
	s.settle(t)
	if tk := s.task(tk.ID); tk.Status.State != swarm.TaskStateRunning || tk.NodeID != "n01" {
		t.Fatalf("want the pending task placed and running, got %+v", tk)
	}
}

func TestReconcileRunningFromObserved(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 2)}, nodes(2))
	s.settle(t)
	if got := len(s.running()); got != 2 {
		t.Fatalf("want 2 running, got %d", got)
	}
	tk := s.running()[0]
	if tk.Status.Message != msgStarted || tk.Status.ContainerStatus == nil || tk.Status.ContainerStatus.ContainerID != "c-"+tk.ID {
		t.Fatalf("status %+v", tk.Status)
	}
}

func TestReconcileHealthcheckGatesRunning(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 1)}, nodes(1))
	s.step()
	s.st.Observed[0].Health = "starting"
	s.step()
	if st := s.st.Tasks[0].Status.State; st != swarm.TaskStateStarting {
		t.Fatalf("want starting while the healthcheck starts, got %s", st)
	}
	s.st.Observed[0].Health = "healthy"
	s.step()
	if st := s.st.Tasks[0].Status.State; st != swarm.TaskStateRunning {
		t.Fatalf("want running once healthy, got %s", st)
	}
}

func TestReconcileScaleDownRemovesHighestSlots(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 3)}, nodes(3))
	s.settle(t)
	s.st.Services[0].Spec.Mode.Replicated.Replicas = ptr(uint64(1))
	s.settle(t)
	if len(s.st.Tasks) != 1 || s.st.Tasks[0].Slot != 1 {
		t.Fatalf("want only slot 1 left, got %+v", s.st.Tasks)
	}
	if len(s.st.Observed) != 1 {
		t.Fatalf("want the containers of slots 2 and 3 removed, got %+v", s.st.Observed)
	}
}

func TestReconcileFailedTaskRestartsAfterDelayWithBackoff(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 1)}, nodes(1))
	s.exit["nginx"] = 1
	s.step() // assigned, started: exits at once
	var delays []time.Duration
	for i := range 4 {
		p := s.step() // observed failed
		failed := s.st.Tasks[len(s.st.Tasks)-1]
		if failed.Status.State != swarm.TaskStateFailed || failed.Status.Err != "task: non-zero exit (1)" || failed.DesiredState != swarm.TaskStateShutdown {
			t.Fatalf("round %d: want failed task: %+v", i, failed)
		}
		delays = append(delays, p.Wake.Sub(s.now))
		s.now = p.Wake.Add(-time.Millisecond)
		if p := s.step(); len(p.Puts) != 0 {
			t.Fatalf("round %d: restarted before its delay", i)
		}
		s.now = s.now.Add(time.Millisecond)
		p = s.step()
		if len(p.Puts) != 1 || p.Puts[0].Slot != 1 || len(p.Starts) != 1 {
			t.Fatalf("round %d: want one new task in slot 1, got %+v", i, p.Puts)
		}
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second}
	if !reflect.DeepEqual(delays, want) {
		t.Fatalf("restart delays %v, want %v", delays, want)
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		delay    time.Duration
		failures int
		want     time.Duration
	}{
		{5 * time.Second, 1, 5 * time.Second},
		{5 * time.Second, 3, 20 * time.Second},
		{5 * time.Second, 20, MaxBackoff},
		{10 * time.Minute, 3, 10 * time.Minute},
		{0, 5, 0},
	} {
		if got := backoff(c.delay, c.failures); got != c.want {
			t.Errorf("backoff(%v, %d) = %v, want %v", c.delay, c.failures, got, c.want)
		}
	}
}

func TestReconcileRestartConditionAndMaxAttempts(t *testing.T) {
	svc := replicated("s1", 1)
	svc.Spec.TaskTemplate.RestartPolicy = &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionOnFailure, MaxAttempts: ptr(uint64(2)), Delay: ptr(time.Duration(0))}
	s := newSim([]store.Service{svc}, nodes(1))
	s.exit["nginx"] = 3
	s.settle(t)
	if len(s.st.Tasks) != 3 {
		t.Fatalf("want the first task and 2 restarts, got %d tasks", len(s.st.Tasks))
	}
	svc = replicated("s2", 1)
	svc.Spec.TaskTemplate.RestartPolicy = &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionOnFailure}
	s = newSim([]store.Service{svc}, nodes(1))
	s.exit["nginx"] = 0
	s.settle(t)
	if len(s.st.Tasks) != 1 || s.st.Tasks[0].Status.State != swarm.TaskStateComplete {
		t.Fatalf("on-failure: a task that completed is not restarted: %+v", s.st.Tasks)
	}
}

func TestReconcileNodeLossReplacesAtOnceAndReturnRemovesStale(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 2)}, nodes(2))
	s.settle(t)
	var lost store.Task
	for _, tk := range s.st.Tasks {
		if tk.NodeID == "n01" {
			lost = tk
		}
	}
	s.st.Nodes[0].Ready = false
	s.st.StaleNodes = []string{"n01"}
	s.settle(t)
	if got := s.task(lost.ID); got.DesiredState != swarm.TaskStateShutdown || got.Status.State != swarm.TaskStateRunning {
		t.Fatalf("lost task: want desired shutdown, last status kept: %+v", got)
	}
	run := s.running()
	if len(run) != 2 || run[0].NodeID != "n02" || run[1].NodeID != "n02" {
		t.Fatalf("want both slots running on n02 at once, got %+v", run)
	}
	s.st.Nodes[0].Ready = true
	s.step() // still stale: nothing done on n01
	if len(s.st.Observed) != 3 {
		t.Fatalf("a stale node's containers are left alone")
	}
	s.st.StaleNodes = nil
	s.settle(t)
	for _, o := range s.st.Observed {
		if o.TaskID == lost.ID {
			t.Fatalf("stale container left on the returned node: %+v", o)
		}
	}
	if got := s.task(lost.ID); got.Status.State != swarm.TaskStateShutdown {
		t.Fatalf("lost task once its container is gone: %+v", got.Status)
	}
}

func TestReconcileHistoryLimit(t *testing.T) {
	svc := replicated("s1", 1)
	svc.Spec.TaskTemplate.RestartPolicy = &swarm.RestartPolicy{Delay: ptr(time.Duration(0)), MaxAttempts: ptr(uint64(9))}
	s := newSim([]store.Service{svc}, nodes(1))
	s.exit["nginx"] = 1
	s.settle(t)
	if len(s.st.Tasks) != HistoryLimit {
		t.Fatalf("want %d tasks kept, got %d", HistoryLimit, len(s.st.Tasks))
	}
	if len(s.st.Observed) != HistoryLimit {
		t.Fatalf("want the containers of deleted tasks removed: %d left", len(s.st.Observed))
	}
}

func TestReconcileDeletedServiceRemovesTasks(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 2)}, nodes(2))
	s.settle(t)
	s.st.Services = nil
	s.settle(t)
	if len(s.st.Tasks) != 0 || len(s.st.Observed) != 0 {
		t.Fatalf("want no tasks or containers left: %+v %+v", s.st.Tasks, s.st.Observed)
	}
}

func TestReconcileOrphanRemovedAfterGrace(t *testing.T) {
	s := newSim(nil, nodes(1))
	s.st.Observed = []Observed{{TaskID: "gone", NodeID: "n01", ContainerID: "c1", State: "running"}}
	s.st.OrphanSeen["c1"] = t0
	if p := s.step(); len(p.Removes) != 0 || !p.Wake.Equal(t0.Add(OrphanGrace)) {
		t.Fatalf("want a wait for the grace, got %+v", p)
	}
	s.now = t0.Add(OrphanGrace)
	if p := s.step(); len(p.Removes) != 1 || p.Removes[0].ID != "gone" {
		t.Fatalf("want the orphan removed, got %+v", p)
	}
}

func TestReconcileAdoptsContainerOfKnownTask(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 1)}, nodes(1))
	s.step()
	id := s.st.Tasks[0].ID
	s.st.Observed = nil // a new leader: the container exists, the record says assigned
	s.st.Observed = []Observed{{TaskID: id, NodeID: "n01", ContainerID: "cx", State: "running"}}
	s.settle(t)
	if len(s.st.Tasks) != 1 || s.st.Tasks[0].Status.State != swarm.TaskStateRunning || s.st.Tasks[0].Status.ContainerStatus.ContainerID != "cx" {
		t.Fatalf("want the existing container adopted: %+v", s.st.Tasks)
	}
}

func globalSvc(id string) store.Service {
	svc := replicated(id, 0)
	svc.Spec.Mode = swarm.ServiceMode{Global: &swarm.GlobalService{}}
	return svc
}

func TestReconcileGlobalFollowsNodes(t *testing.T) {
	svc := globalSvc("g")
	svc.Spec.TaskTemplate.Placement = &swarm.Placement{Constraints: []string{"node.labels.zone==a"}}
	ns := nodes(3)
	for i := range ns {
		ns[i].Labels = map[string]string{"zone": "a"}
	}
	s := newSim([]store.Service{svc}, ns)
	s.settle(t)
	if got := len(s.running()); got != 3 {
		t.Fatalf("want one task per node, got %d", got)
	}
	for _, tk := range s.running() {
		if tk.Slot != 0 || tk.NodeID == "" {
			t.Fatalf("global task: %+v", tk)
		}
	}
	s.st.Nodes[1].Availability = swarm.NodeAvailabilityDrain
	n4 := node("n04")
	n4.Labels = map[string]string{"zone": "a"}
	s.st.Nodes = append(s.st.Nodes, n4, node("n05")) // n05 is not in zone a
	s.settle(t)
	got := map[string]bool{}
	for _, tk := range s.running() {
		got[tk.NodeID] = true
	}
	if !reflect.DeepEqual(got, map[string]bool{"n01": true, "n03": true, "n04": true}) {
		t.Fatalf("want tasks on n01, n03, n04, got %v", got)
	}
	s.st.Nodes[2].Labels = map[string]string{"zone": "b"} // n03 no longer matches the constraint
	s.settle(t)
	for _, tk := range s.running() {
		if tk.NodeID == "n03" {
			t.Fatalf("a task still runs on a node that no longer matches")
		}
	}
	if len(s.running()) != 2 {
		t.Fatalf("want 2 tasks, got %d", len(s.running()))
	}
}

func TestReconcileReplicatedJob(t *testing.T) {
	svc := replicated("j", 0)
	svc.Spec.Mode = swarm.ServiceMode{ReplicatedJob: &swarm.ReplicatedJob{MaxConcurrent: ptr(uint64(2)), TotalCompletions: ptr(uint64(5))}}
	s := newSim([]store.Service{svc}, nodes(2))
	s.exit["nginx"] = 0
	p := s.step()
	if len(p.Starts) != 2 || len(p.Services) != 1 || p.Services[0].JobStatus.JobIteration.Index != 0 {
		t.Fatalf("want 2 tasks at once and the job status written: %+v", p)
	}
	s.st.Services[0].JobStatus = p.Services[0].JobStatus
	s.settle(t)
	done := 0
	for _, tk := range s.st.Tasks {
		if tk.Status.State == swarm.TaskStateComplete && tk.DesiredState == swarm.TaskStateComplete {
			done++
		}
	}
	if done != 5 || len(s.st.Tasks) != 5 {
		t.Fatalf("want 5 completions and no restart, got %d of %d tasks", done, len(s.st.Tasks))
	}
	// Swarm mode's slots of a job: 0..n-1 (the CLI's progress reads those).
	slots := map[int]bool{}
	for _, tk := range s.st.Tasks {
		slots[tk.Slot] = true
	}
	for i := range 5 {
		if !slots[i] {
			t.Fatalf("want slots 0..4, got %v", slots)
		}
	}
}

func TestReconcileDrainStartsReplacementFirst(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 1)}, nodes(2))
	s.settle(t)
	old := s.running()[0]
	for i := range s.st.Nodes {
		if s.st.Nodes[i].ID == old.NodeID {
			s.st.Nodes[i].Availability = swarm.NodeAvailabilityDrain
		}
	}
	s.step() // replacement made and started; the old one still wanted
	if got := s.task(old.ID); got.DesiredState != swarm.TaskStateRunning {
		t.Fatalf("the drained task stops only once its replacement runs")
	}
	s.settle(t)
	run := s.running()
	if len(run) != 1 || run[0].NodeID == old.NodeID || run[0].Slot != 1 {
		t.Fatalf("want the replacement running elsewhere in slot 1, got %+v", run)
	}
}

func TestReconcileRebalancesOntoNewNodes(t *testing.T) {
	svc := replicated("s1", 6)
	svc.Spec.UpdateConfig = &swarm.UpdateConfig{Parallelism: 2}
	s := newSim([]store.Service{svc}, nodes(2))
	s.settle(t)
	s.st.Nodes = append(s.st.Nodes, node("n03"))
	minRunning := 6
	for range 30 {
		p := s.step()
		perSlot, moving := map[int]int{}, 0
		for _, tk := range s.st.Tasks {
			if tk.DesiredState == swarm.TaskStateRunning {
				if perSlot[tk.Slot]++; perSlot[tk.Slot] == 2 {
					moving++
				}
			}
		}
		if moving > 2 {
			t.Fatalf("%d moves at once, parallelism 2", moving)
		}
		minRunning = min(minRunning, s.slotsRunning())
		if p.Empty() {
			break
		}
	}
	if minRunning < 6 {
		t.Fatalf("a rebalance never runs fewer than the replicas: saw %d", minRunning)
	}
	perNode := map[string]int{}
	for _, tk := range s.running() {
		perNode[tk.NodeID]++
	}
	if perNode["n01"] != 2 || perNode["n02"] != 2 || perNode["n03"] != 2 {
		t.Fatalf("want 2 per node, got %v", perNode)
	}
	if len(s.running()) != 6 {
		t.Fatalf("want 6 running, got %d", len(s.running()))
	}
}

func TestReconcileRebalanceOffByLabel(t *testing.T) {
	svc := replicated("s1", 4)
	svc.Spec.Labels = map[string]string{LabelRebalance: "false"}
	s := newSim([]store.Service{svc}, nodes(1))
	s.settle(t)
	s.st.Nodes = append(s.st.Nodes, node("n02"))
	if p := s.step(); !p.Empty() {
		t.Fatalf("rebalance is off for this service: %+v", p)
	}
}

func TestReconcileVanishedContainerFailsAfterGrace(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 1)}, nodes(1))
	s.settle(t)
	id := s.st.Tasks[0].ID
	s.now = t0.Add(time.Hour)
	s.st.Observed = nil // gone from the runtime's view
	s.st.MissingSince = map[string]time.Time{id: s.now}
	if p := s.step(); len(p.Puts) != 0 || !p.Wake.Equal(s.now.Add(MissingGrace)) {
		t.Fatalf("a container missing from the view gets a grace: %+v", p)
	}
	s.now = s.now.Add(MissingGrace)
	s.step()
	if got := s.task(id); got.Status.State != swarm.TaskStateFailed || got.DesiredState != swarm.TaskStateShutdown {
		t.Fatalf("want the task failed once the grace passed: %+v", got.Status)
	}
}

func TestReconcileUnconfirmedNodeKeepsItsTasks(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 2)}, nodes(2))
	s.settle(t)
	s.st.Nodes[0].Ready = false
	s.st.StaleNodes = []string{"n01"}
	s.st.Unconfirmed = []string{"n01"} // a new leader, n01 still connecting
	if p := s.step(); !p.Empty() {
		t.Fatalf("the tasks of a node not confirmed down are kept: %+v", p)
	}
	s.st.Unconfirmed = nil
	s.settle(t)
	for _, tk := range s.running() {
		if tk.NodeID == "n01" {
			t.Fatalf("once confirmed down, its tasks are replaced")
		}
	}
	if len(s.running()) != 2 {
		t.Fatalf("want 2 running, got %d", len(s.running()))
	}
}

func TestReconcileLeavesItsInputAlone(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 3), globalSvc("g")}, nodes(3))
	s.settle(t)
	s.st.Nodes[0].Ready = false // lots to change
	s.st.Services[0].Spec.Mode.Replicated.Replicas = ptr(uint64(1))
	before, _ := json.Marshal(s.st.Tasks)
	p := Reconcile(s.st, t0.Add(time.Minute))
	after, _ := json.Marshal(s.st.Tasks)
	if len(p.Puts) == 0 || string(before) != string(after) {
		t.Fatalf("Reconcile changed the tasks it was given (or had nothing to do)")
	}
}
