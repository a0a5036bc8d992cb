package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
)

// Cluster networks (docker network create -d overlay) exist in the
// built-in cluster only: a record in the store, and on each node an
// engine bridge network of the same name on the bridge the node's agent
// joins to the others' over VXLAN (internal/overlay). The API shows the
// record, as swarm mode shows an overlay network, and hides the engine
// networks behind it.

// driverOverlay is the driver that makes a cluster network.
const driverOverlay = "overlay"

// errOverlayNoCluster refuses -d overlay where no agents can plumb it:
// dockerd's words outside a swarm, naming the built-in cluster.
var errOverlayNoCluster = errdefs.ErrUnavailable.WithMessage(`This node is not a swarm manager. Overlay networks need shoal's built-in cluster, whose agents plumb them on every node: use "shoal init" or "shoal join" to connect this node to a cluster and try again.`)

// clusterNetworks is the store's networks; false outside the built-in cluster.
func (m *Manager) clusterNetworks() (store.Networks, bool) {
	sc, ok := m.cfg.Cluster.(interface{ Store() *store.Store })
	if !ok || sc.Store() == nil {
		return store.Networks{}, false
	}
	return store.NewNetworks(sc.Store()), true
}

// findClusterNetwork finds a cluster network by ID, name or unique ID
// prefix; found is false when ref names none.
func (m *Manager) findClusterNetwork(ctx context.Context, ref string) (nw store.Network, found bool, err error) {
	nets, ok := m.clusterNetworks()
	if !ok || ref == "" {
		return nw, false, nil
	}
	list, err := nets.List(ctx)
	if err != nil {
		return nw, false, errdefs.ErrUnavailable.WithMessage("reading the cluster's networks: " + err.Error())
	}
	return matchNetwork(list, ref)
}

// matchNetwork picks ref in list as dockerd does: full ID, then name,
// then a unique ID prefix.
func matchNetwork(list []store.Network, ref string) (store.Network, bool, error) {
	for _, pass := range []func(n store.Network) bool{
		func(n store.Network) bool { return n.ID == ref },
		func(n store.Network) bool { return n.Name == ref },
	} {
		if i := slices.IndexFunc(list, pass); i >= 0 {
			return list[i], true, nil
		}
	}
	var hits []store.Network
	for _, n := range list {
		if strings.HasPrefix(n.ID, ref) {
			hits = append(hits, n)
		}
	}
	switch len(hits) {
	case 0:
		return store.Network{}, false, nil
	case 1:
		return hits[0], true, nil
	}
	return store.Network{}, false, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("network %s is ambiguous (%d matches found based on ID prefix)", ref, len(hits)))
}

// createBody is the part of a network create request a cluster network uses.
type createBody struct {
	Name       string
	Driver     string
	Internal   bool
	Attachable bool
	Ingress    bool
	EnableIPv6 bool
	ConfigOnly bool
	IPAM       *struct {
		Driver string
		Config []struct{ Subnet, IPRange, Gateway string }
	}
	Options map[string]string
	Labels  map[string]string
}

