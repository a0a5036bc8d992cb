package orchestrator

import (
	"reflect"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

func discrete(kind string, v int64) swarm.GenericResource {
	return swarm.GenericResource{DiscreteResourceSpec: &swarm.DiscreteGenericResource{Kind: kind, Value: v}}
}

func named(kind string, vals ...string) []swarm.GenericResource {
	out := make([]swarm.GenericResource, len(vals))
	for i, v := range vals {
		out[i] = swarm.GenericResource{NamedResourceSpec: &swarm.NamedGenericResource{Kind: kind, Value: v}}
	}
	return out
}

func plGeneric(res ...swarm.GenericResource) func(*Node) {
	return func(n *Node) { n.GenericResources = append(n.GenericResources, res...) }
}

// plAsk makes the service ask for generic resources (docker service
// create --generic-resource kind=n).
func plAsk(res ...swarm.GenericResource) func(*swarm.ServiceSpec) {
	return func(s *swarm.ServiceSpec) {
		s.TaskTemplate.Resources = &swarm.ResourceRequirements{Reservations: &swarm.Resources{GenericResources: res}}
	}
}

// heldTask is an assigned task of another service on nodeID holding res.
func heldTask(nodeID string, state swarm.TaskState, res ...swarm.GenericResource) store.Task {
	t := plTask("other", nodeID)
	t.Status.State = state
	t.GenericResources = res
	return t
}

func TestPlaceDiscreteGenericResources(t *testing.T) {
	nodes := []Node{plNode("a", plGeneric(discrete("gpu", 2))), plNode("b"), plNode("c", plGeneric(discrete("gpu", 1)))}
	p := NewPlacer(plService(plAsk(discrete("gpu", 1))), nodes, nil)
	if got := plPlaceN(t, p, 3); got["a"] != 2 || got["c"] != 1 {
		t.Fatalf("3 tasks asking gpu=1: %v; want 2 on a (gpu=2), 1 on c (gpu=1), none on b", got)
	}
	_, err := p.Place()
	if err == nil || err.Error() != "no suitable node (insufficient resources on 3 nodes)" {
		t.Fatalf("a 4th task: %v; want swarm mode's words", err)
	}
	p.Forget("c")
	if id, err := p.Place(); err != nil || id != "c" {
		t.Fatalf("after a task on c went: %q %v; want c", id, err)
	}
}

func TestPlaceCountsWhatAssignedTasksHold(t *testing.T) {
	nodes := []Node{plNode("a", plGeneric(named("gpu", "GPU-0", "GPU-1")...)), plNode("b", plGeneric(discrete("gpu", 3)))}
	running := []store.Task{
		heldTask("a", swarm.TaskStateRunning, named("gpu", "GPU-0")...),
		heldTask("b", swarm.TaskStateStarting, discrete("gpu", 2)),
		// A pending task holds nothing yet.
		heldTask("b", swarm.TaskStatePending, discrete("gpu", 3)),
	}
	p := NewPlacer(plService(plAsk(discrete("gpu", 2))), nodes, running)
	if _, err := p.Place(); err == nil || err.Error() != "no suitable node (insufficient resources on 2 nodes)" {
		t.Fatalf("gpu=2 with 1 free on each node: %v", err)
	}
	p = NewPlacer(plService(plAsk(discrete("gpu", 1))), nodes, running)
	if got := plPlaceN(t, p, 2); got["a"] != 1 || got["b"] != 1 {
		t.Fatalf("gpu=1 twice: %v; want one on each node", got)
	}
	// A named ask never fits, as in swarm mode (its scheduler takes
	// discrete asks only).
	p = NewPlacer(plService(plAsk(named("gpu", "GPU-1")...)), nodes, nil)
	if _, err := p.Place(); err == nil || err.Error() != "no suitable node (insufficient resources on 2 nodes)" {
		t.Fatalf("a named ask: %v", err)
	}
	// A node without the kind, drained or not, is charged to the right filter.
	p = NewPlacer(plService(plAsk(discrete("fpga", 1))), []Node{plNode("a"), plNode("b", func(n *Node) { n.Availability = swarm.NodeAvailabilityDrain })}, nil)
	if _, err := p.Place(); err == nil || err.Error() != "no suitable node (1 node not available for new tasks; insufficient resources on 1 node)" {
		t.Fatalf("fpga nowhere: %v", err)
	}
}

func TestClaimGenericPicksFreeValuesInNodeOrder(t *testing.T) {
	n := plNode("a", plGeneric(named("gpu", "GPU-0", "GPU-1", "GPU-2")...), plGeneric(discrete("ssd", 4)))
	spec := swarm.TaskSpec{Resources: &swarm.ResourceRequirements{Reservations: &swarm.Resources{
		GenericResources: []swarm.GenericResource{discrete("ssd", 1), discrete("gpu", 2)}}}}
	held := [][]swarm.GenericResource{named("gpu", "GPU-1"), {discrete("ssd", 3)}}
	got := ClaimGeneric(n, spec, held)
	want := append(named("gpu", "GPU-0", "GPU-2"), discrete("ssd", 1))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("claim: %+v; want %+v", got, want)
	}
	if env := GenericEnv(got); !reflect.DeepEqual(env, []string{"DOCKER_RESOURCE_GPU=GPU-0,GPU-2", "DOCKER_RESOURCE_SSD=1"}) {
		t.Errorf("env %q", env)
	}
	if got := ClaimGeneric(n, spec, [][]swarm.GenericResource{named("gpu", "GPU-0", "GPU-2")}); got != nil {
		t.Errorf("claim with one GPU free: %+v; want nil", got)
	}
	if got := ClaimGeneric(n, swarm.TaskSpec{}, nil); got != nil {
		t.Errorf("claim of a task that asks for none: %+v", got)
	}
}

