package services

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/network"
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

// claimTTL is how long a claim holds a port that its service's record
// does not show yet (a create or update in flight on some manager).
const claimTTL = time.Minute

// claimEndpoint is the Endpoint of self with spec ep, checked against the
// ingress ports of the services recorded now and against the ports other
// managers are claiming at this moment, and claims its ingress ports for
// self in the cluster's port table in one compare-and-swap: of two
// services given one port at once through two managers, the second to
// claim it is refused.
//
// The services are read after the table, on each try: a claim leaves the
// table only once its service's record shows the port (inFlight), so a
// list read after the table always has either the claim or the record.
// A list read before it could have neither: another manager may drop a
// claim whose record appeared since, and the port looked free.
func (b *Backend) claimEndpoint(ctx context.Context, self string, ep *swarm.EndpointSpec, prev []swarm.PortConfig) (swarm.Endpoint, error) {
	if ep == nil || len(ep.Ports) == 0 {
		return swarm.Endpoint{}, nil
	}
	now := b.now()
	var out swarm.Endpoint
	err := b.ports.Modify(ctx, func(t *store.PortTable) error {
		others, _, err := b.services.List(ctx)
		if err != nil {
			return fmt.Errorf("services: list: %w", err)
		}
		in := inFlight(t, self, others, now)
		e, err := endpoint(self, ep, prev, append(slices.Clone(others), in...))
		if err != nil {
			return err
		}
		for _, p := range e.Ports {
			if isIngress(p) && p.PublishedPort != 0 {
				t.Claims[claimKey(keyOf(p))] = store.PortClaim{Service: self, At: now}
			}
		}
		out = e
		return nil
	})
	return out, err
}

// inFlight drops from t self's claims and those its owner's record now
// shows (or that are older than claimTTL), and returns the others as
// services that publish them, for endpoint to check against.
func inFlight(t *store.PortTable, self string, others []store.Service, now time.Time) []store.Service {
	byID := make(map[string]store.Service, len(others))
	for _, s := range others {
		byID[s.ID] = s
	}
	var out []store.Service
	for key, c := range t.Claims {
		owner, known := byID[c.Service]
		if c.Service == self || known && publishes(owner, key) || now.Sub(c.At) > claimTTL {
			delete(t.Claims, key)
			continue
		}
		proto, port, ok := parseClaimKey(key)
		if !ok {
			delete(t.Claims, key)
			continue
		}
		if !known {
			owner.ID, owner.Spec.Name = c.Service, c.Service
		}
		owner.Endpoint.Ports = []swarm.PortConfig{{Protocol: network.IPProtocol(proto), PublishedPort: port, PublishMode: swarm.PortConfigPublishModeIngress}}
		out = append(out, owner)
	}
	return out
}

// releaseClaims drops self's claims (its create or update failed; what
// its record still publishes the record guards).
func (b *Backend) releaseClaims(ctx context.Context, self string) {
	err := b.ports.Modify(context.WithoutCancel(ctx), func(t *store.PortTable) error {
		for key, c := range t.Claims {
			if c.Service == self {
				delete(t.Claims, key)
			}
		}
		return nil
	})
	if err != nil {
		b.log.Warn("services: releasing published port claims", "service", self, "err", err)
	}
}

func publishes(s store.Service, key string) bool {
	return slices.ContainsFunc(s.Endpoint.Ports, func(p swarm.PortConfig) bool {
		return isIngress(p) && p.PublishedPort != 0 && claimKey(keyOf(p)) == key
	})
}

func claimKey(k portKey) string { return fmt.Sprintf("%s/%d", k.proto, k.port) }

func parseClaimKey(key string) (proto string, port uint32, ok bool) {
	proto, num, ok := strings.Cut(key, "/")
	n, err := strconv.ParseUint(num, 10, 16)
	return proto, uint32(n), ok && err == nil && n > 0
}
