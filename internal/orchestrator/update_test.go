package orchestrator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// userUpdate changes a service's spec as the API does.
func (s *sim) userUpdate(fn func(*swarm.ServiceSpec)) {
	svc := &s.st.Services[0]
	prev := svc.Spec
	b := svc.Spec
	b.TaskTemplate.ContainerSpec = ptr(*svc.Spec.TaskTemplate.ContainerSpec)
	fn(&b)
	svc.PreviousSpec, svc.Spec = &prev, b
	svc.SpecVersion++
	svc.UpdatedAt = s.now
	if svc.JobStatus != nil {
		svc.JobStatus.JobIteration.Index++
	}
}

// run steps, jumping the clock to each wake, until nothing is left to do
// or until; check runs after each step.
func (s *sim) run(t *testing.T, until time.Time, check func()) {
	t.Helper()
	for range 500 {
		p := s.step()
		if check != nil {
			check()
		}
		if !p.Empty() {
			continue
		}
		if p.Wake.IsZero() || p.Wake.After(until) {
			return
		}
		s.now = p.Wake
	}
	t.Fatal("no end after 500 passes")
}

// slotsRunning counts the slots with a running task.
func (s *sim) slotsRunning() int {
	slots := map[int]bool{}
	for _, tk := range s.running() {
		slots[tk.Slot] = true
	}
	return len(slots)
}

func updateSvc(replicas uint64, cfg *swarm.UpdateConfig) store.Service {
	svc := replicated("s1", replicas)
	svc.Spec.UpdateConfig = cfg
	return svc
}

func TestRollingUpdateStopFirstParallelism(t *testing.T) {
	s := newSim([]store.Service{updateSvc(6, &swarm.UpdateConfig{Parallelism: 2, Delay: time.Second})}, nodes(3))
	s.settle(t)
	s.userUpdate(func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "nginx:2" })
	minRunning := 6
	s.run(t, t0.Add(time.Hour), func() { minRunning = min(minRunning, s.slotsRunning()) })
	if minRunning < 4 {
		t.Fatalf("at most 2 slots down at a time: saw %d of 6 running", minRunning)
	}
	run := s.running()
	if len(run) != 6 {
		t.Fatalf("want 6 running, got %d", len(run))
	}
	for _, tk := range run {
		if tk.Spec.ContainerSpec.Image != "nginx:2" || tk.SpecVersion != 2 {
			t.Fatalf("not updated: %+v", tk)
		}
	}
	us := s.st.Services[0].UpdateStatus
	if us == nil || us.State != swarm.UpdateStateCompleted || us.Message != "update completed" || us.StartedAt == nil || us.CompletedAt == nil {
		t.Fatalf("update status %+v", us)
	}
	if got := us.CompletedAt.Sub(*us.StartedAt); got < 2*time.Second+DefaultMonitor {
		t.Fatalf("3 batches 1 s apart and a monitor of 5 s take more than %v", got)
	}
}

func TestRollingUpdateStartFirstNeverBelowReplicas(t *testing.T) {
	s := newSim([]store.Service{updateSvc(3, &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStartFirst})}, nodes(3))
	s.settle(t)
	s.userUpdate(func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "nginx:2" })
	minRunning := 3
	s.run(t, t0.Add(time.Hour), func() { minRunning = min(minRunning, s.slotsRunning()) })
	if minRunning != 3 {
		t.Fatalf("start-first keeps every slot running: saw %d", minRunning)
	}
	for _, tk := range s.running() {
		if tk.Spec.ContainerSpec.Image != "nginx:2" {
			t.Fatalf("not updated: %+v", tk)
		}
	}
}

func TestScaleOnlyBumpsSpecVersion(t *testing.T) {
	s := newSim([]store.Service{updateSvc(2, nil)}, nodes(2))
	s.settle(t)
	before := s.running()
	s.userUpdate(func(sp *swarm.ServiceSpec) { sp.Mode.Replicated.Replicas = ptr(uint64(3)) })
	s.run(t, t0.Add(time.Hour), nil)
	for _, tk := range before {
		if got := s.task(tk.ID); got.DesiredState != swarm.TaskStateRunning || got.SpecVersion != 2 {
			t.Fatalf("a scale keeps the tasks, bumping their version: %+v", got)
		}
	}
	if s.st.Services[0].UpdateStatus != nil {
		t.Fatalf("a scale is no update: %+v", s.st.Services[0].UpdateStatus)
	}
}

