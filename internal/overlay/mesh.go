package overlay

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// The routing mesh: a port a service publishes in ingress mode answers on
// every node's addresses. Each node's agent keeps an nftables table of its
// own (MeshTable) that DNATs a new connection to a local address on the
// published port to one of the service's running tasks on the ingress
// network (numgen random), and masquerades it so that the reply comes back
// through this node. The client's source address is therefore not kept.

// MeshTable is the nftables table (family ip) the agents own.
const MeshTable = "shoal-mesh"

// meshRecheck is how often an unchanged mesh is programmed again, in case
// something removed it from the kernel behind the agent's back.
const meshRecheck = 30 * time.Second

// Published is one port the mesh publishes, as a node programs it.
type Published struct {
	Protocol string `json:"protocol"` // tcp, udp or sctp
	Port     uint32 `json:"port"`     // published on every node
	Target   uint32 `json:"target"`   // the tasks' port
	// Backends are the running tasks' addresses on the ingress network.
	Backends []string `json:"backends"`
}

// Mesh is the routing mesh a node programs: the ingress network's bridge
// (its engine's firewall must let the DNATed connections through) and the
// published ports.
type Mesh struct {
	Bridge string      `json:"bridge"`
	Ports  []Published `json:"ports"`
}

// MeshRuleset is the nft script that replaces MeshTable with the rules of
// ports in one transaction ("" when there is nothing to publish). Ports
// without backends are left out: nothing answers there, as on a node
// without the port.
func MeshRuleset(ports []Published) string {
	var dnat, masq []string
	for _, p := range ports {
		if len(p.Backends) == 0 || p.Port == 0 || p.Target == 0 {
			continue
		}
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		to := backendMap(p.Backends)
		dnat = append(dnat, fmt.Sprintf("%s dport %d dnat to %s : %d", proto, p.Port, to, p.Target))
		masq = append(masq, fmt.Sprintf("ct status dnat meta l4proto %s ct original proto-dst %d masquerade", proto, p.Port))
	}
	if len(dnat) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table ip %s\ndelete table ip %s\ntable ip %s {\n", MeshTable, MeshTable, MeshTable)
	b.WriteString("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n")
	for _, r := range dnat {
		fmt.Fprintf(&b, "\t\tfib daddr type local %s\n", r)
	}
	b.WriteString("\t}\n\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n")
	for _, r := range dnat {
		fmt.Fprintf(&b, "\t\tfib daddr type local ip daddr != 127.0.0.0/8 %s\n", r)
	}
	b.WriteString("\t}\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	for _, r := range masq {
		fmt.Fprintf(&b, "\t\t%s\n", r)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// backendMap picks one of ips at random per new connection.
func backendMap(ips []string) string {
	ips = slices.Sorted(slices.Values(ips))
	if len(ips) == 1 {
		return ips[0]
	}
	parts := make([]string, len(ips))
	for i, ip := range ips {
		parts[i] = fmt.Sprintf("%d : %s", i, ip)
	}
	return fmt.Sprintf("numgen random mod %d map { %s }", len(ips), strings.Join(parts, ", "))
}

// forwardRule lets the DNATed connections through the engine's firewall:
// dockerd's FORWARD policy drops new connections to a container port it
// did not publish itself, and DOCKER-USER is the chain it leaves to users.
func forwardRule(bridge string) []string {
	return []string{"DOCKER-USER", "-o", bridge, "-m", "conntrack", "--ctstate", "DNAT", "-m", "comment", "--comment", MeshTable, "-j", "ACCEPT"}
}

// meshState is what the node last programmed.
type meshState struct {
	known  bool // false until the first pass: a table left by an earlier run is removed
	script string
	bridge string
	at     time.Time
}

// convergeMesh programs the routing mesh m (nil: none) when it changed
// since the last pass, or every meshRecheck.
func (n *Node) convergeMesh(ctx context.Context, m *Mesh) error {
	var script, bridge string
	if m != nil {
		script, bridge = MeshRuleset(m.Ports), m.Bridge
	}
	cur := &n.mesh
	if cur.known && cur.script == script && cur.bridge == bridge && (script == "" || time.Since(cur.at) < meshRecheck) {
		return nil
	}
	var err error
	if script == "" {
		err = n.removeMesh(ctx, cur.script != "" || !cur.known, cmp.Or(cur.bridge, bridge))
	} else {
		if cur.bridge != "" && cur.bridge != bridge {
			n.dropForward(ctx, cur.bridge)
		}
		err = n.applyScript(ctx, script)
		if err == nil {
			err = n.ensureForward(ctx, bridge)
		}
	}
	if err != nil {
		cur.known = false // again on the next pass
		return err
	}
	if cur.script != script {
		n.log.Info("overlay: routing mesh programmed", "ports", strings.Count(script, "masquerade"))
	}
	*cur = meshState{known: true, script: script, bridge: bridge, at: time.Now()}
	return nil
}

// removeMesh deletes the table (when there may be one) and the firewall
// rule of bridge.
func (n *Node) removeMesh(ctx context.Context, table bool, bridge string) error {
	n.dropForward(ctx, bridge)
	if !table {
		return nil
	}
	out, err := n.cfg.Run(ctx, []string{"nft", "delete", "table", "ip", MeshTable})
	if err != nil && n.mesh.script != "" {
		return fmt.Errorf("overlay: nft delete table: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// applyScript loads an nft script (nft reads it from a file).
func (n *Node) applyScript(ctx context.Context, script string) error {
	f, err := os.CreateTemp("", "shoal-mesh-*.nft")
	if err != nil {
		return fmt.Errorf("overlay: mesh script: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(script); err != nil {
		f.Close()
		return fmt.Errorf("overlay: mesh script: %w", err)
	}
	f.Close()
	if out, err := n.cfg.Run(ctx, []string{"nft", "-f", f.Name()}); err != nil {
		return fmt.Errorf("overlay: nft -f: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ensureForward adds forwardRule unless the engine's firewall has it.
func (n *Node) ensureForward(ctx context.Context, bridge string) error {
	rule := forwardRule(bridge)
	if _, err := n.cfg.Run(ctx, append([]string{"iptables", "-C"}, rule...)); err == nil {
		return nil
	}
	if out, err := n.cfg.Run(ctx, append([]string{"iptables", "-I"}, rule...)); err != nil {
		return fmt.Errorf("overlay: iptables -I DOCKER-USER: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// dropForward removes forwardRule of bridge ("" : nothing known to remove).
func (n *Node) dropForward(ctx context.Context, bridge string) {
	if bridge == "" {
		return
	}
	for range 4 { // inserted at most once per pass; a few at most
		if _, err := n.cfg.Run(ctx, append([]string{"iptables", "-D"}, forwardRule(bridge)...)); err != nil {
			return
		}
	}
}
