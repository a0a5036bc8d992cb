package manager

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
)

// The routing mesh's network: swarm mode's "ingress", an overlay network
// every task of a service with ports published in ingress mode joins, on
// which each node's agent forwards the published ports to the tasks
// (internal/overlay's mesh). It is made on first need, when the first
// such task starts: a cluster that never publishes a port through the
// mesh keeps its 10.0.0.0/24 and has no devices for it on its nodes.

// ingressName and ingressSubnet are swarm mode's.
const ingressName = "ingress"

var ingressSubnet = netip.MustParsePrefix("10.0.0.0/24")

// ingressMu keeps two tasks started at once from making two ingress
// networks (tasks are started by the leader's orchestrator only).
var ingressMu sync.Mutex

// usesIngress says whether svc publishes a port through the routing mesh.
func usesIngress(svc swarm.Service) bool {
	es := svc.Spec.EndpointSpec
	if es == nil {
		return false
	}
	return slices.ContainsFunc(es.Ports, func(p swarm.PortConfig) bool {
		return p.PublishMode == "" || p.PublishMode == swarm.PortConfigPublishModeIngress
	})
}

// ensureIngress is the cluster's ingress network, recorded now if there
// is none yet.
func (m *Manager) ensureIngress(ctx context.Context) (store.Network, error) {
	nets, ok := m.clusterNetworks()
	if !ok {
		return store.Network{}, errOverlayNoCluster
	}
	ingressMu.Lock()
	defer ingressMu.Unlock()
	list, err := nets.List(ctx)
	if err != nil {
		return store.Network{}, errdefs.ErrUnavailable.WithMessage("reading the cluster's networks: " + err.Error())
	}
	if i := slices.IndexFunc(list, func(n store.Network) bool { return n.Ingress }); i >= 0 {
		// Every node forwards the mesh's ports, so every node needs its
		// address on the network (a node that joined since gets it now;
		// the engines' caches make this cheap where it is there).
		m.ensureEverywhere(ctx, list[i])
		return list[i], nil
	}
	subnet := ingressSubnet
	if used := m.usedSubnets(ctx, list); overlay.Overlaps(subnet, used) {
		if subnet, err = overlay.AllocateSubnet(used); err != nil {
			return store.Network{}, errdefs.ErrUnavailable.WithMessage(err.Error())
		}
	}
	nw := store.Network{ID: store.NewID(), Name: ingressName, Created: time.Now().UTC(), Driver: driverOverlay, Subnet: subnet.String(),
		VNI: nextVNI(list), Ingress: true, Labels: map[string]string{}, Slots: map[string]int{}}
	if err := nets.Create(ctx, nw); err != nil {
		return store.Network{}, errdefs.ErrUnavailable.WithMessage("recording the ingress network: " + err.Error())
	}
	m.log.Info("ingress network created (routing mesh)", "id", nw.ID, "subnet", nw.Subnet, "vni", nw.VNI)
	m.ensureEverywhere(ctx, nw)
	return nw, nil
}

// ingressKeepEvery is how often the leader checks that every node has its
// address on the ingress network.
var ingressKeepEvery = 5 * time.Second

// KeepIngress gives every node its share of the ingress network once the
// network exists, until ctx ends: a node that joins (or whose engine
// comes back) after the network was made forwards the mesh's ports too,
// without waiting for a publishing task to start. It returns at once where
// there are no cluster networks (shoal manage). Run it on the leader only.
func (m *Manager) KeepIngress(ctx context.Context) error {
	nets, ok := m.clusterNetworks()
	if !ok {
		return nil
	}
	t := time.NewTicker(ingressKeepEvery)
	defer t.Stop()
	for {
		if list, err := nets.List(ctx); err == nil {
			if i := slices.IndexFunc(list, func(n store.Network) bool { return n.Ingress }); i >= 0 {
				m.ensureEverywhere(ctx, list[i])
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