func TestRollingUpdateFailurePauses(t *testing.T) {
	s := newSim([]store.Service{updateSvc(3, nil)}, nodes(3))
	s.settle(t)
	s.exit["bad"] = 1
	s.userUpdate(func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "bad" })
	s.run(t, t0.Add(2*time.Second), nil)
	us := s.st.Services[0].UpdateStatus
	if us == nil || us.State != swarm.UpdateStatePaused || len(us.Message) < 10 || us.Message[:len("update paused due to failure or early termination of task ")] != "update paused due to failure or early termination of task " {
		t.Fatalf("want paused, got %+v", us)
	}
	old := 0
	for _, tk := range s.running() {
		if tk.Spec.ContainerSpec.Image == "nginx" {
			old++
		}
	}
	if old != 2 {
		t.Fatalf("a paused update leaves the other slots alone: %d old running", old)
	}
	// the next spec change resumes
	s.now = s.now.Add(time.Second)
	s.userUpdate(func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "nginx:3" })
	s.run(t, s.now.Add(time.Hour), nil)
	if us := s.st.Services[0].UpdateStatus; us.State != swarm.UpdateStateCompleted {
		t.Fatalf("want the next update completed, got %+v", us)
	}
	if got := s.slotsRunning(); got != 3 {
		t.Fatalf("want 3 running, got %d", got)
	}
}

func TestRollingUpdateFailureRollsBack(t *testing.T) {
	s := newSim([]store.Service{updateSvc(3, &swarm.UpdateConfig{Parallelism: 1, FailureAction: swarm.UpdateFailureActionRollback})}, nodes(3))
	s.settle(t)
	s.exit["bad"] = 1
	s.userUpdate(func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "bad" })
	s.run(t, t0.Add(time.Hour), nil)
	svc := s.st.Services[0]
	if svc.UpdateStatus == nil || svc.UpdateStatus.State != swarm.UpdateStateRollbackCompleted || svc.UpdateStatus.Message != "rollback completed" {
		t.Fatalf("want rollback completed, got %+v", svc.UpdateStatus)
	}
	if svc.Spec.TaskTemplate.ContainerSpec.Image != "nginx" || svc.SpecVersion != 3 {
		t.Fatalf("want the previous spec back as version 3: %+v", svc)
	}
	for _, tk := range s.running() {
		if tk.Spec.ContainerSpec.Image != "nginx" {
			t.Fatalf("not rolled back: %+v", tk)
		}
	}
	if got := s.slotsRunning(); got != 3 {
		t.Fatalf("want 3 running, got %d", got)
	}
}

func TestManualRollback(t *testing.T) {
	s := newSim([]store.Service{updateSvc(2, nil)}, nodes(2))
	s.settle(t)
	s.userUpdate(func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "nginx:2" })
	s.run(t, t0.Add(time.Hour), nil)
	// what the API does for `docker service rollback`
	svc := &s.st.Services[0]
	prev := *svc.PreviousSpec
	cur := svc.Spec
	svc.Spec, svc.PreviousSpec = prev, &cur
	svc.SpecVersion++
	svc.UpdatedAt = s.now
	svc.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateRollbackStarted, Message: "manually requested rollback"}
	s.run(t, s.now.Add(time.Hour), nil)
	if us := s.st.Services[0].UpdateStatus; us.State != swarm.UpdateStateRollbackCompleted || us.Message != "rollback completed" {
		t.Fatalf("want rollback completed, got %+v", us)
	}
	for _, tk := range s.running() {
		if tk.Spec.ContainerSpec.Image != "nginx" {
			t.Fatalf("not rolled back: %+v", tk)
		}
	}
}

func TestForceUpdateRedeploys(t *testing.T) {
	s := newSim([]store.Service{updateSvc(2, &swarm.UpdateConfig{Parallelism: 0})}, nodes(2))
	s.settle(t)
	before := s.running()
	s.userUpdate(func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ForceUpdate++ })
	s.run(t, t0.Add(time.Hour), nil)
	for _, tk := range before {
		if got := s.task(tk.ID); got.DesiredState != swarm.TaskStateShutdown {
			t.Fatalf("--force replaces every task: %+v", got)
		}
	}
	if got := s.slotsRunning(); got != 2 {
		t.Fatalf("want 2 running, got %d", got)
	}
}

func TestRestartMaxAttemptsCountsOnlyWithinWindow(t *testing.T) {
	count := func(window time.Duration) int {
		svc := replicated("s1", 1)
		svc.Spec.TaskTemplate.RestartPolicy = &swarm.RestartPolicy{Delay: ptr(15 * time.Second), MaxAttempts: ptr(uint64(2)), Window: ptr(window)}
		s := newSim([]store.Service{svc}, nodes(1))
		s.exit["nginx"] = 1
		s.run(t, t0.Add(10*time.Minute), nil)
		return len(s.st.Tasks)
	}
	if n := count(0); n != 3 {
		t.Fatalf("without a window: the first task and 2 restarts, got %d tasks", n)
	}
	if n := count(20 * time.Second); n != HistoryLimit {
		t.Fatalf("restarts further apart than the window never use up the attempts: %d tasks", n)
	}
}

