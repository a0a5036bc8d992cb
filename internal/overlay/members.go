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

// Members lists the containers on the network; service names the
// service of a container ("" for one that is not a task).
func (n EngineNetwork) Members(service func(containerID string) string) []Member {
	out := make([]Member, 0, len(n.Containers))
	for id, ep := range n.Containers {
		ip, _, _ := strings.Cut(ep.IPv4Address, "/")
		out = append(out, Member{Name: ep.Name, IP: ip, Service: service(id), Running: true})
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
