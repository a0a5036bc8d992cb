package services

import (
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

func TestEndpointPorts(t *testing.T) {
	web := store.Service{}
	web.ID, web.Spec.Name = "webid", "web"
	web.Endpoint.Ports = []swarm.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: swarm.PortConfigPublishModeIngress}}
	dyn := store.Service{}
	dyn.ID, dyn.Spec.Name = "dynid", "dyn"
	dyn.Endpoint.Ports = []swarm.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 30000, PublishMode: swarm.PortConfigPublishModeIngress}}
	others := []store.Service{web, dyn}

	if ep, err := endpoint("", nil, nil, others); err != nil || ep.Ports != nil {
		t.Errorf("no ports: %+v %v", ep, err)
	}
	// Taken by another service: swarm mode's words.
	spec := &swarm.EndpointSpec{Mode: swarm.ResolutionModeVIP, Ports: []swarm.PortConfig{{TargetPort: 80, PublishedPort: 8080}}}
	_, err := endpoint("", spec, nil, others)
	if !errdefs.IsInvalidArgument(err) || err.Error() != "rpc error: code = InvalidArgument desc = port '8080' is already in use by service 'web' (webid) as an ingress port" {
		t.Errorf("taken port: %v", err)
	}
	// The same service keeps its own port on update.
	if ep, err := endpoint("webid", spec, web.Endpoint.Ports, others); err != nil || ep.Ports[0].PublishedPort != 8080 {
		t.Errorf("update of the owner: %+v %v", ep, err)
	}
	// Host mode is not the mesh's; udp 8080 is another port than tcp 8080.
	spec = &swarm.EndpointSpec{Mode: swarm.ResolutionModeVIP, Ports: []swarm.PortConfig{
		{TargetPort: 80, PublishedPort: 8080, PublishMode: swarm.PortConfigPublishModeHost},
		{Protocol: "udp", TargetPort: 53, PublishedPort: 8080},
		{TargetPort: 443}, {TargetPort: 22},
	}}
	ep, err := endpoint("", spec, nil, others)
	if err != nil {
		t.Fatal(err)
	}
	want := []swarm.PortConfig{
		{Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: swarm.PortConfigPublishModeHost},
		{Protocol: "udp", TargetPort: 53, PublishedPort: 8080, PublishMode: swarm.PortConfigPublishModeIngress},
		{Protocol: "tcp", TargetPort: 443, PublishedPort: 30001, PublishMode: swarm.PortConfigPublishModeIngress}, // 30000 is dyn's
		{Protocol: "tcp", TargetPort: 22, PublishedPort: 30002, PublishMode: swarm.PortConfigPublishModeIngress},
	}
	if len(ep.Ports) != len(want) || ep.Spec.Mode != swarm.ResolutionModeVIP || len(ep.Spec.Ports) != 4 {
		t.Fatalf("endpoint %+v", ep)
	}
	for i := range want {
		if ep.Ports[i] != want[i] {
			t.Errorf("port %d: %+v, want %+v", i, ep.Ports[i], want[i])
		}
	}
	// An update keeps the published ports allocated before.
	prev := []swarm.PortConfig{{Protocol: "tcp", TargetPort: 443, PublishedPort: 31000, PublishMode: swarm.PortConfigPublishModeIngress}}
	if ep, err := endpoint("x", &swarm.EndpointSpec{Ports: []swarm.PortConfig{{TargetPort: 443}}}, prev, others); err != nil || ep.Ports[0].PublishedPort != 31000 {
		t.Errorf("update: %+v %v", ep, err)
	}
}
