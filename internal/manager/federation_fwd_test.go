package manager_test

import (
	"net/http"
	"testing"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// The shoal above prefers the inner node that holds a create's image, as
// it does for an engine of its own: the member's other node would have to
// pull it (and fail, for an image built or loaded there).
func TestFederationPlacesByLeafImages(t *testing.T) {
	e1 := sim(t, enginesim.Options{Name: "e1", NCPU: 2, MemTotal: 2 << 30})
	e2 := sim(t, enginesim.Options{Name: "e2", NCPU: 2, MemTotal: 2 << 30, Images: 2})
	siteA := startLevel(t, "siteA", nil, e1.Addr(), e2.Addr())
	top := startLevel(t, "top", nil, siteA.addr())
	for _, name := range []string{"i1", "i2", "i3"} {
		if code, msg := top.create(t, name, map[string]any{"Image": "sim/image-1:latest"}); code != http.StatusCreated {
			t.Fatalf("create %s: %d %s", name, code, msg)
		}
	}
	if running(e2) != 3 || running(e1) != 0 {
		t.Errorf("e1 holds %d, e2 %d; want all 3 on e2, which has the image", running(e1), running(e2))
	}
}

// Under manage a member's own labels are its node labels for services at
// the shoal above (spread=node.labels.region), and a member leaves alone
// the task containers a shoal above made on it: its orchestrator would
// remove them as orphans of tasks it has no record of.
func TestFederationTaskRuntime(t *testing.T) {
	e1 := sim(t, enginesim.Options{Name: "e1", NCPU: 2, MemTotal: 2 << 30})
	siteA := startLevel(t, "siteA", map[string]string{"region": "eu"}, e1.Addr())
	top := startLevel(t, "top", nil, siteA.addr())
	nodes, err := top.mgr.TaskRuntime().Nodes(t.Context())
	if err != nil || len(nodes) != 1 || nodes[0].Labels["region"] != "eu" {
		t.Fatalf("top's task nodes %+v (%v): want siteA with node label region=eu", nodes, err)
	}
	own := siteA.pool.Engines()[0].ID
	for name, node := range map[string]string{"mine": own, "above": nodes[0].ID} {
		labels := map[string]string{"com.docker.swarm.task.id": name, "com.docker.swarm.node.id": node}
		if code, msg := siteA.create(t, name, map[string]any{"Image": "busybox", "Labels": labels}); code != http.StatusCreated {
			t.Fatalf("create %s: %d %s", name, code, msg)
		}
	}
	obs, _, err := siteA.mgr.TaskRuntime().Containers(t.Context())
	if err != nil || len(obs) != 1 || obs[0].TaskID != "mine" {
		t.Errorf("siteA's task containers %+v (%v): want only its own", obs, err)
	}
}
