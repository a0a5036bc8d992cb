package manager

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/scheduler"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

func TestMatchNetwork(t *testing.T) {
	list := []store.Network{{ID: "abc111", Name: "front"}, {ID: "abc222", Name: "abc111x"}, {ID: "zzz", Name: "abc"}}
	cases := []struct {
		ref, want string
		found     bool
		ambiguous bool
	}{
		{"abc111", "abc111", true, false},
		{"front", "abc111", true, false},
		{"abc", "zzz", true, false}, // a name before an ID prefix
		{"abc2", "abc222", true, false},
		{"ab", "", false, true},
		{"nope", "", false, false},
	}
	for _, c := range cases {
		got, found, err := matchNetwork(list, c.ref)
		if found != c.found || got.ID != c.want || errdefs.IsInvalidArgument(err) != c.ambiguous {
			t.Errorf("%s: %s %v %v", c.ref, got.ID, found, err)
		}
	}
}

func TestCheckCreate(t *testing.T) {
	ok := createBody{Name: "appnet", Driver: "overlay", Attachable: true}
	if err := checkCreate(ok); err != nil {
		t.Errorf("a plain overlay network: %v", err)
	}
	bad := []createBody{
		{Name: ""}, {Name: "a/b"}, {Name: "x", Ingress: true}, {Name: "x", EnableIPv6: true},
	}
	for _, b := range bad {
		if err := checkCreate(b); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%+v: %v, want invalid argument", b, err)
		}
	}
	var gw createBody
	_ = json.Unmarshal([]byte(`{"Name":"x","IPAM":{"Config":[{"Subnet":"10.1.0.0/24","Gateway":"10.1.0.1"}]}}`), &gw)
	if err := checkCreate(gw); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a gateway: %v, want invalid argument (it is per node)", err)
	}
}

func TestNextVNI(t *testing.T) {
	if v := nextVNI(nil); v != overlay.FirstVNI {
		t.Errorf("first VNI %d", v)
	}
	if v := nextVNI([]store.Network{{VNI: 4100}, {VNI: 4098}}); v != 4101 {
		t.Errorf("next VNI %d, want 4101", v)
	}
}

// TestNetworkObject checks swarm mode's shape of an overlay network.
func TestNetworkObject(t *testing.T) {
	nw := store.Network{ID: "n1", Name: "appnet", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Subnet: "10.0.1.0/24", VNI: 4097, Attachable: true}
	o := networkObject(nw, map[string]overlay.Endpoint{"c1": {Name: "web.1", IPv4Address: "10.0.1.2/24"}})
	var got struct {
		Name, Id, Scope, Driver, Created string
		Attachable, Internal, Ingress    bool
		IPAM                             struct {
			Driver string
			Config []map[string]string
		}
		Containers map[string]overlay.Endpoint
		Options    map[string]string
		Labels     map[string]string
	}
	raw, _ := json.Marshal(o)
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "appnet" || got.Id != "n1" || got.Scope != "swarm" || got.Driver != "overlay" || !got.Attachable || got.Created != "2026-01-02T03:04:05Z" {
		t.Errorf("shape: %s", raw)
	}
	if !reflect.DeepEqual(got.IPAM.Config, []map[string]string{{"Subnet": "10.0.1.0/24", "Gateway": "10.0.1.1"}}) || got.IPAM.Driver != "default" {
		t.Errorf("IPAM: %+v", got.IPAM)
	}
	if got.Options["com.docker.network.driver.overlay.vxlanid_list"] != "4097" || got.Labels == nil || got.Containers["c1"].Name != "web.1" {
		t.Errorf("options, labels, containers: %s", raw)
	}
	for _, k := range []string{"EnableIPv6", "ConfigFrom", "ConfigOnly"} {
		if _, ok := o[k]; !ok {
			t.Errorf("no %s", k)
		}
	}
}

func TestNetworkMatches(t *testing.T) {
	nw := store.Network{ID: "abc123", Name: "appnet", Labels: map[string]string{"team": "a"}}
	cases := []struct {
		f    backend.Filters
		want bool
	}{
		{nil, true},
		{backend.Filters{"name": {"app"}}, true},
		{backend.Filters{"name": {"other"}}, false},
		{backend.Filters{"id": {"abc"}}, true},
		{backend.Filters{"driver": {"bridge"}}, false},
		{backend.Filters{"driver": {"overlay"}, "scope": {"swarm"}}, true},
		{backend.Filters{"scope": {"local"}}, false},
		{backend.Filters{"type": {"builtin"}}, false},
		{backend.Filters{"label": {"team=a"}}, true},
		{backend.Filters{"label": {"team=b"}}, false},
		{backend.Filters{"label": {"team"}}, true},
	}
	for _, c := range cases {
		if got := networkMatches(nw, c.f); got != c.want {
			t.Errorf("%v: %v, want %v", c.f, got, c.want)
		}
	}
}

