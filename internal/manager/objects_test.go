package manager_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/manager"
)

// listedOn is the name and node of each listed network or volume.
func listedOn(t *testing.T, objs []backend.Object) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, o := range objs {
		var n backend.NodeSummary
		if err := json.Unmarshal(o["Node"], &n); err != nil || n.Name == "" {
			t.Fatalf("%s listed without its node: %s (%v)", o.String("Name"), o["Node"], err)
		}
		out[o.String("Name")] = append(out[o.String("Name")], n.Name)
	}
	return out
}

// A network or volume a client created is listed under the name it gave
// (SDKs find what they created by name in the list), with its node in
// "Node"; a name on several nodes is listed once per node.
func TestListsKeepClientNames(t *testing.T) {
	var addrs []string
	for _, name := range []string{"node1", "node2"} {
		sim, err := enginesim.Start(enginesim.Options{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sim.Close() })
		addrs = append(addrs, sim.Addr())
	}
	m := manager.New(manager.Config{Pool: startPool(t, 0, addrs...)})
	ctx := context.Background()
	body := func(name string) backend.Object {
		return backend.Object{"Name": json.RawMessage(`"` + name + `"`)}
	}
	if _, err := m.CreateVolume(ctx, backend.ObjectCreateRequest{Name: "node2/data", Body: body("node2/data")}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateNetwork(ctx, backend.ObjectCreateRequest{Name: "node1/appnet", Body: body("node1/appnet")}); err != nil {
		t.Fatal(err)
	}
	vols, err := m.ListVolumes(ctx, backend.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := listedOn(t, vols.Volumes); len(got) != 1 || len(got["data"]) != 1 || got["data"][0] != "node2" {
		t.Errorf("volumes listed as %v; want data on node2", got)
	}
	nets, err := m.ListNetworks(ctx, backend.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := listedOn(t, nets)
	for _, n := range []string{"bridge", "host", "none"} {
		if len(got[n]) != 2 || got[n][0] == got[n][1] {
			t.Errorf("predefined network %s listed on %v; want once on each node", n, got[n])
		}
	}
	if len(got["appnet"]) != 1 || got["appnet"][0] != "node1" {
		t.Errorf("appnet listed on %v; want node1", got["appnet"])
	}
}

// TestListPlugins: docker plugin ls over the pool lists every engine's
// plugins with the node each is on (an empty list where none has one).
func TestListPlugins(t *testing.T) {
	env := newTaskEnvWith(t, 2, nil, func(i int, o *enginesim.Options) {
		if i == 1 {
			o.Plugins = []string{"vieux/sshfs:latest", "local/logs:1"}
		}
	})
	list, err := env.m.ListPlugins(t.Context(), "", nil)
	if err != nil || len(list) != 2 {
		t.Fatalf("plugins %v %v, want node2's two", list, err)
	}
	for i, want := range []string{"local/logs:1", "vieux/sshfs:latest"} {
		n, _ := list[i]["Node"].(*backend.NodeSummary)
		if list[i]["Name"] != want || n == nil || n.Name != "node2" || list[i]["Enabled"] != true {
			t.Errorf("plugin %d: %v, want %s on node2", i, list[i], want)
		}
	}
	none := newTaskEnv(t, 1)
	if list, err := none.m.ListPlugins(t.Context(), "", nil); err != nil || list == nil || len(list) != 0 {
		t.Errorf("plugins %v %v, want an empty list", list, err)
	}
}
