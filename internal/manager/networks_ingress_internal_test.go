package manager

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

func TestUsesIngress(t *testing.T) {
	svc := func(ports ...swarm.PortConfig) swarm.Service {
		var s swarm.Service
		if ports != nil {
			s.Spec.EndpointSpec = &swarm.EndpointSpec{Ports: ports}
		}
		return s
	}
	for _, c := range []struct {
		svc  swarm.Service
		want bool
	}{
		{svc(), false},
		{svc(swarm.PortConfig{TargetPort: 80, PublishMode: swarm.PortConfigPublishModeHost}), false},
		{svc(swarm.PortConfig{TargetPort: 80}), true}, // ingress is the default
		{svc(swarm.PortConfig{TargetPort: 80, PublishMode: swarm.PortConfigPublishModeIngress}), true},
	} {
		if got := usesIngress(c.svc); got != c.want {
			t.Errorf("usesIngress(%+v) = %v", c.svc.Spec.EndpointSpec, got)
		}
	}
}

// TestEnsureIngress: the ingress network is recorded once, as swarm
// mode's (10.0.0.0/24, Ingress), and cannot be removed while a service
// publishes through it.
func TestEnsureIngress(t *testing.T) {
	st := storetest.Open(t)
	ctx := t.Context()
	if err := store.NewNetworks(st).Create(ctx, store.Network{ID: "idapp0000000000000000000a", Name: "appnet", Subnet: "10.0.1.0/24", VNI: 4097}); err != nil {
		t.Fatal(err)
	}
	m := New(Config{Cluster: storeCluster{st: st}, Pool: engine.NewPool(engine.Options{}, nil)})
	in, err := m.ensureIngress(ctx)
	if err != nil || in.Name != "ingress" || !in.Ingress || in.Subnet != "10.0.0.0/24" || in.VNI != 4098 {
		t.Fatalf("ingress %+v %v", in, err)
	}
	if again, err := m.ensureIngress(ctx); err != nil || again.ID != in.ID {
		t.Errorf("a second ingress network: %+v %v", again, err)
	}
	obj, found, err := m.InspectClusterNetwork(ctx, "ingress")
	var shown struct{ Ingress bool }
	_ = json.Unmarshal(obj["Ingress"], &shown.Ingress)
	if err != nil || !found || !shown.Ingress {
		t.Errorf("inspect ingress: %v %v %v", obj, found, err)
	}
	var spec swarm.ServiceSpec
	spec.Name, spec.EndpointSpec = "web", &swarm.EndpointSpec{Ports: []swarm.PortConfig{{TargetPort: 80, PublishedPort: 8080}}}
	if _, err := store.NewServices(st).Create(ctx, "websvcid", spec, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.RemoveClusterNetwork(ctx, "ingress"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ingress removed while a service publishes through it: %v", err)
	}
}
