package overlay

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
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
