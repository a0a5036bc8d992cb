package nodeapi

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
)

var recs = []Node{
	{ID: "abc111", Hostname: "alpha", Role: RoleManager},
	{ID: "abc222", Hostname: "beta", Role: RoleWorker},
	{ID: "def333", Hostname: "beta", Role: RoleWorker},
}

func noEngine(string) string { return "" }

func TestFind(t *testing.T) {
	engineNames := func(id string) string {
		if id == "def333" {
			return "gamma"
		}
		return ""
	}
	for _, tc := range []struct {
		ref, want string
		kind      error
	}{
		{ref: "abc111", want: "abc111"},
		{ref: "alpha", want: "abc111"},
		{ref: "def", want: "def333"},
		{ref: "gamma", want: "def333"}, // the name its engine reports
		{ref: "abc", kind: errdefs.ErrInvalidArgument},
		{ref: "beta", kind: errdefs.ErrInvalidArgument},
		{ref: "zzz", kind: errdefs.ErrNotFound},
	} {
		got, err := Find(recs, tc.ref, engineNames)
		if tc.kind != nil {
			if !errors.Is(err, tc.kind) {
				t.Errorf("Find(%q) = %v, want %v", tc.ref, err, tc.kind)
			}
			continue
		}
		if err != nil || got.ID != tc.want {
			t.Errorf("Find(%q) = %s, %v; want %s", tc.ref, got.ID, err, tc.want)
		}
	}
	if _, err := Find(recs, "beta", noEngine); err == nil || !strings.Contains(err.Error(), "ambiguous (2 matches found)") {
		t.Errorf("ambiguous message: %v", err)
	}
}

