package cluster

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/services"
	"github.com/shoal-dev/shoal/internal/store"
)

// Service virtual IPs on the nodes: each network a node is told of
// carries the VIPs of its services (from the network's record), each with
// the addresses of the service's running, ready tasks there (its
// tasks.<service> name), and the service's name and aliases answer the
// VIP instead of the tasks (internal/overlay/vip.go programs the rest).

// syncVIPs allocates and frees VIPs (services.SyncVIPs) as the records
// are refreshed: it catches up with what a create, update or removal on
// some manager left undone (a manager stopped half way, the ingress
// network made after the service).
func (c *Cluster) syncVIPs(ctx context.Context) {
	if err := services.SyncVIPs(ctx, c.store); err != nil {
		c.log.Debug("overlay: service VIPs", "err", err) // every second: the API's calls warn
	}
}

// withVIPs gives on the VIPs of nw's services among svcs, and points
// their names (and aliases on nw) at them; on.Records is copied, not
// changed in place (it is the cache's).
func withVIPs(on *overlay.Network, nw store.Network, svcs []store.Service) {
	if len(nw.VIPs) == 0 {
		return
	}
	recs := maps.Clone(on.Records)
	if recs == nil {
		recs = map[string][]string{}
	}
	for _, s := range svcs {
		addr, ok := nw.VIPs[s.ID]
		if !ok {
			continue
		}
		name := strings.ToLower(s.Spec.Name)
		on.VIPs = append(on.VIPs, overlay.VIP{Service: s.Spec.Name, Addr: addr, Backends: slices.Clone(recs["tasks."+name])})
		recs[name] = []string{addr}
		for _, a := range serviceAliases([]store.Service{s}, nw)[s.Spec.Name] {
			recs[strings.ToLower(a)] = []string{addr}
		}
	}
	slices.SortFunc(on.VIPs, func(a, b overlay.VIP) int { return strings.Compare(a.Addr, b.Addr) })
	on.Records = recs
}
