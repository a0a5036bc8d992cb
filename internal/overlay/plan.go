package overlay

import (
	"slices"
	"strconv"
	"strings"
)

// Link is a network device as the node has it.
type Link struct {
	Name   string
	Kind   string // "bridge", "vxlan", ...
	Master string
	VNI    uint32 // vxlan only
	Up     bool
}

// Observed is the node's kernel state that the agent manages: the
// devices it names (see BridgeName) and the flood entries of its VXLAN
// devices (device → peer addresses).
type Observed struct {
	Links map[string]Link
	Flood map[string][]string
}

// zeroMAC is the all-zeros entry: frames with no learned destination
// (broadcast, unknown unicast, ARP) are sent to every peer so listed
// (head-end replication, no multicast underlay needed).
const zeroMAC = "00:00:00:00:00:00"

// Plan returns the ip and bridge commands (argv) that make the node's
// state obs what want says, in order; nil when it is already.
func Plan(want []Network, obs Observed) [][]string {
	var cmds [][]string
	desired := map[string]bool{}
	for _, n := range want {
		desired[n.Bridge], desired[n.VXLAN], desired[n.Tap] = true, true, true
	}
	// Devices of networks gone, first (a gone VXLAN device may hold the
	// VNI a wanted one is to take): the VXLAN device, then its bridge.
	var gone []string
	for name := range obs.Links {
		if !desired[name] && isOurs(name) {
			gone = append(gone, name)
		}
	}
	slices.SortFunc(gone, func(a, b string) int {
		if pa, pb := strings.HasPrefix(a, vxlanPrefix), strings.HasPrefix(b, vxlanPrefix); pa != pb {
			if pa {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, name := range gone {
		cmds = append(cmds, []string{"ip", "link", "del", name})
	}
	for _, n := range want {
		cmds = append(cmds, planNetwork(n, obs)...)
	}
	return cmds
}

func isOurs(name string) bool {
	return strings.HasPrefix(name, bridgePrefix) || strings.HasPrefix(name, vxlanPrefix) || strings.HasPrefix(name, tapPrefix)
}

// planNetwork plumbs one network: its bridge, its VXLAN device on it, and
// one flood entry per peer.
func planNetwork(n Network, obs Observed) [][]string {
	var cmds [][]string
	mtu := strconv.Itoa(n.MTU)
	br, ok := obs.Links[n.Bridge]
	if ok && br.Kind != "bridge" {
		cmds = append(cmds, []string{"ip", "link", "del", n.Bridge})
		ok = false
	}
	if !ok {
		cmds = append(cmds, []string{"ip", "link", "add", n.Bridge, "mtu", mtu, "type", "bridge"})
	}
	if !ok || !br.Up {
		cmds = append(cmds, []string{"ip", "link", "set", n.Bridge, "up"})
	}
	if n.Tap != "" {
		return append(cmds, planTap(n, obs)...)
	}
	vx, ok := obs.Links[n.VXLAN]
	if ok && (vx.Kind != "vxlan" || vx.VNI != n.VNI) {
		cmds = append(cmds, []string{"ip", "link", "del", n.VXLAN})
		ok = false
	}
	flood := obs.Flood[n.VXLAN]
	if !ok {
		cmds = append(cmds, []string{"ip", "link", "add", n.VXLAN, "mtu", mtu, "type", "vxlan",
			"id", strconv.FormatUint(uint64(n.VNI), 10), "dstport", strconv.Itoa(Port), "local", n.Local})
		flood = nil
	}
	if !ok || vx.Master != n.Bridge || !vx.Up {
		cmds = append(cmds, []string{"ip", "link", "set", n.VXLAN, "master", n.Bridge, "up"})
	}
	for _, p := range n.Peers {
		if p != n.Local && !slices.Contains(flood, p) {
			cmds = append(cmds, []string{"bridge", "fdb", "append", zeroMAC, "dev", n.VXLAN, "dst", p})
		}
	}
	for _, p := range flood {
		if !slices.Contains(n.Peers, p) || p == n.Local {
			cmds = append(cmds, []string{"bridge", "fdb", "del", zeroMAC, "dev", n.VXLAN, "dst", p})
		}
	}
	return cmds
}

// planTap puts an encrypted network's TAP device on its bridge, once the
// agent's tunnel has opened it (the device lives while the tunnel does).
func planTap(n Network, obs Observed) [][]string {
	tap, ok := obs.Links[n.Tap]
	if !ok || tap.Master == n.Bridge && tap.Up {
		return nil
	}
	return [][]string{{"ip", "link", "set", n.Tap, "mtu", strconv.Itoa(n.MTU), "master", n.Bridge, "up"}}
}
