package services

import (
	"slices"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

func TestPlanVIPs(t *testing.T) {
	nets := []store.Network{
		{ID: "n1", Name: "appnet", Subnet: "10.0.1.0/24", VIPs: map[string]string{"a": "10.0.1.240", "gone": "10.0.1.241", "rr": "10.0.1.242"}},
		{ID: "in", Name: "ingress", Ingress: true, Subnet: "10.0.0.0/24"},
	}
	svc := func(id, mode string, ports bool, targets ...string) store.Service {
		s := store.Service{Service: swarm.Service{ID: id}}
		if mode != "" || ports {
			s.Spec.EndpointSpec = &swarm.EndpointSpec{Mode: swarm.ResolutionMode(mode)}
		}
		if ports {
			s.Spec.EndpointSpec.Ports = []swarm.PortConfig{{TargetPort: 80, PublishedPort: 8080}}
		}
		for _, tg := range targets {
			s.Spec.TaskTemplate.Networks = append(s.Spec.TaskTemplate.Networks, swarm.NetworkAttachmentConfig{Target: tg})
		}
		return s
	}
	svcs := []store.Service{svc("a", "", false, "n1"), svc("b", "vip", true, "appnet"), svc("rr", "dnsrr", false, "n1")}
	got := planVIPs(nets, svcs)
	want := []vipChange{
		{Network: "n1", Service: "gone", Free: true},
		{Network: "n1", Service: "rr", Free: true},
		{Network: "n1", Service: "b"},
		{Network: "in", Service: "b"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("plan %+v, want %+v", got, want)
	}
	if ids := vipNetworks(svcs[1].Service, nets); !slices.Equal(ids, []string{"in", "n1"}) {
		t.Errorf("b's networks %v: ingress first, as swarm mode lists them", ids)
	}
}