func TestCheckSpec(t *testing.T) {
	if err := CheckSpec(swarm.NodeSpec{Role: swarm.NodeRoleManager, Availability: swarm.NodeAvailabilityDrain}); err != nil {
		t.Fatal(err)
	}
	if err := CheckSpec(swarm.NodeSpec{Availability: "asleep"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad availability: %v", err)
	}
	if err := CheckSpec(swarm.NodeSpec{Role: "king"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad role: %v", err)
	}
}

func TestApply(t *testing.T) {
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	cur := Node{ID: "m", Role: RoleManager, Availability: "active", ClusterAddr: "10.0.0.1:2377", Version: 3, Labels: map[string]string{"old": "1"}}
	got, err := Apply(cur, 3, swarm.NodeSpec{Role: swarm.NodeRoleWorker, Annotations: swarm.Annotations{Labels: map[string]string{"zone": "a"}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Role != RoleWorker || got.ClusterAddr != "" || got.Availability != "active" || got.Version != 4 ||
		got.Labels["zone"] != "a" || got.Labels["old"] != "" || !got.UpdatedAt.Equal(now) {
		t.Fatalf("applied = %+v", got)
	}
	_, err = Apply(cur, 2, swarm.NodeSpec{}, now)
	if !errors.Is(err, ErrOutOfSequence) || !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("stale version: %v", err)
	}
	if !IsDemotion(cur, swarm.NodeSpec{Role: swarm.NodeRoleWorker}) || IsDemotion(got, swarm.NodeSpec{Role: swarm.NodeRoleWorker}) {
		t.Fatal("IsDemotion")
	}
	if !IsPromotion(got, swarm.NodeSpec{Role: swarm.NodeRoleManager}) || IsPromotion(cur, swarm.NodeSpec{Role: swarm.NodeRoleManager}) {
		t.Fatal("IsPromotion")
	}
}

func TestCanDemote(t *testing.T) {
	three := []Node{{ID: "a", Role: RoleManager}, {ID: "b", Role: RoleManager}, {ID: "c", Role: RoleManager}}
	up := Member{Reachable: true}
	for _, tc := range []struct {
		name    string
		recs    []Node
		members map[string]Member
		id      string
		ok      bool
	}{
		{"last manager", recs, map[string]Member{"abc111": up}, "abc111", false},
		{"all reachable", three, map[string]Member{"a": up, "b": up, "c": up}, "a", true},
		// Two voters left, one of them unreachable: no majority of 2.
		{"would lose quorum", three, map[string]Member{"a": up, "b": up, "c": {}}, "a", false},
		// The unreachable one itself may go: the two left are both up.
		{"demote the unreachable one", three, map[string]Member{"a": up, "b": up, "c": {}}, "c", true},
		{"learner", three, map[string]Member{"a": up, "b": {}, "c": {Learner: true}}, "c", true},
		{"not a member yet", three, map[string]Member{"a": up}, "b", true},
	} {
		err := CanDemote(tc.recs, tc.members, tc.id)
		if tc.ok != (err == nil) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err != nil && !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("%s: %v is not a failed precondition", tc.name, err)
		}
	}
}

func TestCanRemove(t *testing.T) {
	w := Node{ID: "w", Role: RoleWorker}
	for _, tc := range []struct {
		name         string
		n            Node
		ready, force bool
		ok           bool
	}{
		{"self", Node{ID: "me", Role: RoleWorker}, false, true, false},
		{"manager", Node{ID: "m", Role: RoleManager}, false, true, false},
		{"ready worker", w, true, false, false},
		{"ready worker forced", w, true, true, true},
		{"down worker", w, false, false, true},
	} {
		err := CanRemove(tc.n, tc.n.ID, "me", tc.ready, tc.force)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, errdefs.ErrFailedPrecondition)) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestToSwarm(t *testing.T) {
	r := Node{ID: "m1", Hostname: "joined-as", Role: RoleManager, Availability: "drain", Labels: map[string]string{"zone": "a"},
		Addr: "10.0.0.1", ClusterAddr: "10.0.0.1:2377", Version: 7}
	n := ToSwarm(r, Observed{})
	if n.Status.State != swarm.NodeStateDown || n.Status.Message != "heartbeat failure" || n.Description.Hostname != "joined-as" ||
		n.ManagerStatus == nil || n.ManagerStatus.Reachability != swarm.ReachabilityUnreachable || n.Version.Index != 7 ||
		n.Spec.Availability != swarm.NodeAvailabilityDrain || n.Spec.Labels["zone"] != "a" {
		t.Fatalf("down node = %+v", n)
	}
	n.Spec.Labels["zone"] = "changed"
	if r.Labels["zone"] != "a" {
		t.Fatal("the swarm node shares the record's labels")
	}
	info := &system.Info{Architecture: "x86_64", OSType: "linux", NCPU: 2, MemTotal: 1 << 30, Labels: []string{"disk=ssd"}}
	n = ToSwarm(r, Observed{Ready: true, Info: info, EngineVersion: "29.0.0", EngineName: "host1", Member: &Member{Leader: true, Reachable: true}, TLS: swarm.TLSInfo{TrustRoot: "PEM"}})
	if n.Status.State != swarm.NodeStateReady || n.Description.Hostname != "host1" || n.Description.Resources.NanoCPUs != 2e9 ||
		n.Description.Engine.Labels["disk"] != "ssd" || n.Description.Engine.EngineVersion != "29.0.0" ||
		!n.ManagerStatus.Leader || n.ManagerStatus.Reachability != swarm.ReachabilityReachable || n.Description.TLSInfo.TrustRoot != "PEM" {
		t.Fatalf("ready node = %+v", n)
	}
	if w := ToSwarm(Node{ID: "w", Role: RoleWorker}, Observed{}); w.ManagerStatus != nil {
		t.Fatal("a worker has a manager status")
	}
}

func TestSort(t *testing.T) {
	nodes := []swarm.Node{
		{ID: "2", Description: swarm.NodeDescription{Hostname: "b"}},
		{ID: "3", Description: swarm.NodeDescription{Hostname: "a"}},
		{ID: "1", Description: swarm.NodeDescription{Hostname: "b"}},
	}
	Sort(nodes)
	if nodes[0].ID != "3" || nodes[1].ID != "1" || nodes[2].ID != "2" {
		t.Fatalf("sorted = %v", nodes)
	}
}

func TestCanLeave(t *testing.T) {
	up := Member{Reachable: true}
	three := []Node{{ID: "a", Role: RoleManager}, {ID: "b", Role: RoleManager}, {ID: "c", Role: RoleManager}, {ID: "w", Role: RoleWorker}}
	const suffix = "The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message."
	for _, tc := range []struct {
		name    string
		recs    []Node
		members map[string]Member
		self    string
		force   bool
		want    string // "" when leaving is allowed
	}{
		{name: "worker", recs: three, members: map[string]Member{"a": up}, self: "w"},
		{name: "manager forced", recs: three, members: map[string]Member{"a": up}, self: "a", force: true},
		{name: "last manager", recs: three[:1], members: map[string]Member{"a": up}, self: "a",
			want: "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. "},
		{name: "quorum kept", recs: three, members: map[string]Member{"a": up, "b": up, "c": up}, self: "a",
			want: "You are attempting to leave the swarm on a node that is participating as a manager. " + suffix},
		{name: "quorum lost", recs: three, members: map[string]Member{"a": up, "b": up, "c": {}}, self: "a",
			want: "You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves 1 managers out of 3. Without a Raft quorum your swarm will be inaccessible. " + suffix},
		{name: "a left manager does not count", recs: append(slices.Clone(three[:2]), Node{ID: "c", Role: RoleManager, Left: true}), members: map[string]Member{"a": up, "b": up}, self: "a",
			want: "You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves 1 managers out of 2. Without a Raft quorum your swarm will be inaccessible. " + suffix},
	} {
		err := CanLeave(tc.recs, tc.members, tc.self, tc.force)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, errdefs.ErrUnavailable) || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.name, err, tc.want)
		}
	}
}