// checkCreate refuses what shoal's overlay networks do not do (yet).
func checkCreate(b createBody) error {
	switch {
	case b.Name == "" || strings.ContainsAny(b.Name, "/:"):
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid network name %q: an overlay network's name has no / or :", b.Name))
	case b.Ingress:
		return errdefs.ErrInvalidArgument.WithMessage("shoal: ingress networks (the routing mesh) are not supported yet")
	case b.EnableIPv6:
		return errdefs.ErrInvalidArgument.WithMessage("shoal: IPv6 on overlay networks is not supported yet")
	case b.ConfigOnly:
		return errdefs.ErrInvalidArgument.WithMessage("shoal: config-only networks are not supported for overlay networks")
	}
	if b.IPAM != nil {
		if b.IPAM.Driver != "" && b.IPAM.Driver != "default" {
			return errdefs.ErrInvalidArgument.WithMessage("shoal: only the default IPAM driver is supported on overlay networks")
		}
		if len(b.IPAM.Config) > 1 {
			return errdefs.ErrInvalidArgument.WithMessage("shoal: an overlay network has one subnet")
		}
		for _, c := range b.IPAM.Config {
			if c.IPRange != "" || c.Gateway != "" {
				return errdefs.ErrInvalidArgument.WithMessage("shoal: --ip-range and --gateway are chosen per node on overlay networks; give --subnet only")
			}
		}
	}
	return nil
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// createClusterNetwork records a cluster network and makes its engine
// network on every healthy node (a node that is down gets it when a task
// or container of it lands there). It answers as swarm mode: {Id, Warning}.
func (m *Manager) createClusterNetwork(ctx context.Context, r backend.ObjectCreateRequest) (backend.Object, error) {
	nets, ok := m.clusterNetworks()
	if !ok {
		return nil, errOverlayNoCluster
	}
	var b createBody
	raw, _ := json.Marshal(r.Body)
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage("invalid JSON: " + err.Error())
	}
	if err := checkCreate(b); err != nil {
		return nil, err
	}
	list, err := nets.List(ctx)
	if err != nil {
		return nil, errdefs.ErrUnavailable.WithMessage("reading the cluster's networks: " + err.Error())
	}
	if slices.ContainsFunc(list, func(n store.Network) bool { return n.Name == b.Name }) || predefinedNetworks[b.Name] {
		return nil, errdefs.ErrConflict.WithMessage("network with name " + b.Name + " already exists")
	}
	if owner, _, err := m.resolveObject(ctx, "networks", b.Name); err == nil || errdefs.IsInvalidArgument(err) {
		where := "several nodes"
		if owner != nil {
			where = "node " + owner.Name()
		}
		return nil, errdefs.ErrConflict.WithMessage(fmt.Sprintf("network with name %s already exists (on %s)", b.Name, where))
	}
	subnet, err := m.chooseSubnet(ctx, b, list)
	if err != nil {
		return nil, err
	}
	nw := store.Network{ID: store.NewID(), Name: b.Name, Created: time.Now().UTC(), Driver: driverOverlay, Subnet: subnet.String(),
		VNI: nextVNI(list), Attachable: b.Attachable, Internal: b.Internal, Labels: b.Labels, Options: b.Options, Slots: map[string]int{}}
	if hasKey(b.Options, "encrypted") { // any value, as dockerd takes it
		nw.Key = overlay.NewKey()
	}
	if err := nets.Create(ctx, nw); err != nil {
		return nil, errdefs.ErrUnavailable.WithMessage("recording the network: " + err.Error())
	}
	m.log.Info("cluster network created", "name", nw.Name, "id", nw.ID, "subnet", nw.Subnet, "vni", nw.VNI, "encrypted", len(nw.Key) > 0)
	m.ensureEverywhere(ctx, nw)
	return backend.Object{"Id": mustJSON(nw.ID), "Warning": mustJSON("")}, nil
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v) // strings always encode
	return b
}

// ensureEverywhere makes nw's engine network on every healthy node, in parallel.
func (m *Manager) ensureEverywhere(ctx context.Context, nw store.Network) {
	var wg sync.WaitGroup
	for _, e := range m.pool.Healthy() {
		wg.Go(func() {
			if _, err := m.ensureEngineNetwork(ctx, e, nw); err != nil {
				m.log.Warn("cluster network: engine network not made", "network", nw.Name, "node", e.Name(), "error", err)
			}
		})
	}
	wg.Wait()
}

// nextVNI is one more than the highest VXLAN ID in use.
func nextVNI(list []store.Network) uint32 {
	v := uint32(overlay.FirstVNI)
	for _, n := range list {
		v = max(v, n.VNI+1)
	}
	return v
}

// errPoolOverlap is dockerd's refusal of a subnet in use.
var errPoolOverlap = errdefs.ErrPermissionDenied.WithMessage("Pool overlaps with other one on this address space")

