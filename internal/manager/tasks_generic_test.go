package manager_test

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
)

// TestTaskRuntimeGenericResources: a node's generic resources are those
// its engine shows in /info (dockerd --node-generic-resource), and a task
// assigned some is told them in its environment as swarm mode's agent
// tells them (DOCKER_RESOURCE_GPU=GPU-1,GPU-2).
func TestTaskRuntimeGenericResources(t *testing.T) {
	gpus := []swarm.GenericResource{
		{NamedResourceSpec: &swarm.NamedGenericResource{Kind: "gpu", Value: "GPU-1"}},
		{NamedResourceSpec: &swarm.NamedGenericResource{Kind: "gpu", Value: "GPU-2"}},
		{DiscreteResourceSpec: &swarm.DiscreteGenericResource{Kind: "ssd", Value: 2}},
	}
	env := newTaskEnvWith(t, 2, nil, func(i int, o *enginesim.Options) {
		if i == 0 {
			o.GenericResources = gpus
		}
	})
	ctx := context.Background()
	nodes, err := env.rt.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		want := []swarm.GenericResource(nil)
		if n.ID == env.node(0) {
			want = gpus
		}
		if !reflect.DeepEqual(n.GenericResources, want) {
			t.Errorf("node %s: generic resources %+v, want %+v", n.Hostname, n.GenericResources, want)
		}
	}

	svc := webService("busybox")
	svc.Spec.TaskTemplate.ContainerSpec.Env = []string{"A=1"}
	task := webTask(svc, "task00000000000000000000a", env.node(0), 1)
	task.GenericResources = []swarm.GenericResource{gpus[0], gpus[1], {DiscreteResourceSpec: &swarm.DiscreteGenericResource{Kind: "ssd", Value: 1}}}
	id, err := env.rt.Start(ctx, svc, task)
	if err != nil {
		t.Fatal(err)
	}
	var node0 *engine.Engine
	for _, e := range env.pool.Engines() {
		if e.ID == env.node(0) {
			node0 = e
		}
	}
	ins, err := node0.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct{ Env []string }
	if err := json.Unmarshal(ins.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"A=1", "DOCKER_RESOURCE_GPU=GPU-1,GPU-2", "DOCKER_RESOURCE_SSD=1"} {
		if !slices.Contains(cfg.Env, want) {
			t.Errorf("container env %q lacks %q", cfg.Env, want)
		}
	}
	if svc.Spec.TaskTemplate.ContainerSpec.Env[0] != "A=1" || len(svc.Spec.TaskTemplate.ContainerSpec.Env) != 1 {
		t.Errorf("the service's spec was changed: %q", svc.Spec.TaskTemplate.ContainerSpec.Env)
	}
}
