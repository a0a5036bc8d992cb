// Package overlay is the built-in cluster's overlay networks (docker network
// create -d overlay): on each node a Linux bridge joined to a kernel VXLAN
// device that floods to every other node, on which the node's engine runs
// an ordinary bridge network with a share of the subnet of its own; and a
// small DNS server per node that answers the cluster-wide names (services,
// tasks.<service>, containers) the engine's embedded DNS does not know.
//
// The managers keep the desired state (store.Network records); each node's
// agent asks for its part (State) and converges the kernel to it (Node).
package overlay

import (
	"errors"
	"sort"
)

// Errors returned by this package; test with errors.Is.
var (
	ErrNoSubnet = errors.New("overlay: no free subnet in the default address pool")
	ErrBadSlot  = errors.New("overlay: no such share of the subnet")
	ErrNoSlot   = errors.New("overlay: every share of the subnet is taken")
)

// Wire and device constants.
const (
	// MTU leaves room for VXLAN's 50 bytes inside a 1500-byte underlay.
	MTU = 1450
	// Port is VXLAN's IANA port, as swarm mode uses.
	Port = 4789
	// FirstVNI is the first VXLAN ID given out (swarm mode starts at 4097).
	FirstVNI = 4097
	// LabelNetwork marks an engine network that backs a cluster network
	// (its value is the cluster network's ID): lists hide it.
	LabelNetwork = "com.shoal.overlay.network"
	// devPrefix names the devices the agents make (see BridgeName):
	// anything so named and not desired is removed.
	bridgePrefix = "shv"
	vxlanPrefix  = "shx"
)

// BridgeName is the bridge of network id on every node (IFNAMSIZ is 16).
func BridgeName(id string) string { return bridgePrefix + short(id) }

// VXLANName is the VXLAN device of network id on every node.
func VXLANName(id string) string { return vxlanPrefix + short(id) }

func short(id string) string {
	if len(id) > 10 {
		return id[:10]
	}
	return id
}

// State is what a manager tells a node (GET /overlay on the cluster port):
// the networks to plumb and where the managers are.
type State struct {
	Managers []string  `json:"managers,omitempty"`
	Networks []Network `json:"networks"`
	// Mesh is the routing mesh (nil while there is no ingress network).
	Mesh *Mesh `json:"mesh,omitempty"`
}

// Network is one cluster network as a node plumbs it.
type Network struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	VNI    uint32 `json:"vni"`
	Bridge string `json:"bridge"`
	VXLAN  string `json:"vxlan"`
	MTU    int    `json:"mtu"`
	// Local is this node's underlay address, Peers the other nodes'.
	Local string   `json:"local"`
	Peers []string `json:"peers"`
	// Gateway is this node's address on the network ("" while its engine
	// has no network of it): its DNS server listens there.
	Gateway string `json:"gateway,omitempty"`
	// Records are the names on the network and their addresses, across
	// all nodes (lower case, without a trailing dot).
	Records map[string][]string `json:"records,omitempty"`
	// VIPs are the virtual IPs of the services on the network (vip.go).
	VIPs []VIP `json:"vips,omitempty"`
	// Key and Tap are an encrypted network's (see Encrypt): its frames
	// go through the TAP device Tap and the agent's tunnel, sealed
	// with Key, instead of a VXLAN device.
	Key []byte `json:"key,omitempty"`
	Tap string `json:"tap,omitempty"`
}

// Member is one container on a cluster network, as an engine shows it.
type Member struct {
	Name    string   // container name, without "/"
	IP      string   // IPv4, without the prefix length
	Service string   // its service's name, for a task
	Aliases []string // network aliases
	Running bool
}

// Records turns the members of a network into its DNS names: each
// container's name and aliases, and for tasks the service's name and
// tasks.<service>, both answered with every running task's address
// (round robin: dnsrr; the managers then point the name of a service in
// vip mode at its VIP, see VIP).
func Records(members []Member) map[string][]string {
	out := map[string][]string{}
	add := func(name, ip string) {
		if name == "" {
			return
		}
		name = lower(name)
		for _, x := range out[name] {
			if x == ip {
				return
			}
		}
		out[name] = append(out[name], ip)
	}
	for _, m := range members {
		if m.IP == "" || !m.Running {
			continue
		}
		add(m.Name, m.IP)
		for _, a := range m.Aliases {
			add(a, m.IP)
		}
		if m.Service != "" {
			add(m.Service, m.IP)
			add("tasks."+m.Service, m.IP)
		}
	}
	for _, ips := range out {
		sort.Strings(ips)
	}
	return out
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
