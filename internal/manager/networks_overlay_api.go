package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
)

// InspectClusterNetwork answers network inspect of a cluster network as
// swarm mode does, with the containers on it on every node; found is
// false when ref is not a cluster network (the engines' networks answer).
func (m *Manager) InspectClusterNetwork(ctx context.Context, ref string) (backend.Object, bool, error) {
	nw, found, err := m.findClusterNetwork(ctx, ref)
	if err != nil || !found {
		return nil, found, err
	}
	containers := map[string]overlay.Endpoint{}
	for _, en := range m.engineNetworks(ctx, nw) {
		for id, ep := range en.Containers {
			containers[id] = ep
		}
	}
	return networkObject(nw, containers), true, nil
}

// RemoveClusterNetwork removes a cluster network unless it is in use;
// found is false when ref is not a cluster network.
func (m *Manager) RemoveClusterNetwork(ctx context.Context, ref string) (bool, error) {
	nw, found, err := m.findClusterNetwork(ctx, ref)
	if err != nil || !found {
		return found, err
	}
	return true, m.removeClusterNetwork(ctx, nw)
}

// networkObject is a cluster network as swarm mode shows it.
func networkObject(nw store.Network, containers map[string]overlay.Endpoint) backend.Object {
	ipam := map[string]string{"Subnet": nw.Subnet}
	if p, err := netip.ParsePrefix(nw.Subnet); err == nil {
		if gw, _, err := overlay.Slot(p, 0); err == nil {
			ipam["Gateway"] = gw.String()
		}
	}
	opts := map[string]string{"com.docker.network.driver.overlay.vxlanid_list": fmt.Sprint(nw.VNI)}
	for k, v := range nw.Options {
		opts[k] = v
	}
	labels := nw.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	if containers == nil {
		containers = map[string]overlay.Endpoint{}
	}
	o := backend.Object{}
	for k, v := range map[string]any{
		"Name": nw.Name, "Id": nw.ID, "Created": nw.Created.Format(time.RFC3339Nano), "Scope": "swarm", "Driver": driverOverlay,
		"EnableIPv6": false, "Internal": nw.Internal, "Attachable": nw.Attachable, "Ingress": nw.Ingress,
		"IPAM":       map[string]any{"Driver": "default", "Options": nil, "Config": []map[string]string{ipam}},
		"ConfigFrom": map[string]string{"Network": ""}, "ConfigOnly": false,
		"Containers": containers, "Options": opts, "Labels": labels,
	} {
		o[k] = mustJSON(v)
	}
	return o
}

// clusterNetworkList is the cluster networks that match filters, as
// network ls shows them (without containers, as dockerd lists).
func (m *Manager) clusterNetworkList(ctx context.Context, f backend.Filters) []backend.Object {
	nets, ok := m.clusterNetworks()
	if !ok {
		return nil
	}
	list, err := nets.List(ctx)
	if err != nil {
		m.log.Warn("cluster networks left out of the list", "error", err)
		return nil
	}
	var out []backend.Object
	for _, nw := range list {
		if networkMatches(nw, f) {
			out = append(out, networkObject(nw, nil))
		}
	}
	return out
}

// networkMatches applies network ls's filters to a cluster network.
func networkMatches(nw store.Network, f backend.Filters) bool {
	any := func(key string, ok func(v string) bool) bool {
		vals := f.Get(key)
		if len(vals) == 0 {
			return true
		}
		for _, v := range vals {
			if ok(v) {
				return true
			}
		}
		return false
	}
	return any("name", func(v string) bool { return strings.Contains(nw.Name, v) }) &&
		any("id", func(v string) bool { return strings.Contains(nw.ID, v) }) &&
		any("driver", func(v string) bool { return v == driverOverlay }) &&
		any("scope", func(v string) bool { return v == "swarm" }) &&
		any("type", func(v string) bool { return v == "custom" }) &&
		allLabels(nw.Labels, f.Get("label")) && len(f.Get("dangling")) == 0
}

func allLabels(labels map[string]string, want []string) bool {
	for _, w := range want {
		k, v, hasV := strings.Cut(w, "=")
		got, ok := labels[k]
		if !ok || hasV && got != v {
			return false
		}
	}
	return true
}

// backsClusterNetwork says whether a listed engine network is one that
// backs a cluster network (shown once, as the cluster network).
func backsClusterNetwork(o backend.Object) bool {
	var x struct{ Labels map[string]string }
	_ = json.Unmarshal(o["Labels"], &x.Labels)
	return x.Labels[overlay.LabelNetwork] != ""
}

// keepClusterNetworks adds to a network prune's filters that the engine
// networks behind cluster networks stay: they go with network rm only.
func keepClusterNetworks(f backend.Filters) backend.Filters {
	out := backend.Filters{}
	for k, v := range f {
		out[k] = v
	}
	out["label!"] = append(slices.Clone(out["label!"]), overlay.LabelNetwork)
	return out
}
