package nodeapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
)

// FuzzNodeSpec decodes a node update body as the API does: a spec that
// CheckSpec accepts yields, through Apply, a node with a known role and
// availability; one it refuses is an invalid argument (400).
func FuzzNodeSpec(f *testing.F) {
	for _, s := range []string{
		`{"Role":"manager","Availability":"drain","Labels":{"zone":"eu"}}`, `{"Role":"worker"}`, `{}`,
		`{"Availability":"paused"}`, `{"Role":"Manager"}`, `{"Labels":null}`, `{"Role":1}`, `null`,
	} {
		f.Add(s)
	}
	cur := Node{ID: "n1", Role: RoleManager, Availability: string(swarm.NodeAvailabilityActive), Version: 3}
	f.Fuzz(func(t *testing.T, body string) {
		var spec swarm.NodeSpec
		if json.Unmarshal([]byte(body), &spec) != nil {
			return // the API answers a body that does not decode before CheckSpec
		}
		if err := CheckSpec(spec); err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("CheckSpec(%s): error %v is not an invalid argument", body, err)
			}
			return
		}
		n, err := Apply(cur, cur.Version, spec, time.Unix(0, 0))
		if err != nil {
			t.Fatalf("Apply(%s) at the current version: %v", body, err)
		}
		if n.Role != RoleManager && n.Role != RoleWorker {
			t.Fatalf("Apply(%s) gave role %q", body, n.Role)
		}
		switch swarm.NodeAvailability(n.Availability) {
		case swarm.NodeAvailabilityActive, swarm.NodeAvailabilityPause, swarm.NodeAvailabilityDrain:
		default:
			t.Fatalf("Apply(%s) gave availability %q", body, n.Availability)
		}
		if n.Version != cur.Version+1 || n.Role == RoleWorker && n.ClusterAddr != "" {
			t.Fatalf("Apply(%s) = %+v", body, n)
		}
	})
}

// FuzzFind checks that a node reference picks a node it names (ID,
// hostname, engine name or ID prefix), or is refused as not found or
// ambiguous.
func FuzzFind(f *testing.F) {
	recs := []Node{{ID: "abc123", Hostname: "node1"}, {ID: "abd456", Hostname: "node2"}, {ID: "xyz", Hostname: "abc123x"}}
	engineName := func(id string) string { return "engine-" + id }
	for _, s := range []string{"abc123", "abc", "ab", "node1", "engine-xyz", "", "nope", "abc123x", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		n, err := Find(recs, ref, engineName)
		if err != nil {
			if !errdefs.IsNotFound(err) && !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Find(%q): error %v is neither not found nor invalid argument", ref, err)
			}
			return
		}
		if n.ID != ref && n.Hostname != ref && engineName(n.ID) != ref && !strings.HasPrefix(n.ID, ref) {
			t.Fatalf("Find(%q) picked %+v, which it does not name", ref, n)
		}
	})
}