func TestEngineNetworkRequest(t *testing.T) {
	nw := store.Network{ID: "abcdefghijklmnopqrstuvwxy", Name: "appnet", Subnet: "10.0.1.0/24", Labels: map[string]string{"x": "y"}}
	gw, rng, _ := overlay.Slot(netip.MustParsePrefix(nw.Subnet), 1)
	raw, _ := json.Marshal(engineNetworkRequest(nw, gw, rng))
	want := `{"CheckDuplicate":true,"Driver":"bridge","IPAM":{"Config":[{"Gateway":"10.0.1.17","IPRange":"10.0.1.16/28","Subnet":"10.0.1.0/24"}],"Driver":"default"},"Internal":false,` +
		`"Labels":{"com.shoal.overlay.network":"abcdefghijklmnopqrstuvwxy","x":"y"},"Name":"appnet",` +
		`"Options":{"com.docker.network.bridge.name":"shvabcdefghij","com.docker.network.driver.mtu":"1450"}}`
	if string(raw) != want {
		t.Errorf("engine network request\n%s\nwant\n%s", raw, want)
	}
	if !backsClusterNetwork(backend.Object{"Labels": json.RawMessage(`{"com.shoal.overlay.network":"abc"}`)}) ||
		backsClusterNetwork(backend.Object{"Labels": json.RawMessage(`{}`)}) {
		t.Error("backing engine networks are not told from others")
	}
}

// storeCluster is a built-in cluster that only has a store.
type storeCluster struct {
	Cluster
	st *store.Store
}

func (c storeCluster) Store() *store.Store { return c.st }

func TestOverlayRefusedWithoutTheBuiltInCluster(t *testing.T) {
	m := New(Config{})
	_, err := m.CreateNetwork(t.Context(), backend.ObjectCreateRequest{Name: "appnet", Body: backend.Object{"Name": mustJSON("appnet"), "Driver": mustJSON("overlay")}})
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), `"shoal init"`) {
		t.Errorf("-d overlay under manage: %v, want 503 naming the built-in cluster", err)
	}
	cb := &backend.ContainerConfig{HostConfig: &backend.HostConfig{NetworkMode: "appnet"}}
	if att, err := m.clusterAttachment(t.Context(), cb, &scheduler.Request{NetworkMode: "appnet"}); att != nil || err != nil {
		t.Errorf("a create under manage is attached: %v %v", att, err)
	}
	var svc swarm.Service
	svc.Spec.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: "appnet"}}
	req := container.CreateRequest{HostConfig: &container.HostConfig{}}
	if extra, err := m.attachTaskNetworks(t.Context(), nil, svc, store.Task{}, &req); extra != nil || err != nil || req.HostConfig.NetworkMode != "" {
		t.Errorf("a task under manage is attached: %v %v %q", extra, err, req.HostConfig.NetworkMode)
	}
}

func TestClusterAttachment(t *testing.T) {
	st := storetest.Open(t)
	nets := store.NewNetworks(st)
	ctx := t.Context()
	for _, n := range []store.Network{
		{ID: "idattach00000000000000000", Name: "appnet", Subnet: "10.0.1.0/24", VNI: 4097, Attachable: true},
		{ID: "idclosed00000000000000000", Name: "backend", Subnet: "10.0.2.0/24", VNI: 4098},
	} {
		if err := nets.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	m := New(Config{Cluster: storeCluster{st: st}, Pool: engine.NewPool(engine.Options{}, nil)})
	req := &scheduler.Request{NetworkMode: "idattach", Networks: []string{"idattach"}}
	cb := &backend.ContainerConfig{HostConfig: &backend.HostConfig{NetworkMode: "idattach"}}
	att, err := m.clusterAttachment(ctx, cb, req)
	if err != nil || att == nil || att.nw.Name != "appnet" || req.NetworkMode != "" || len(req.Networks) != 0 {
		t.Errorf("attachable network by ID prefix: %+v %v, placement %+v", att, err, req)
	}
	cb.HostConfig.NetworkMode = "backend"
	if _, err := m.clusterAttachment(ctx, cb, &scheduler.Request{}); !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "not manually attachable") {
		t.Errorf("a network not attachable: %v, want swarm mode's refusal", err)
	}
	cb.HostConfig.NetworkMode = "mynet"
	if att, err := m.clusterAttachment(ctx, cb, &scheduler.Request{NetworkMode: "mynet"}); att != nil || err != nil {
		t.Errorf("an engine network is taken for a cluster one: %v %v", att, err)
	}
	if _, err := m.connectName(ctx, nil, "backend"); !errdefs.IsPermissionDenied(err) {
		t.Errorf("network connect to a network not attachable: %v", err)
	}
	if name, err := m.connectName(ctx, nil, "mynet"); name != "mynet" || err != nil {
		t.Errorf("network connect to an engine network: %q %v", name, err)
	}
	if obj, found, err := m.InspectClusterNetwork(ctx, "appnet"); err != nil || !found || obj.String("Scope") != "swarm" {
		t.Errorf("inspect: %v %v %v", obj, found, err)
	}
	if _, found, err := m.InspectClusterNetwork(ctx, "bridge"); found || err != nil {
		t.Errorf("inspect of an engine network answered as a cluster one: %v %v", found, err)
	}
}

