package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/scheduler"
	"github.com/shoal-dev/shoal/internal/store"
)

// A task of a service with networks (service create --network) and a
// container run on an attachable cluster network (docker run --network)
// join the engine network that backs the cluster network on their node,
// made there first if need be. Their DNS server is their node's gateway
// on it, where the node's agent answers the cluster-wide names; the
// engine's embedded DNS still answers its own node's containers first.

// taskNetworks are the cluster networks of a task's spec.
func taskNetworks(svc swarm.Service, t store.Task) []swarm.NetworkAttachmentConfig {
	if len(t.Spec.Networks) > 0 {
		return t.Spec.Networks
	}
	return svc.Spec.TaskTemplate.Networks
}

// attachTaskNetworks puts the task's container on the cluster networks of
// its spec on node e: the first at create (with its gateway as the DNS
// server, which answers for the others too); it returns the names of the
// others, to connect before the start (connectTaskNetworks): engines
// before API 1.44 take one network at create.
func (m *Manager) attachTaskNetworks(ctx context.Context, e *engine.Engine, svc swarm.Service, t store.Task, req *container.CreateRequest) ([]string, error) {
	atts := taskNetworks(svc, t)
	if _, ok := m.clusterNetworks(); !ok {
		return nil, nil // under shoal manage there are no cluster networks: tasks run on the default bridge, as before
	}
	if usesIngress(svc) { // the routing mesh reaches the task there (networks_ingress.go)
		in, err := m.ensureIngress(ctx)
		if err != nil {
			return nil, err
		}
		atts = append(slices.Clone(atts), swarm.NetworkAttachmentConfig{Target: in.ID})
	}
	if len(atts) == 0 {
		return nil, nil
	}
	var names []string
	var dns netip.Addr
	for _, a := range atts {
		nw, found, err := m.findClusterNetwork(ctx, a.Target)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("network %s not found", a.Target))
		}
		gw, err := m.ensureEngineNetwork(ctx, e, nw)
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			dns = gw
		}
		if !slices.Contains(names, nw.Name) {
			names = append(names, nw.Name)
		}
	}
	req.HostConfig.NetworkMode = container.NetworkMode(names[0])
	if len(req.HostConfig.DNS) == 0 {
		req.HostConfig.DNS = []netip.Addr{dns}
	}
	req.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{names[0]: {}}}
	return names[1:], nil
}

// connectTaskNetworks connects a created task container to its further
// networks (attachTaskNetworks), before it starts. A container that could
// not be connected is removed: the next Start makes it again, rather than
// start it without its networks.
func (m *Manager) connectTaskNetworks(ctx context.Context, e *engine.Engine, id string, names []string) error {
	err := m.connectAll(ctx, e, id, names)
	if err != nil {
		if rerr := e.Remove(context.WithoutCancel(ctx), id, engine.RemoveOptions{Force: true}); rerr != nil {
			m.log.Warn("task container without its networks not removed", "node", e.Name(), "id", id, "error", rerr)
		}
	}
	return err
}

func (m *Manager) connectAll(ctx context.Context, e *engine.Engine, id string, names []string) error {
	for _, name := range names {
		body, _ := json.Marshal(map[string]string{"Container": id})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://engine"+e.APIPath("", "/networks/"+name+"/connect"), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.Do(req)
		if err != nil {
			return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s: connecting the task to %s: %v", e.Name(), name, err))
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusForbidden { // 403: connected already (a retried start)
			return errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s: connecting the task to %s: %s %s", e.Name(), name, resp.Status, bytes.TrimSpace(msg)))
		}
	}
	return nil
}

// errNotAttachable is swarm mode's refusal of docker run on a network
// that was not created --attachable.
func errNotAttachable(name string) error {
	return errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf("Could not attach to network %s: rpc error: code = PermissionDenied desc = network %s not manually attachable", name, name))
}

// attachment is a container create's cluster network (nil: none).
type attachment struct{ nw store.Network }

// clusterAttachment finds the cluster network a container create names
// (HostConfig.NetworkMode), refuses one not attachable, and takes it out
// of the placement's dependencies: every node can have it (apply makes
// its engine network on the chosen node).
func (m *Manager) clusterAttachment(ctx context.Context, cb *backend.ContainerConfig, req *scheduler.Request) (*attachment, error) {
	if cb.HostConfig == nil || cb.HostConfig.NetworkMode == "" || predefinedNetworks[cb.HostConfig.NetworkMode] {
		return nil, nil
	}
	if _, ok := m.clusterNetworks(); !ok {
		return nil, nil
	}
	nw, found, err := m.findClusterNetwork(ctx, cb.HostConfig.NetworkMode)
	if err != nil || !found {
		return nil, err
	}
	if !nw.Attachable {
		return nil, errNotAttachable(nw.Name)
	}
	req.NetworkMode = ""
	req.Networks = slices.DeleteFunc(req.Networks, func(n string) bool { return n == cb.HostConfig.NetworkMode || n == nw.Name || n == nw.ID })
	return &attachment{nw: nw}, nil
}

// apply readies the create for node e: the network's engine network is
// made there, the container named onto it, with the node's gateway as its
// DNS server (unless the client gave one). A nil attachment changes nothing.
func (a *attachment) apply(ctx context.Context, m *Manager, e *engine.Engine, body []byte, cb *backend.ContainerConfig) ([]byte, error) {
	if a == nil {
		return body, nil
	}
	nw := a.nw
	gw, err := m.ensureEngineNetwork(ctx, e, nw)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage("invalid JSON: " + err.Error())
	}
	var hc map[string]json.RawMessage
	_ = json.Unmarshal(obj["HostConfig"], &hc)
	hc["NetworkMode"] = mustJSON(nw.Name)
	var dns []string
	if _ = json.Unmarshal(hc["Dns"], &dns); len(dns) == 0 {
		hc["Dns"] = mustJSON([]string{gw.String()})
	}
	obj["HostConfig"] = mustJSON(hc)
	if nc := cb.NetworkingConfig; nc != nil && len(nc.EndpointsConfig) > 0 {
		eps := map[string]json.RawMessage{}
		for k, v := range nc.EndpointsConfig {
			if k == cb.HostConfig.NetworkMode {
				k = nw.Name // the cluster network's ID or prefix: its engine network's name
			}
			eps[k] = v
		}
		obj["NetworkingConfig"] = mustJSON(map[string]any{"EndpointsConfig": eps})
	}
	return json.Marshal(obj)
}

// connectName is the engine network to connect a container on node e to
// (docker network connect): for an attachable cluster network, its engine
// network, made on e if need be; any other name as given. The container
// keeps its DNS server: only its own node's names resolve for it there.
func (m *Manager) connectName(ctx context.Context, e *engine.Engine, ref string) (string, error) {
	if predefinedNetworks[ref] {
		return ref, nil
	}
	nw, found, err := m.findClusterNetwork(ctx, ref)
	if err != nil || !found {
		return ref, err
	}
	if !nw.Attachable {
		return "", errNotAttachable(nw.Name)
	}
	if _, err := m.ensureEngineNetwork(ctx, e, nw); err != nil {
		return "", err
	}
	return nw.Name, nil
}
