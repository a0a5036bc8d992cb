package services

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
)

// Virtual IPs, as swarm mode gives them: a service in vip mode (its
// EndpointSpec's Mode, vip when empty) gets one address on each cluster
// network it is on, and on the ingress network when it publishes a port
// there. The address is kept in the network's record (store.Network.VIPs),
// so that one compare-and-swap of that record allocates it, whichever
// manager does it; Endpoint.VirtualIPs is read from there. SyncVIPs
// allocates what a service lacks and frees what no service holds any more;
// every manager runs it after a change of its own and as the nodes ask
// for their state, so a network created later (ingress) or a manager
// stopped half way is caught up with. It only allocates for a service
// whose record names the network already, and reads the networks before
// the services: a VIP it frees is one no service record could be given.

// vipNetworks are the IDs of the networks of nets on which svc has a VIP,
// in swarm mode's order: ingress first, then its networks as listed.
func vipNetworks(svc swarm.Service, nets []store.Network) []string {
	if ep := svc.Spec.EndpointSpec; ep != nil && ep.Mode == swarm.ResolutionModeDNSRR {
		return nil
	}
	var out []string
	add := func(id string) {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	if ep := svc.Spec.EndpointSpec; ep != nil && slices.ContainsFunc(ep.Ports, isIngress) {
		if i := slices.IndexFunc(nets, func(n store.Network) bool { return n.Ingress }); i >= 0 {
			add(nets[i].ID)
		}
	}
	for _, a := range svc.Spec.TaskTemplate.Networks {
		if i := slices.IndexFunc(nets, func(n store.Network) bool { return n.ID == a.Target || n.Name == a.Target }); i >= 0 {
			add(nets[i].ID)
		}
	}
	return out
}

// vipChange allocates (or frees) the VIP of a service on a network.
type vipChange struct {
	Network, Service string
	Free             bool
}

// planVIPs are the changes that give each service of svcs its VIPs on
// nets and take away the VIPs of services gone or off a network.
func planVIPs(nets []store.Network, svcs []store.Service) []vipChange {
	var out []vipChange
	wanted := map[[2]string]bool{}
	for _, s := range svcs {
		for _, id := range vipNetworks(s.Service, nets) {
			wanted[[2]string{id, s.ID}] = true
		}
	}
	for _, n := range nets {
		for _, sid := range sortedKeys(n.VIPs) { // first: a freed address can be given again
			if !wanted[[2]string{n.ID, sid}] {
				out = append(out, vipChange{Network: n.ID, Service: sid, Free: true})
			}
		}
		for _, s := range svcs {
			if _, has := n.VIPs[s.ID]; !has && wanted[[2]string{n.ID, s.ID}] {
				out = append(out, vipChange{Network: n.ID, Service: s.ID})
			}
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// applyVIP makes one change to a network record (allocating is a no-op
// for a service that has a VIP there already). A full VIP share is an
// error wrapping overlay.ErrNoVIP: the service then has no VIP on that
// network, and its name answers its tasks' addresses there (as dnsrr).
func applyVIP(n *store.Network, c vipChange) error {
	if c.Free {
		delete(n.VIPs, c.Service)
		return nil
	}
	if _, ok := n.VIPs[c.Service]; ok {
		return nil
	}
	subnet, err := netip.ParsePrefix(n.Subnet)
	if err != nil {
		return fmt.Errorf("services: network %s: subnet %q: %w", n.Name, n.Subnet, err)
	}
	a, err := overlay.AllocateVIP(subnet, n.Slots, n.VIPs)
	if err != nil {
		return fmt.Errorf("services: service %s on network %s: %w", c.Service, n.Name, err)
	}
	if n.VIPs == nil {
		n.VIPs = map[string]string{}
	}
	n.VIPs[c.Service] = a.String()
	return nil
}

// SyncVIPs gives every service of st its VIPs and frees those of services
// gone or off a network (see above); it writes only what changes. A
// service left without a VIP because a share is full is in the error
// (errors.Is overlay.ErrNoVIP), the rest being done.
func SyncVIPs(ctx context.Context, st *store.Store) error {
	nets := store.NewNetworks(st)
	list, err := nets.List(ctx) // before the services: see above
	if err != nil || len(list) == 0 {
		return err
	}
	svcs, _, err := store.NewServices(st).List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	byNet := map[string][]vipChange{}
	for _, c := range planVIPs(list, svcs) {
		byNet[c.Network] = append(byNet[c.Network], c)
	}
	for _, id := range slices.Sorted(maps.Keys(byNet)) {
		var full []error
		err := nets.Modify(ctx, id, func(n *store.Network) error {
			full = nil // again on a retry
			for _, c := range byNet[id] {
				err := applyVIP(n, c)
				if errors.Is(err, overlay.ErrNoVIP) {
					full = append(full, err)
					continue
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("services: virtual IPs on network %s: %w", id, err))
		}
		errs = append(errs, full...)
	}
	return errors.Join(errs...)
}

// virtualIPs is svc's Endpoint.VirtualIPs as swarm mode shows them: the
// network's ID and the address with the subnet's prefix length.
func virtualIPs(svc swarm.Service, nets []store.Network) []swarm.EndpointVirtualIP {
	var out []swarm.EndpointVirtualIP
	for _, id := range vipNetworks(svc, nets) {
		n := nets[slices.IndexFunc(nets, func(n store.Network) bool { return n.ID == id })]
		a, aerr := netip.ParseAddr(n.VIPs[svc.ID])
		p, err := netip.ParsePrefix(n.Subnet)
		if aerr != nil || err != nil {
			continue
		}
		out = append(out, swarm.EndpointVirtualIP{NetworkID: n.ID, Addr: netip.PrefixFrom(a, p.Bits())})
	}
	return out
}

// withVIPs fills the Endpoint.VirtualIPs of list from the networks, with
// the endpoint spec beside them as swarm mode shows it.
func (b *Backend) withVIPs(ctx context.Context, list []swarm.Service) error {
	nets, err := b.networks.List(ctx)
	if err != nil {
		return fmt.Errorf("services: networks: %w", err)
	}
	if len(nets) == 0 {
		return nil
	}
	for i := range list {
		s := &list[i]
		s.Endpoint.VirtualIPs = virtualIPs(*s, nets)
		if len(s.Endpoint.VirtualIPs) > 0 && s.Spec.EndpointSpec != nil {
			s.Endpoint.Spec = *s.Spec.EndpointSpec
		}
	}
	return nil
}

// syncVIPs runs SyncVIPs after a change of this manager's, so that
// service inspect shows the VIPs at once; a failure is caught up with by
// the next run (see above).
func (b *Backend) syncVIPs(ctx context.Context) {
	if b.st == nil {
		return
	}
	err := SyncVIPs(ctx, b.st)
	switch {
	case errors.Is(err, overlay.ErrNoVIP):
		b.log.Warn("a service has no virtual IP where the network's VIP share is full: its name answers its tasks' addresses there", "error", err)
	case err != nil:
		b.log.Warn("virtual IPs not synced yet", "error", err)
	}
}
