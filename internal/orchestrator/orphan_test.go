package orchestrator

import (
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// TestReconcileOrphansTasksOfANodeDownFor24Hours: swarm mode's rule. A
// node down for 24 hours has its tasks between ASSIGNED and RUNNING
// marked ORPHANED (their message and time kept); tasks in a final state
// and tasks of ready nodes are left; before the 24 hours the pass asks to
// be woken then; when the node returns, the orphan's stale container is
// removed and the task stays ORPHANED.
func TestReconcileOrphansTasksOfANodeDownFor24Hours(t *testing.T) {
	s := newSim([]store.Service{replicated("s1", 2)}, nodes(2))
	s.settle(t)
	var lost store.Task
	for _, tk := range s.st.Tasks {
		if tk.NodeID == "n01" {
			lost = tk
		}
	}
	// A task of n01 that had failed before the node went down.
	failed := lost
	failed.ID, failed.DesiredState = "tfailed", swarm.TaskStateShutdown
	failed.Status = swarm.TaskStatus{State: swarm.TaskStateFailed, Message: "started", Err: "task: non-zero exit (1)", Timestamp: t0}
	s.st.Tasks = append(s.st.Tasks, failed)

	downAt := s.now.Add(time.Minute)
	s.now = downAt
	s.st.Nodes[0].Ready = false
	s.st.StaleNodes = []string{"n01"}
	s.st.DownSince = map[string]time.Time{"n01": downAt}
	s.settle(t)
	s.now = downAt.Add(OrphanAfter - time.Second)
	if p := s.step(); !p.Wake.Equal(downAt.Add(OrphanAfter)) {
		t.Fatalf("a pass 1 s before the 24 hours: wake %v, want %v", p.Wake, downAt.Add(OrphanAfter))
	}
	if got := s.task(lost.ID); got.Status.State != swarm.TaskStateRunning || got.DesiredState != swarm.TaskStateShutdown {
		t.Fatalf("before the 24 hours the lost task keeps its last status: %+v", got.Status)
	}

	s.now = downAt.Add(OrphanAfter)
	s.settle(t)
	got := s.task(lost.ID)
	if got.Status.State != swarm.TaskStateOrphaned || got.Status.Message != lost.Status.Message || !got.Status.Timestamp.Equal(lost.Status.Timestamp) {
		t.Fatalf("after 24 hours: %+v; want ORPHANED with message %q and time %v kept", got.Status, lost.Status.Message, lost.Status.Timestamp)
	}
	if f := s.task("tfailed"); f.Status.State != swarm.TaskStateFailed {
		t.Errorf("a failed task of the down node: %+v; want it left FAILED", f.Status)
	}
	if run := s.running(); len(run) != 2 || run[0].NodeID != "n02" || run[1].NodeID != "n02" {
		t.Errorf("the tasks of the ready node: %+v; want both slots running on n02", run)
	}

	s.st.Nodes[0].Ready, s.st.StaleNodes, s.st.DownSince = true, nil, nil
	s.settle(t)
	for _, o := range s.st.Observed {
		if o.TaskID == lost.ID {
			t.Fatalf("the orphan's stale container was left on the returned node: %+v", o)
		}
	}
	if got := s.task(lost.ID); got.Status.State != swarm.TaskStateOrphaned {
		t.Errorf("the orphan once its node returned: %+v; want ORPHANED", got.Status)
	}
}

// TestScenarioOrphanedAfter24Hours runs the loop: the tasks of a node
// that went down are replaced at once and marked ORPHANED once the clock
// has moved 24 hours on.
func TestScenarioOrphanedAfter24Hours(t *testing.T) {
	h := newHarness(t, 2)
	id := h.create(spec("web", 2))
	run := h.waitRunning(id, 2)
	lostNode := run[0].NodeID
	h.rt.setNode(lostNode, func(n *Node) { n.Ready = false })
	onLost := func() []store.Task {
		var out []store.Task
		for _, tk := range h.list(id) {
			if tk.NodeID == lostNode {
				out = append(out, tk)
			}
		}
		return out
	}
	h.eventually("the lost node's tasks shut down and replaced", func() bool {
		for _, tk := range onLost() {
			if tk.DesiredState != swarm.TaskStateShutdown {
				return false
			}
		}
		return len(running(h.list(id))) == 2
	})
	for _, tk := range onLost() {
		if tk.Status.State == swarm.TaskStateOrphaned {
			t.Fatalf("orphaned at once: %+v", tk.Status)
		}
	}
	h.clock.Advance(OrphanAfter)
	h.eventually("the lost node's tasks ORPHANED", func() bool {
		ts := onLost()
		for _, tk := range ts {
			if tk.Status.State != swarm.TaskStateOrphaned {
				return false
			}
		}
		return len(ts) > 0
	})
}
