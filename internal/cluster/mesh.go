package cluster

import (
	"cmp"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
)

// meshState is the routing mesh every node programs (nil while the
// cluster has no ingress network): each port a service publishes in
// ingress mode, forwarded to the addresses its running tasks have on the
// ingress network (the names of that network, records, know them as
// tasks.<service>: they follow the tasks within a second or two).
func meshState(nets []store.Network, svcs []store.Service, records map[string]map[string][]string) *overlay.Mesh {
	i := slices.IndexFunc(nets, func(n store.Network) bool { return n.Ingress })
	if i < 0 {
		return nil
	}
	in := nets[i]
	m := &overlay.Mesh{Bridge: overlay.BridgeName(in.ID), Ports: []overlay.Published{}}
	names := records[in.ID]
	for _, s := range svcs {
		backends := names["tasks."+strings.ToLower(s.Spec.Name)]
		for _, p := range ingressPorts(s) {
			m.Ports = append(m.Ports, overlay.Published{Protocol: cmp.Or(string(p.Protocol), "tcp"),
				Port: p.PublishedPort, Target: p.TargetPort, Backends: slices.Clone(backends)})
		}
	}
	slices.SortFunc(m.Ports, func(a, b overlay.Published) int {
		return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
	})
	return m
}

// ingressPorts are the ports s publishes through the mesh, with their
// published ports (Endpoint.Ports, where the allocated ones are; the
// spec's for a record written without them).
func ingressPorts(s store.Service) []swarm.PortConfig {
	ports := s.Endpoint.Ports
	if len(ports) == 0 && s.Spec.EndpointSpec != nil {
		ports = s.Spec.EndpointSpec.Ports
	}
	var out []swarm.PortConfig
	for _, p := range ports {
		if (p.PublishMode == "" || p.PublishMode == swarm.PortConfigPublishModeIngress) && p.PublishedPort != 0 && p.TargetPort != 0 {
			out = append(out, p)
		}
	}
	return out
}
