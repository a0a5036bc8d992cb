package overlay

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Endpoint is a container on an engine network, as the engine's network
// inspect shows it (and as the cluster network's inspect shows it too).
type Endpoint struct {
	Name        string
	EndpointID  string
	MacAddress  string
	IPv4Address string
	IPv6Address string
}

// EngineNetwork is the part of an engine's network inspect that matters
// for the cluster network it backs.
type EngineNetwork struct {
	ID         string `json:"Id"`
	Name       string
	Created    time.Time
	Labels     map[string]string
	Containers map[string]Endpoint
}

// DecodeEngineNetwork reads an engine's network inspect.
func DecodeEngineNetwork(raw []byte) (EngineNetwork, error) {
	var n EngineNetwork
	if err := json.Unmarshal(raw, &n); err != nil {
		return n, fmt.Errorf("overlay: engine network inspect: %w", err)
	}
	return n, nil
}

// Backs says whether the engine network backs cluster network id.
func (n EngineNetwork) Backs(id string) bool { return n.Labels[LabelNetwork] == id }

// Members lists the containers on the network; info tells a container's
// service ("" for one that is not a task) and whether it is ready: a
// container whose health check has not passed yet or fails is on the
// network but is not answered for (by name, nor by the routing mesh), as
// swarm mode leaves out a task that is not healthy.
func (n EngineNetwork) Members(info func(containerID string) (service string, ready bool)) []Member {
	out := make([]Member, 0, len(n.Containers))
	for id, ep := range n.Containers {
		ip, _, _ := strings.Cut(ep.IPv4Address, "/")
		service, ready := info(id)
		out = append(out, Member{Name: ep.Name, IP: ip, Service: service, Running: ready})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// PruneAfter is how old an engine network behind a network no longer
// wanted must be before a node removes it: younger, it may belong to a
// network created after the node last asked.
const PruneAfter = 30 * time.Second

// Stale picks, from a node's engine networks, those that back a cluster
// network not wanted any more (removed while the node was away), created
// at least PruneAfter before now.
func Stale(engineNets []EngineNetwork, want []Network, now time.Time) []EngineNetwork {
	wanted := map[string]bool{}
	for _, n := range want {
		wanted[n.ID] = true
	}
	var out []EngineNetwork
	for _, en := range engineNets {
		id := en.Labels[LabelNetwork]
		if id != "" && !wanted[id] && now.Sub(en.Created) >= PruneAfter {
			out = append(out, en)
		}
	}
	return out
}