// TestReconcileGenericResourcesAssignedAndPending: tasks asking for a GPU
// run only where one is free, each with its own; the rest stay PENDING
// with the scheduler's words until one frees up.
func TestReconcileGenericResourcesAssignedAndPending(t *testing.T) {
	ns := nodes(2)
	ns[0].GenericResources = named("gpu", "GPU-0", "GPU-1")
	svc := replicated("s1", 3)
	svc.Spec.TaskTemplate.Resources = &swarm.ResourceRequirements{Reservations: &swarm.Resources{GenericResources: []swarm.GenericResource{discrete("gpu", 1)}}}
	s := newSim([]store.Service{svc}, ns)
	s.settle(t)
	run := s.running()
	if len(run) != 2 || run[0].NodeID != "n01" || run[1].NodeID != "n01" {
		t.Fatalf("running: %+v; want 2 on n01", run)
	}
	got := map[string]bool{}
	for _, tk := range run {
		if len(tk.GenericResources) != 1 || tk.GenericResources[0].NamedResourceSpec == nil {
			t.Fatalf("task %s assigned %+v; want one named GPU", tk.ID, tk.GenericResources)
		}
		got[tk.GenericResources[0].NamedResourceSpec.Value] = true
	}
	if !got["GPU-0"] || !got["GPU-1"] {
		t.Errorf("assigned GPUs %v; want GPU-0 and GPU-1, one each", got)
	}
	var pending store.Task
	for _, tk := range s.st.Tasks {
		if tk.Status.State == swarm.TaskStatePending {
			pending = tk
		}
	}
	if pending.ID == "" || pending.Status.Err != "no suitable node (insufficient resources on 2 nodes)" {
		t.Fatalf("third task: %+v; want PENDING with swarm mode's explanation", pending.Status)
	}
	// A second GPU node joins: the pending task is placed there.
	ns2 := node("n03")
	ns2.GenericResources = []swarm.GenericResource{discrete("gpu", 1)}
	s.st.Nodes = append(s.st.Nodes, ns2)
	s.settle(t)
	if tk := s.task(pending.ID); tk.NodeID != "n03" || tk.Status.State != swarm.TaskStateRunning ||
		!reflect.DeepEqual(tk.GenericResources, []swarm.GenericResource{discrete("gpu", 1)}) {
		t.Fatalf("the pending task once n03 joined: node %s, %+v, %+v", tk.NodeID, tk.Status, tk.GenericResources)
	}
}

// TestUpdateHandsTheGPUToTheReplacement: a stop-first update of a task
// holding the node's only GPU gives the GPU to its replacement.
func TestUpdateHandsTheGPUToTheReplacement(t *testing.T) {
	ns := nodes(1)
	ns[0].GenericResources = named("gpu", "GPU-0")
	svc := replicated("s1", 1)
	svc.Spec.TaskTemplate.Resources = &swarm.ResourceRequirements{Reservations: &swarm.Resources{GenericResources: []swarm.GenericResource{discrete("gpu", 1)}}}
	s := newSim([]store.Service{svc}, ns)
	s.settle(t)
	old := s.running()
	if len(old) != 1 || !reflect.DeepEqual(old[0].GenericResources, named("gpu", "GPU-0")) {
		t.Fatalf("before the update: %+v", old)
	}
	s.userUpdate(func(sp *swarm.ServiceSpec) { sp.TaskTemplate.ContainerSpec.Image = "nginx:2" })
	s.run(t, s.now.Add(time.Minute), nil)
	run := s.running()
	if len(run) != 1 || run[0].ID == old[0].ID || run[0].Spec.ContainerSpec.Image != "nginx:2" ||
		!reflect.DeepEqual(run[0].GenericResources, named("gpu", "GPU-0")) {
		t.Fatalf("after the update: %+v; want the new task running with GPU-0", run)
	}
}