func TestNewSpecDuringRollbackIsANewUpdate(t *testing.T) {
	s := newSim([]store.Service{updateSvc(2, &swarm.UpdateConfig{FailureAction: swarm.UpdateFailureActionRollback})}, nodes(2))
	s.settle(t)
	s.exit["bad"] = 1
	s.userUpdate(func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "bad" })
	for range 20 {
		s.step()
		if us := s.st.Services[0].UpdateStatus; us != nil && us.State == swarm.UpdateStateRollbackStarted {
			break
		}
	}
	if us := s.st.Services[0].UpdateStatus; us == nil || us.State != swarm.UpdateStateRollbackStarted {
		t.Fatalf("want a rollback under way, got %+v", us)
	}
	s.now = s.now.Add(time.Second)
	s.userUpdate(func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "nginx:3" })
	s.run(t, s.now.Add(time.Hour), nil)
	if us := s.st.Services[0].UpdateStatus; us.State != swarm.UpdateStateCompleted || us.Message != "update completed" {
		t.Fatalf("want the new spec rolled out as an update, got %+v", us)
	}
	for _, tk := range s.running() {
		if tk.Spec.ContainerSpec.Image != "nginx:3" {
			t.Fatalf("not updated: %s", tk.Spec.ContainerSpec.Image)
		}
	}
}

func TestRollbackFailurePausesTheRollback(t *testing.T) {
	s := newSim([]store.Service{updateSvc(2, &swarm.UpdateConfig{FailureAction: swarm.UpdateFailureActionRollback})}, nodes(2))
	s.st.Services[0].Spec.RollbackConfig = &swarm.UpdateConfig{FailureAction: swarm.UpdateFailureActionPause}
	s.settle(t)
	s.exit["bad"] = 1
	s.userUpdate(func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "bad" })
	for range 20 {
		s.step()
		if us := s.st.Services[0].UpdateStatus; us != nil && us.State == swarm.UpdateStateRollbackStarted {
			break
		}
	}
	s.exit["nginx"] = 1 // the previous spec fails now too
	s.run(t, s.now.Add(time.Minute), nil)
	us := s.st.Services[0].UpdateStatus
	if us == nil || us.State != swarm.UpdateStateRollbackPaused || !strings.HasPrefix(us.Message, "rollback paused due to failure or early termination of task ") {
		t.Fatalf("want the rollback paused, got %+v", us)
	}
}

func TestUnhealthyTaskFailsAndRestarts(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 1)}, nodes(1))
	s.settle(t)
	id := s.st.Tasks[0].ID
	s.st.Observed[0].Health = "unhealthy"
	p := s.step()
	if got := s.task(id); got.Status.State != swarm.TaskStateFailed || got.Status.Err != "task: unhealthy container" || got.DesiredState != swarm.TaskStateShutdown {
		t.Fatalf("want the unhealthy task failed: %+v", got.Status)
	}
	if len(p.Stops) != 1 || p.Stops[0].Task.ID != id {
		t.Fatalf("want its container stopped: %+v", p.Stops)
	}
	s.run(t, s.now.Add(time.Minute), nil)
	if len(s.running()) != 1 || s.running()[0].ID == id {
		t.Fatalf("want a new task running in its place")
	}
}

// TestStartFirstKeepsTheNewTaskWhenTimesTie: a start-first replacement
// made in the same instant as the task it replaces (a coarse or stopped
// clock; a new leader whose clock is behind) is still the newer one:
// its spec version says so, whatever the IDs' order.
func TestStartFirstKeepsTheNewTaskWhenTimesTie(t *testing.T) {
	s := newSim([]store.Service{updateSvc(3, &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStartFirst})}, nodes(3))
	n := 1000
	s.st.NewID = func() string { n--; return fmt.Sprintf("t%03d", n) } // each new ID sorts before the last
	s.settle(t)
	s.userUpdate(func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "nginx:2" })
	minRunning := 3
	s.run(t, t0.Add(time.Hour), func() { minRunning = min(minRunning, s.slotsRunning()) })
	if minRunning != 3 {
		t.Fatalf("start-first keeps every slot running: saw %d", minRunning)
	}
	run := s.running()
	if len(run) != 3 {
		t.Fatalf("want 3 running, got %d", len(run))
	}
	for _, tk := range run {
		if tk.Spec.ContainerSpec.Image != "nginx:2" {
			t.Fatalf("not updated: slot %d runs %s (v%d)", tk.Slot, tk.Spec.ContainerSpec.Image, tk.SpecVersion)
		}
	}
}
