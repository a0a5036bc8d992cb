package cluster

import (
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
)

func TestMeshState(t *testing.T) {
	app := store.Network{ID: "appnetid0000000000000000a", Name: "appnet"}
	if m := meshState([]store.Network{app}, nil, nil); m != nil {
		t.Errorf("no ingress network: %+v", m)
	}
	in := store.Network{ID: "ingressid0000000000000000", Name: "ingress", Ingress: true}
	svc := func(name string, ep swarm.Endpoint, spec *swarm.EndpointSpec) store.Service {
		var s store.Service
		s.Spec.Name, s.Spec.EndpointSpec, s.Endpoint = name, spec, ep
		return s
	}
	svcs := []store.Service{
		svc("Web", swarm.Endpoint{Ports: []swarm.PortConfig{
			{Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: swarm.PortConfigPublishModeIngress},
			{Protocol: "tcp", TargetPort: 443, PublishedPort: 8443, PublishMode: swarm.PortConfigPublishModeHost}, // host mode: not the mesh's
		}}, nil),
		// A record without Endpoint.Ports: the spec's published ports.
		svc("dns", swarm.Endpoint{}, &swarm.EndpointSpec{Ports: []swarm.PortConfig{{Protocol: "udp", TargetPort: 53, PublishedPort: 5353}}}),
		svc("quiet", swarm.Endpoint{}, nil),
	}
	records := map[string]map[string][]string{
		in.ID:  {"tasks.web": {"10.0.0.5", "10.0.0.20"}, "web": {"10.0.0.5", "10.0.0.20"}},
		app.ID: {"tasks.dns": {"10.0.1.5"}},
	}
	got := meshState([]store.Network{app, in}, svcs, records)
	want := &overlay.Mesh{Bridge: overlay.BridgeName(in.ID), Ports: []overlay.Published{
		{Protocol: "tcp", Port: 8080, Target: 80, Backends: []string{"10.0.0.5", "10.0.0.20"}},
		{Protocol: "udp", Port: 5353, Target: 53}, // no task on the ingress network yet
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mesh:\n%+v\nwant\n%+v", got, want)
	}
}

func TestReady(t *testing.T) {
	for h, want := range map[string]bool{"": true, "none": true, "healthy": true, "starting": false, "unhealthy": false} {
		if ready(h) != want {
			t.Errorf("ready(%q) = %v", h, !want)
		}
	}
}