func TestPruneKeepsClusterNetworks(t *testing.T) {
	in := backend.Filters{"label!": {"keep"}, "until": {"1h"}}
	got := keepClusterNetworks(in)
	if !reflect.DeepEqual(got, backend.Filters{"label!": {"keep", overlay.LabelNetwork}, "until": {"1h"}}) || len(in["label!"]) != 1 {
		t.Errorf("prune filters %v (given %v)", got, in)
	}
	if enc := keepClusterNetworks(nil).Encode(); enc != `{"label!":{"com.shoal.overlay.network":true}}` {
		t.Errorf("encoded %s", enc)
	}
}

// A network's task containers whose tasks are gone or no longer desired
// running do not hold it (docker stack rm removes the services, then at
// once the networks, while the tasks still stop); a task still wanted
// or a plain container does.
func TestTaskLeaving(t *testing.T) {
	st := storetest.Open(t)
	c := startCluster(t, 1, nil, 0)
	m := New(Config{Cluster: storeCluster{st: st}, Pool: c.pool})
	e := c.pool.Engines()[0]
	ctx := t.Context()
	tasks := store.NewTasks(st)
	put := func(id, service string, desired swarm.TaskState) {
		tk := store.Task{}
		tk.ID, tk.ServiceID, tk.DesiredState = id, service, desired
		if err := tasks.Put(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.NewServices(st).Create(ctx, "svckept", swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "kept"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	put("taskwanted", "svckept", swarm.TaskStateRunning)
	put("taskshutdown", "svckept", swarm.TaskStateShutdown)
	put("taskorphan", "svcremoved", swarm.TaskStateRunning) // its service removed, not yet marked
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{"wanted", map[string]string{labelTaskID: "taskwanted"}, false},
		{"shutdown", map[string]string{labelTaskID: "taskshutdown"}, true},
		{"gone", map[string]string{labelTaskID: "taskgone"}, true},
		{"service removed", map[string]string{labelTaskID: "taskorphan"}, true},
		{"plain", map[string]string{"x": "y"}, false},
	} {
		id, err := c.sims[0].Create(enginesim.CreateSpec{Image: "busybox", Labels: tc.labels})
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the cache holds "+tc.name, func() bool { return e.Container(id) != nil })
		if got := m.taskLeaving(ctx, e, id, "x"); got != tc.want {
			t.Errorf("%s: leaving %v, want %v", tc.name, got, tc.want)
		}
	}
	if m.taskLeaving(ctx, e, "unknown", "plain") {
		t.Error("a container the cache does not hold is taken as leaving")
	}
	// not cached yet: its name tells its task
	if m.taskLeaving(ctx, e, "uncached", "/web.1.short") {
		t.Error("an uncached container whose name holds no task ID is taken as leaving")
	}
	put("uncachedtask0000000000000", "svcremoved", swarm.TaskStateRunning)
	put("uncachedwant0000000000000", "svckept", swarm.TaskStateRunning)
	if !m.taskLeaving(ctx, e, "uncached", "/web.2.uncachedtask0000000000000") {
		t.Error("an uncached task container of a removed service, known by its name, holds the network")
	}
	if m.taskLeaving(ctx, e, "uncached", "/web.2.uncachedwant0000000000000") {
		t.Error("an uncached task container still wanted is taken as leaving")
	}
}