// chooseSubnet is the subnet asked for, if it is free, or the first free
// /24 of the default pool: free of the cluster's networks, of every
// engine's networks and of the nodes' own addresses.
func (m *Manager) chooseSubnet(ctx context.Context, b createBody, list []store.Network) (netip.Prefix, error) {
	used := m.usedSubnets(ctx, list)
	if b.IPAM != nil && len(b.IPAM.Config) == 1 && b.IPAM.Config[0].Subnet != "" {
		p, err := netip.ParsePrefix(b.IPAM.Config[0].Subnet)
		if err != nil || !p.Addr().Is4() {
			return netip.Prefix{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid subnet %s: an IPv4 CIDR is needed", b.IPAM.Config[0].Subnet))
		}
		if overlay.Slots(p) < 2 {
			return netip.Prefix{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("subnet %s is too small for an overlay network: give at least a /26", p))
		}
		if overlay.Overlaps(p.Masked(), used) {
			return netip.Prefix{}, errPoolOverlap
		}
		return p.Masked(), nil
	}
	p, err := overlay.AllocateSubnet(used)
	if err != nil {
		return netip.Prefix{}, errdefs.ErrUnavailable.WithMessage(err.Error())
	}
	return p, nil
}

// usedSubnets are the subnets in use in the cluster.
func (m *Manager) usedSubnets(ctx context.Context, list []store.Network) []netip.Prefix {
	var used []netip.Prefix
	for _, n := range list {
		if p, err := netip.ParsePrefix(n.Subnet); err == nil {
			used = append(used, p)
		}
	}
	objs, _ := m.fetchAll(ctx, "networks", (*engine.Engine).ListNetworks, engine.ClientQuery{})
	for _, o := range objs {
		var ipam struct {
			IPAM struct{ Config []struct{ Subnet string } }
		}
		_ = json.Unmarshal(mustJSON(o.obj), &ipam)
		for _, c := range ipam.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil {
				used = append(used, p.Masked())
			}
		}
	}
	for _, e := range m.pool.Engines() {
		if a, err := netip.ParseAddr(e.IP); err == nil {
			used = append(used, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return used
}

type engineNetKey struct {
	e  *engine.Engine
	nw string
}

// ensureEngineNetwork makes sure e has nw's engine network, giving e's
// node a share of the subnet first; it returns the node's gateway.
func (m *Manager) ensureEngineNetwork(ctx context.Context, e *engine.Engine, nw store.Network) (netip.Addr, error) {
	nets, ok := m.clusterNetworks()
	if !ok {
		return netip.Addr{}, errOverlayNoCluster
	}
	subnet, err := netip.ParsePrefix(nw.Subnet)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("network %s: subnet %q: %w", nw.Name, nw.Subnet, err)
	}
	node := m.nodeIDOf(e)
	slot, ok := nw.Slots[node]
	if !ok {
		err := nets.Modify(ctx, nw.ID, func(cur *store.Network) error {
			if s, ok := cur.Slots[node]; ok {
				slot = s
				return nil
			}
			s, err := overlay.FreeSlot(subnet, cur.Slots)
			if err != nil {
				return err
			}
			if cur.Slots == nil {
				cur.Slots = map[string]int{}
			}
			cur.Slots[node], slot = s, s
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return netip.Addr{}, errdefs.ErrNotFound.WithMessage("network " + nw.Name + " not found")
		}
		if err != nil {
			return netip.Addr{}, errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("network %s: a share of %s for node %s: %v", nw.Name, subnet, e.Name(), err))
		}
	}
	gw, ipRange, err := overlay.Slot(subnet, slot)
	if err != nil {
		return netip.Addr{}, err
	}
	// Two tasks (or a task and a docker run) joining the network on one
	// node at once would both find it missing and both create it: the
	// engine answers the second with "Pool overlaps" instead of a
	// conflict. One at a time per node and network, the second finds it.
	defer m.engineNets.lock(engineNetKey{e, nw.ID})()
	// The cache has it (a stranger of the same name is refused at
	// create), unless the network is young: the name may then still be a
	// removed cluster network's that this node kept (see below).
	if names, _ := e.NetworksVolumes(); slices.Contains(names, nw.Name) && time.Since(nw.Created) > recentNetwork {
		return gw, nil
	}
	if obj, err := e.InspectNetwork(ctx, nw.Name); err == nil {
		en, err := overlay.DecodeEngineNetwork(obj.Raw)
		switch {
		case err == nil && en.Backs(nw.ID):
			return gw, nil
		case err == nil && en.Labels[overlay.LabelNetwork] != "":
			// It backs a cluster network removed since (this node kept it
			// while one of its containers held it): it goes, and this
			// one's is made.
			if err := removeEngineNetwork(ctx, e, en.ID); err != nil {
				return netip.Addr{}, err
			}
		default:
			return netip.Addr{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf("node %s has a network %s of its own: remove it to use the cluster network", e.Name(), nw.Name))
		}
	}
	body, err := json.Marshal(engineNetworkRequest(nw, gw, ipRange))
	if err != nil {
		return netip.Addr{}, err
	}
	if _, err := e.CreateNetwork(ctx, "", body); err != nil && !errdefs.IsConflict(err) {
		return netip.Addr{}, nodeErr{e.Name(), err}
	}
	m.refreshObjects(e)
	return gw, nil
}

// engineNetworkRequest is the create request of nw's engine network on a
// node: a bridge network on the agent's bridge, with the node's share.
func engineNetworkRequest(nw store.Network, gw netip.Addr, ipRange netip.Prefix) map[string]any {
	labels := map[string]string{}
	for k, v := range nw.Labels {
		labels[k] = v
	}
	labels[overlay.LabelNetwork] = nw.ID
	return map[string]any{
		"Name": nw.Name, "Driver": "bridge", "CheckDuplicate": true, "Internal": nw.Internal,
		"IPAM": map[string]any{"Driver": "default", "Config": []map[string]string{{"Subnet": nw.Subnet, "IPRange": ipRange.String(), "Gateway": gw.String()}}},
		"Options": map[string]string{
			"com.docker.network.bridge.name": overlay.BridgeName(nw.ID),
			"com.docker.network.driver.mtu":  fmt.Sprint(networkMTU(nw)),
		},
		"Labels": labels,
	}
}

// networkMTU is the containers' MTU on nw: less on an encrypted network,
// whose tunnel adds more than VXLAN does.
func networkMTU(nw store.Network) int {
	if len(nw.Key) > 0 {
		return overlay.CryptMTU
	}
	return overlay.MTU
}

// engineNetworks inspects nw's engine network on every healthy node.
func (m *Manager) engineNetworks(ctx context.Context, nw store.Network) map[*engine.Engine]overlay.EngineNetwork {
	var mu sync.Mutex
	out := map[*engine.Engine]overlay.EngineNetwork{}
	var wg sync.WaitGroup
	for _, e := range m.pool.Healthy() {
		wg.Go(func() {
			_ = m.ask(ctx, e, readPatience, func(ctx context.Context) error {
				obj, err := e.InspectNetwork(ctx, nw.Name)
				if err != nil {
					return err
				}
				en, err := overlay.DecodeEngineNetwork(obj.Raw)
				if err == nil && en.Backs(nw.ID) {
					mu.Lock()
					out[e] = en
					mu.Unlock()
				}
				return err
			})
		})
	}
	wg.Wait()
	return out
}

// removeClusterNetwork removes a cluster network that no task, service or
// container uses: its engine networks, then its record (the agents then
// take the plumbing away).
func (m *Manager) removeClusterNetwork(ctx context.Context, nw store.Network) error {
	nets, _ := m.clusterNetworks()
	if sid := m.serviceUsing(ctx, nw); sid != "" {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("rpc error: code = FailedPrecondition desc = network %s is in use by service %s", nw.ID, sid))
	}
	ens := m.engineNetworks(ctx, nw)
	leaving := false
	for e, en := range ens {
		for id, ep := range en.Containers {
			if !m.taskLeaving(ctx, e, id, ep.Name) {
				return errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("error while removing network: network %s id %s has active endpoints", nw.Name, nw.ID))
			}
			leaving = true
		}
	}
	if leaving {
		ens = m.awaitEmpty(ctx, nw, ens)
	}
	for e, en := range ens {
		if len(en.Containers) > 0 {
			continue // the node's agent prunes it once its tasks have stopped
		}
		err := removeEngineNetwork(ctx, e, en.ID)
		if leaving && errdefs.IsConflict(err) {
			// a leaving task's container was still being made as we
			// looked: the node's agent prunes the engine network later
			m.log.Info("cluster network: an engine network is left for its node to remove", "name", nw.Name, "node", e.Name(), "err", err)
			continue
		}
		if err != nil {
			return err
		}
		m.refreshObjects(e)
	}
	if leaving && slices.ContainsFunc(slices.Collect(maps.Values(ens)), func(en overlay.EngineNetwork) bool { return len(en.Containers) > 0 }) {
		m.log.Info("cluster network removed while tasks of removed services still stop on it: the nodes remove its engine networks later", "name", nw.Name)
	}
	if err := nets.Delete(ctx, nw.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return errdefs.ErrUnavailable.WithMessage("removing the network's record: " + err.Error())
	}
	m.log.Info("cluster network removed", "name", nw.Name, "id", nw.ID)
	return nil
}

