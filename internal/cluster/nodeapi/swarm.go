package nodeapi

import (
	"maps"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
)

// Observed is what a manager knows of a node beyond its record.
type Observed struct {
	Ready bool
	// Contacting: the node is up (Ready) but this manager has not reached
	// its engine yet, so nothing can be placed on it: swarm mode's
	// "unknown", as `shoal manage` shows an engine being contacted.
	Contacting bool
	// Info and EngineVersion are the node's engine as last seen (nil: never).
	Info          *system.Info
	EngineVersion string
	// EngineName is the hostname the engine reports ("" if never seen);
	// it wins over the one the node joined with.
	EngineName string
	// Member is the node's store member, if it has one.
	Member *Member
	// TLS is the node's TLSInfo: the roots it trusts, its certificate's issuer.
	TLS swarm.TLSInfo
}

// ToSwarm is the record r as swarm mode's node API shows it.
func ToSwarm(r Node, o Observed) swarm.Node {
	n := swarm.Node{
		ID:   r.ID,
		Meta: swarm.Meta{Version: swarm.Version{Index: r.Version}, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt},
		Spec: swarm.NodeSpec{
			Role:         swarm.NodeRole(r.Role),
			Availability: swarm.NodeAvailability(r.Availability),
			Annotations:  swarm.Annotations{Labels: map[string]string{}},
		},
		Description: swarm.NodeDescription{Hostname: r.Hostname, TLSInfo: o.TLS},
		Status:      nodeStatus(r, o),
	}
	maps.Copy(n.Spec.Labels, r.Labels)
	if o.Info != nil {
		describeEngine(&n.Description, o.Info, o.EngineVersion)
	}
	if o.EngineName != "" {
		n.Description.Hostname = o.EngineName // the engine's host, not shoal's view of it
	}
	if r.Role == RoleManager {
		n.ManagerStatus = managerStatus(r, o.Member)
	}
	return n
}

func nodeStatus(r Node, o Observed) swarm.NodeStatus {
	switch {
	case o.Ready && o.Contacting:
		return swarm.NodeStatus{State: swarm.NodeStateUnknown, Addr: r.Addr, Message: "contacting the node's engine"}
	case o.Ready:
		return swarm.NodeStatus{State: swarm.NodeStateReady, Addr: r.Addr}
	}
	return swarm.NodeStatus{State: swarm.NodeStateDown, Addr: r.Addr, Message: "heartbeat failure"}
}

func describeEngine(d *swarm.NodeDescription, info *system.Info, version string) {
	d.Platform = swarm.Platform{Architecture: info.Architecture, OS: info.OSType}
	d.Resources = swarm.Resources{NanoCPUs: int64(info.NCPU) * 1e9, MemoryBytes: info.MemTotal}
	labels := map[string]string{}
	for _, l := range info.Labels {
		k, v, _ := strings.Cut(l, "=")
		labels[k] = v
	}
	d.Engine = swarm.EngineDescription{EngineVersion: version, Labels: labels}
}

func managerStatus(r Node, m *Member) *swarm.ManagerStatus {
	ms := &swarm.ManagerStatus{Addr: r.ClusterAddr, Reachability: swarm.ReachabilityUnreachable}
	if m != nil {
		ms.Leader = m.Leader
		if m.Reachable {
			ms.Reachability = swarm.ReachabilityReachable
		}
	}
	return ms
}

// Sort orders nodes as docker node ls shows them: by hostname, then ID.
func Sort(nodes []swarm.Node) {
	sort.Slice(nodes, func(i, j int) bool {
		if nodes[i].Description.Hostname != nodes[j].Description.Hostname {
			return nodes[i].Description.Hostname < nodes[j].Description.Hostname
		}
		return nodes[i].ID < nodes[j].ID
	})
}
