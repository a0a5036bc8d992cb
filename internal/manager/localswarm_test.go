package manager_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/manager"
)

// Under shoal manage with a store, /info says an active swarm manager
// (docker stack deploy checks ControlAvailable) with the Swarm keys of a
// plain engine's info; without one it stays inactive.
func TestInfoLocalSwarm(t *testing.T) {
	sim, _ := simWithContainer(t, "node1", "web")
	for _, local := range []bool{false, true} {
		m := manager.New(manager.Config{Pool: startPool(t, 1, sim.Addr()), LocalSwarm: local})
		raw, err := m.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var info struct{ Swarm map[string]any }
		if err := json.Unmarshal(raw, &info); err != nil {
			t.Fatal(err)
		}
		state, want := info.Swarm["LocalNodeState"], string(swarm.LocalNodeStateInactive)
		if local {
			want = string(swarm.LocalNodeStateActive)
		}
		if state != want || info.Swarm["ControlAvailable"] != local {
			t.Errorf("LocalSwarm %v: Swarm %v", local, info.Swarm)
		}
		for _, k := range []string{"Nodes", "Managers", "Cluster"} {
			if _, ok := info.Swarm[k]; ok {
				t.Errorf("LocalSwarm %v: Swarm has %s, which a plain engine's info has not", local, k)
			}
		}
	}
}