// leavingWait bounds how long a network's removal waits for the task
// containers that are on their way out to go, so that its engine
// networks go with it (a network of the same name made again at once,
// as by a second stack deploy, then finds none left on the nodes).
const leavingWait = 15 * time.Second

// awaitEmpty waits, up to leavingWait, until nw's engine networks have no
// container left, and returns them as last seen.
func (m *Manager) awaitEmpty(ctx context.Context, nw store.Network, ens map[*engine.Engine]overlay.EngineNetwork) map[*engine.Engine]overlay.EngineNetwork {
	ctx, cancel := context.WithTimeout(ctx, leavingWait)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		busy := false
		for _, en := range ens {
			busy = busy || len(en.Containers) > 0
		}
		if !busy {
			return ens
		}
		select {
		case <-ctx.Done():
			return ens
		case <-tick.C:
			if now := m.engineNetworks(ctx, nw); ctx.Err() == nil {
				ens = now
			}
		}
	}
}

// taskLeaving says whether container id on e is a task container that is
// on its way out: its task or its service is gone from the store, or the
// task is no longer desired running (its service was removed, as `docker stack rm` does just
// before it removes the stack's networks). Swarm mode lets such a
// network go (only tasks desired running hold it); a container that is
// not a task, or a task still wanted, holds it.
func (m *Manager) taskLeaving(ctx context.Context, e *engine.Engine, id, name string) bool {
	sc, ok := m.cfg.Cluster.(interface{ Store() *store.Store })
	if !ok {
		return false
	}
	taskID := ""
	if ct := e.Container(id); ct != nil {
		taskID = ct.Labels[labelTaskID]
	} else if _, tail, found := strings.Cut(strings.TrimPrefix(name, "/"), "."); found {
		// not cached yet (just created): a task container is named
		// <service>.<slot>.<task ID>
		if _, tid, found := strings.Cut(tail, "."); found && len(tid) == 25 {
			taskID = tid
		}
	}
	if taskID == "" {
		return false
	}
	t, err := store.NewTasks(sc.Store()).Get(ctx, taskID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true
	case err != nil:
		return false
	case t.DesiredState != swarm.TaskStateRunning:
		return true
	}
	// The orchestrator marks a removed service's tasks a moment after
	// the service went: the service's absence says it already.
	_, err = store.NewServices(sc.Store()).Get(ctx, t.ServiceID)
	return errors.Is(err, store.ErrNotFound)
}

