package services

import (
	"cmp"
	"context"
	"fmt"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// Published ports as swarm mode shows and allocates them: Endpoint.Spec
// is the spec's EndpointSpec, Endpoint.Ports its ports with the published
// port of each ingress-mode port (the routing mesh's) that gave none
// allocated from swarm mode's dynamic range. An ingress port is the
// cluster's: two services cannot publish the same one.

// The dynamic range of published ports (swarm mode's).
const (
	dynamicPortStart = 30000
	dynamicPortEnd   = 32767
)

func isIngress(p swarm.PortConfig) bool {
	return p.PublishMode == "" || p.PublishMode == swarm.PortConfigPublishModeIngress
}

type portKey struct {
	proto string
	port  uint32
}

func keyOf(p swarm.PortConfig) portKey {
	return portKey{cmp.Or(string(p.Protocol), "tcp"), p.PublishedPort}
}

// endpoint is the Endpoint of service self (ID) with spec ep: its ports,
// the published ports swarm mode would give those that have none (the
// ones prev, self's current ports, gave them are kept), checked against
// the ingress ports of the other services.
func endpoint(self string, ep *swarm.EndpointSpec, prev []swarm.PortConfig, others []store.Service) (swarm.Endpoint, error) {
	if ep == nil || len(ep.Ports) == 0 {
		return swarm.Endpoint{}, nil
	}
	used := map[portKey]store.Service{}
	for _, s := range others {
		if s.ID == self {
			continue
		}
		for _, p := range s.Endpoint.Ports {
			if isIngress(p) && p.PublishedPort != 0 {
				used[keyOf(p)] = s
			}
		}
	}
	out := swarm.Endpoint{Spec: *ep}
	mine := map[portKey]bool{}
	for _, p := range ep.Ports {
		p.Protocol = cmp.Or(p.Protocol, "tcp")
		p.PublishMode = cmp.Or(p.PublishMode, swarm.PortConfigPublishModeIngress)
		if isIngress(p) && p.PublishedPort != 0 {
			if s, ok := used[keyOf(p)]; ok {
				return swarm.Endpoint{}, invalidArg("port '%d' is already in use by service '%s' (%s) as an ingress port", p.PublishedPort, s.Spec.Name, s.ID)
			}
			mine[keyOf(p)] = true
		}
		out.Ports = append(out.Ports, p)
	}
	for i, p := range out.Ports {
		if !isIngress(p) || p.PublishedPort != 0 {
			continue
		}
		port, err := allocatePort(p, prev, used, mine)
		if err != nil {
			return swarm.Endpoint{}, err
		}
		out.Ports[i].PublishedPort = port
		mine[portKey{string(p.Protocol), port}] = true
	}
	return out, nil
}

// allocatePort gives p a published port: the one prev gave the same
// target, or else the first free of the dynamic range.
func allocatePort(p swarm.PortConfig, prev []swarm.PortConfig, used map[portKey]store.Service, mine map[portKey]bool) (uint32, error) {
	free := func(port uint32) bool {
		k := portKey{string(p.Protocol), port}
		_, taken := used[k]
		return !taken && !mine[k]
	}
	for _, q := range prev {
		if isIngress(q) && q.TargetPort == p.TargetPort && cmp.Or(q.Protocol, "tcp") == p.Protocol && q.PublishedPort != 0 && free(q.PublishedPort) {
			return q.PublishedPort, nil
		}
	}
	for port := uint32(dynamicPortStart); port <= dynamicPortEnd; port++ {
		if free(port) {
			return port, nil
		}
	}
	return 0, invalidArg("failed to allocate a published port for %d/%s: the range %d-%d is exhausted", p.TargetPort, p.Protocol, dynamicPortStart, dynamicPortEnd)
}

// endpointFor is the Endpoint of self with spec ep among the services
// recorded now.
func (b *Backend) endpointFor(ctx context.Context, self string, ep *swarm.EndpointSpec, prev []swarm.PortConfig) (swarm.Endpoint, error) {
	if ep == nil || len(ep.Ports) == 0 {
		return swarm.Endpoint{}, nil
	}
	list, _, err := b.services.List(ctx)
	if err != nil {
		return swarm.Endpoint{}, fmt.Errorf("services: list: %w", err)
	}
	return endpoint(self, ep, prev, list)
}
