package overlay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Service virtual IPs (--endpoint-mode vip, swarm mode's default): a
// service gets one address on each cluster network it is on, taken from
// the network's last share of the subnet (VIPSlot), which no node's
// engine is ever given. Its name answers that address; every node's
// agent puts the address on the network's bridge (so that its own
// containers' ARP for it is answered by their own node), keeps the ARP
// for it from crossing the VXLAN port, and DNATs a connection to it to
// one of the service's running tasks (vipRuleset).

// ErrNoVIP is returned when a network's VIP share is full (or a node was
// given it before VIPs were kept there).
var ErrNoVIP = errors.New("overlay: no free virtual IP")

// VIPTable is the nftables table (families ip and bridge) of the VIPs.
const VIPTable = "shoal-vip"

// VIP is one service's virtual IP on a network, as a node programs it.
type VIP struct {
	Service string `json:"service"`
	Addr    string `json:"addr"` // without the prefix length
	// Backends are the addresses of the service's running, ready tasks
	// on the network (tasks.<service>).
	Backends []string `json:"backends,omitempty"`
}

// VIPSlot is the share of subnet kept for the services' virtual IPs.
func VIPSlot(subnet netip.Prefix) int { return Slots(subnet) - 1 }

// AllocateVIP is the lowest address of subnet's VIP share that taken
// (service → address) does not hold: the share's addresses but the
// subnet's broadcast. slots (node → share) must not give the share to
// a node (one given before VIPs were kept there).
func AllocateVIP(subnet netip.Prefix, slots map[string]int, taken map[string]string) (netip.Addr, error) {
	i := VIPSlot(subnet)
	_, rng, err := Slot(subnet, i)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %w", ErrNoVIP, err)
	}
	for _, s := range slots {
		if s == i {
			return netip.Addr{}, fmt.Errorf("%w: the last share of %s is a node's", ErrNoVIP, subnet)
		}
	}
	used := map[netip.Addr]bool{}
	for _, a := range taken {
		if ip, err := netip.ParseAddr(a); err == nil {
			used[ip] = true
		}
	}
	last := lastAddr(subnet)
	for a := rng.Addr(); rng.Contains(a) && a != last; a = a.Next() {
		if a != subnet.Masked().Addr() && !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: the VIP share of %s is full", ErrNoVIP, subnet)
}

// lastAddr is subnet's broadcast address.
func lastAddr(subnet netip.Prefix) netip.Addr {
	b := subnet.Masked().Addr().As4()
	for i := subnet.Bits(); i < 32; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom4(b)
}

// vipNets are the networks whose VIPs this node programs: those it has
// an address on (its containers are there; the hairpin is SNATed to it).
func vipNets(want []Network) []Network {
	var out []Network
	for _, n := range want {
		if n.Gateway != "" && len(n.VIPs) > 0 {
			out = append(out, n)
		}
	}
	return out
}

// VIPAddrs are the /32 addresses each bridge carries: its network's VIPs.
func VIPAddrs(want []Network) map[string][]string {
	out := map[string][]string{}
	for _, n := range vipNets(want) {
		for _, v := range n.VIPs {
			out[n.Bridge] = append(out[n.Bridge], v.Addr)
		}
		slices.Sort(out[n.Bridge])
	}
	return out
}

// VIPRuleset is the nft script that replaces VIPTable (in both families)
// with the VIPs of want in one transaction ("" when there is none):
//   - ip: a connection from the network's bridge to a VIP (any TCP, UDP or
//     SCTP port) is DNATed to one of the backends at random, and SNATed to
//     this node's gateway on the network, so that the task's reply comes
//     back through this node (the client talks to the VIP, not the task);
//     what is left (no backends, another protocol) is refused there, but
//     ping, which the node answers as the VIP.
//   - bridge: ARP for a VIP does not cross the VXLAN port, either way:
//     every node has the VIP, and a container must find it on its own.
func VIPRuleset(want []Network) string {
	nets := vipNets(want)
	if len(nets) == 0 {
		return ""
	}
	var dnat, snat, all []string
	var arp []string
	for _, n := range nets {
		var addrs []string
		for _, v := range n.VIPs {
			addrs = append(addrs, v.Addr)
			all = append(all, v.Addr)
			if len(v.Backends) == 0 {
				continue
			}
			dnat = append(dnat, fmt.Sprintf("iifname %q ip daddr %s meta l4proto { tcp, udp, sctp } dnat to %s", n.Bridge, v.Addr, backendMap(v.Backends)))
			snat = append(snat, fmt.Sprintf("oifname %q ct status dnat ct original ip daddr %s snat to %s", n.Bridge, v.Addr, n.Gateway))
		}
		set := setOf(addrs)
		arp = append(arp, fmt.Sprintf("oifname %q arp daddr ip %s drop", n.Port(), set),
			fmt.Sprintf("oifname %q arp saddr ip %s drop", n.Port(), set),
			fmt.Sprintf("iifname %q arp daddr ip %s drop", n.Port(), set))
	}
	var b strings.Builder
	for _, fam := range []string{"ip", "bridge"} {
		fmt.Fprintf(&b, "table %s %s\ndelete table %s %s\n", fam, VIPTable, fam, VIPTable)
	}
	fmt.Fprintf(&b, "table ip %s {\n", VIPTable)
	// Before other DNAT (dockerd's published ports, the mesh's
	// "fib daddr type local"): the VIP is a local address too.
	chain(&b, "prerouting", "type nat hook prerouting priority dstnat - 5;", dnat)
	chain(&b, "postrouting", "type nat hook postrouting priority srcnat;", snat)
	set := setOf(all)
	chain(&b, "input", "type filter hook input priority filter;", []string{
		fmt.Sprintf("ip daddr %s icmp type echo-request accept", set),
		fmt.Sprintf("ip daddr %s meta l4proto tcp reject with tcp reset", set),
		fmt.Sprintf("ip daddr %s reject", set),
	})
	fmt.Fprintf(&b, "}\ntable bridge %s {\n", VIPTable)
	chain(&b, "forward", "type filter hook forward priority filter;", arp)
	chain(&b, "input", "type filter hook input priority filter;", filterRules(arp, "iifname"))
	chain(&b, "output", "type filter hook output priority filter;", filterRules(arp, "oifname"))
	b.WriteString("}\n")
	return b.String()
}

// chain writes an nft chain of rules.
func chain(b *strings.Builder, name, hook string, rules []string) {
	fmt.Fprintf(b, "\tchain %s {\n\t\t%s policy accept;\n", name, hook)
	for _, r := range rules {
		fmt.Fprintf(b, "\t\t%s\n", r)
	}
	b.WriteString("\t}\n")
}

// filterRules are the rules starting with prefix (frames the node itself
// receives from, or sends to, the VXLAN port).
func filterRules(rules []string, prefix string) []string {
	var out []string
	for _, r := range rules {
		if strings.HasPrefix(r, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// setOf is an nft anonymous set of addrs (one address alone is itself).
func setOf(addrs []string) string {
	addrs = slices.Sorted(slices.Values(addrs))
	if len(addrs) == 1 {
		return addrs[0]
	}
	return "{ " + strings.Join(addrs, ", ") + " }"
}

// vipState is what the node last programmed.
type vipState struct {
	known  bool // false until the first pass: what an earlier run left is looked at
	script string
	addrs  map[string][]string
	at     time.Time
}

// convergeVIP programs the VIPs of want when they changed since the last
// pass, or every meshRecheck: the rules first (so that no ARP for a VIP
// leaves before the bridge filter is there), then the addresses.
func (n *Node) convergeVIP(ctx context.Context, want []Network) error {
	script, addrs := VIPRuleset(want), VIPAddrs(want)
	cur := &n.vip
	if cur.known && cur.script == script && maps.EqualFunc(cur.addrs, addrs, slices.Equal) &&
		(script == "" || time.Since(cur.at) < meshRecheck) {
		return nil
	}
	var err error
	if script != "" {
		err = n.applyScript(ctx, script)
	}
	if err == nil && (script != "" || len(cur.addrs) > 0 || !cur.known) {
		err = n.setVIPAddrs(ctx, addrs)
	}
	if err == nil && script == "" && (cur.script != "" || !cur.known) {
		err = n.deleteVIPTables(ctx, cur.script != "")
	}
	if err != nil {
		cur.known = false // again on the next pass
		return err
	}
	if cur.script != script {
		n.log.Info("overlay: service VIPs programmed", "vips", len(slices.Concat(slices.Collect(maps.Values(addrs))...)))
	}
	*cur = vipState{known: true, script: script, addrs: addrs, at: time.Now()}
	return nil
}

// removeVIP takes the VIPs away (the node left).
func (n *Node) removeVIP(ctx context.Context) error {
	if !n.vip.known || n.vip.script == "" {
		return nil
	}
	err := errors.Join(n.setVIPAddrs(ctx, nil), n.deleteVIPTables(ctx, true))
	n.vip = vipState{}
	return err
}

// deleteVIPTables deletes VIPTable in both families; a table that is not
// there is an error only when strict (this run programmed it).
func (n *Node) deleteVIPTables(ctx context.Context, strict bool) error {
	var errs []error
	for _, fam := range []string{"ip", "bridge"} {
		if out, err := n.cfg.Run(ctx, []string{"nft", "delete", "table", fam, VIPTable}); err != nil && strict {
			errs = append(errs, fmt.Errorf("overlay: nft delete table %s %s: %w: %s", fam, VIPTable, err, strings.TrimSpace(string(out))))
		}
	}
	return errors.Join(errs...)
}

// setVIPAddrs makes the /32 addresses of the agent's bridges want's:
// dockerd puts only its gateway (with the subnet's prefix) there, so a
// /32 on a bridge of shoal's is a VIP of shoal's.
func (n *Node) setVIPAddrs(ctx context.Context, want map[string][]string) error {
	out, err := n.cfg.Run(ctx, []string{"ip", "-j", "-4", "addr", "show"})
	if err != nil {
		return fmt.Errorf("overlay: ip addr show: %w", err)
	}
	have, err := parseVIPAddrs(out)
	if err != nil {
		return err
	}
	var errs []error
	run := func(argv ...string) {
		n.log.Info("overlay: plumbing", "cmd", strings.Join(argv, " "))
		if out, err := n.cfg.Run(ctx, argv); err != nil {
			errs = append(errs, fmt.Errorf("overlay: %s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out)))
		}
	}
	for _, br := range slices.Sorted(maps.Keys(have)) {
		for _, a := range have[br] {
			if !slices.Contains(want[br], a) {
				run("ip", "addr", "del", a+"/32", "dev", br)
			}
		}
	}
	for _, br := range slices.Sorted(maps.Keys(want)) {
		if _, ok := have[br]; !ok {
			continue // no gateway on it yet: the next pass adds them
		}
		for _, a := range want[br] {
			if !slices.Contains(have[br], a) {
				run("ip", "addr", "add", a+"/32", "dev", br)
			}
		}
	}
	return errors.Join(errs...)
}

// parseVIPAddrs reads `ip -j -4 addr show`: the /32 addresses of the
// agent's bridges (every bridge of shoal's with an address is a key).
func parseVIPAddrs(out []byte) (map[string][]string, error) {
	var raw []struct {
		Ifname   string `json:"ifname"`
		AddrInfo []struct {
			Local     string `json:"local"`
			Prefixlen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("overlay: ip addr show: %w", err)
	}
	have := map[string][]string{}
	for _, r := range raw {
		if !strings.HasPrefix(r.Ifname, bridgePrefix) {
			continue
		}
		have[r.Ifname] = []string{}
		for _, a := range r.AddrInfo {
			if a.Prefixlen == 32 {
				have[r.Ifname] = append(have[r.Ifname], a.Local)
			}
		}
	}
	return have, nil
}