// serviceUsing is the ID of a service whose tasks join nw, or "".
func (m *Manager) serviceUsing(ctx context.Context, nw store.Network) string {
	sc, ok := m.cfg.Cluster.(interface{ Store() *store.Store })
	if !ok {
		return ""
	}
	svcs, _, err := store.NewServices(sc.Store()).List(ctx)
	if err != nil {
		return ""
	}
	for _, s := range svcs {
		if nw.Ingress && usesIngress(s.Service) {
			return s.ID
		}
		for _, a := range s.Spec.TaskTemplate.Networks {
			if a.Target == nw.ID || a.Target == nw.Name {
				return s.ID
			}
		}
	}
	return ""
}

// recentNetwork is how young a cluster network is checked on the engine
// rather than taken from its cache by name: longer than a node keeps the
// engine network of a removed one (overlay.PruneAfter) plus a refresh.
const recentNetwork = 2 * time.Minute

// removeEngineNetwork removes an engine network; one already gone is fine.
func removeEngineNetwork(ctx context.Context, e *engine.Engine, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, "http://engine"+e.APIPath("", "/networks/"+id), nil)
	if err != nil {
		return err
	}
	resp, err := e.Do(req)
	if err != nil {
		return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s: %v", e.Name(), err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var msg struct{ Message string }
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	_ = json.Unmarshal(b, &msg)
	return errdefs.ErrConflict.WithMessage(fmt.Sprintf("node %s: %s", e.Name(), msg.Message))
}
