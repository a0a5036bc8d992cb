package overlay

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestAllocateVIP(t *testing.T) {
	s := netip.MustParsePrefix("10.0.1.0/24")
	if i := VIPSlot(s); i != 15 {
		t.Fatalf("VIP share of a /24: %d, want 15", i)
	}
	a, err := AllocateVIP(s, map[string]int{"n1": 0}, nil)
	if err != nil || a.String() != "10.0.1.240" {
		t.Fatalf("first VIP: %v %v, want 10.0.1.240", a, err)
	}
	a, err = AllocateVIP(s, nil, map[string]string{"s1": "10.0.1.240", "s2": "10.0.1.242"})
	if err != nil || a.String() != "10.0.1.241" {
		t.Errorf("a free VIP between taken ones: %v %v", a, err)
	}
	taken := map[string]string{}
	for i := range 15 {
		a, err := AllocateVIP(s, nil, taken)
		if err != nil {
			t.Fatalf("VIP %d: %v", i, err)
		}
		taken[a.String()] = a.String()
	}
	if _, ok := taken["10.0.1.255"]; ok {
		t.Errorf("the broadcast address was given: %v", taken)
	}
	if _, err := AllocateVIP(s, nil, taken); !errors.Is(err, ErrNoVIP) {
		t.Errorf("a full share: %v, want ErrNoVIP", err)
	}
	if _, err := AllocateVIP(s, map[string]int{"n16": 15}, nil); !errors.Is(err, ErrNoVIP) {
		t.Errorf("a node holding the last share (an older network): %v, want ErrNoVIP", err)
	}
	if a, err := AllocateVIP(netip.MustParsePrefix("10.8.0.0/16"), nil, nil); err != nil || a.String() != "10.8.240.0" {
		t.Errorf("first VIP of a /16: %v %v", a, err)
	}
}

// TestVIPRuleset checks the parts that make a VIP work: DNAT of any port
// to the backends from the network's bridge, SNAT to the node's gateway,
// refusal when nothing answers, ARP kept off the VXLAN port; and nothing
// for a network this node has no address on.
func TestVIPRuleset(t *testing.T) {
	if got := VIPRuleset([]Network{{Bridge: "shva", VIPs: []VIP{{Addr: "10.0.1.240"}}}}); got != "" {
		t.Errorf("a network without a gateway here: %q", got)
	}
	got := VIPRuleset([]Network{{Bridge: "shva", VXLAN: "shxa", Gateway: "10.0.1.1", VIPs: []VIP{
		{Service: "web", Addr: "10.0.1.240", Backends: []string{"10.0.1.2", "10.0.1.18"}},
		{Service: "idle", Addr: "10.0.1.241"},
	}}})
	for _, want := range []string{
		"table ip shoal-vip\ndelete table ip shoal-vip\ntable bridge shoal-vip\ndelete table bridge shoal-vip\n",
		"type nat hook prerouting priority dstnat - 5;",
		`iifname "shva" ip daddr 10.0.1.240 meta l4proto { tcp, udp, sctp } dnat to numgen random mod 2 map { 0 : 10.0.1.18, 1 : 10.0.1.2 }`,
		`oifname "shva" ct status dnat ct original ip daddr 10.0.1.240 snat to 10.0.1.1`,
		"ip daddr { 10.0.1.240, 10.0.1.241 } icmp type echo-request accept",
		"ip daddr { 10.0.1.240, 10.0.1.241 } meta l4proto tcp reject with tcp reset",
		`oifname "shxa" arp daddr ip { 10.0.1.240, 10.0.1.241 } drop`,
		`iifname "shxa" arp daddr ip { 10.0.1.240, 10.0.1.241 } drop`,
		`oifname "shxa" arp saddr ip { 10.0.1.240, 10.0.1.241 } drop`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "10.0.1.241 meta l4proto { tcp") {
		t.Errorf("a VIP without backends is DNATed:\n%s", got)
	}
}

// TestConvergeVIP checks the commands a node runs: rules then addresses,
// nothing while unchanged, a stale /32 removed, and all of it taken away
// when the VIPs go and when the node leaves.
func TestConvergeVIP(t *testing.T) {
	addrs := map[string][]string{"shva": {}}
	var ran, scripts []string
	run := func(_ context.Context, argv []string) ([]byte, error) {
		ran = append(ran, strings.Join(argv, " "))
		switch {
		case argv[0] == "nft" && argv[1] == "-f":
			b, _ := os.ReadFile(argv[2])
			scripts = append(scripts, string(b))
		case argv[0] == "ip" && argv[1] == "-j":
			return []byte(ipAddrJSON(addrs)), nil
		case argv[0] == "ip" && argv[1] == "addr":
			a, br := strings.TrimSuffix(argv[3], "/32"), argv[5]
			if argv[2] == "add" {
				addrs[br] = append(addrs[br], a)
			} else {
				addrs[br] = remove(addrs[br], a)
			}
		}
		return nil, nil
	}
	ctx := context.Background()
	node := NewNode(NodeConfig{Run: run})
	want := []Network{{Bridge: "shva", VXLAN: "shxa", Gateway: "10.0.1.1", VIPs: []VIP{{Service: "web", Addr: "10.0.1.240", Backends: []string{"10.0.1.2"}}}}}
	addrs["shva"] = []string{"10.0.1.250"} // left by an earlier run
	if err := node.convergeVIP(ctx, want); err != nil {
		t.Fatal(err)
	}
	if len(scripts) != 1 || !strings.HasPrefix(ran[0], "nft -f") || strings.Join(addrs["shva"], ",") != "10.0.1.240" {
		t.Fatalf("first pass: ran %q, addresses %v", ran, addrs)
	}
	ran = nil
	if err := node.convergeVIP(ctx, want); err != nil || len(ran) != 0 {
		t.Fatalf("unchanged VIPs ran %q (%v)", ran, err)
	}
	want[0].VIPs[0].Backends = nil
	if err := node.convergeVIP(ctx, want); err != nil || len(scripts) != 2 || strings.Contains(scripts[1], "dnat") {
		t.Fatalf("no backends: ran %q (%v)", ran, err)
	}
	ran = nil
	if err := node.convergeVIP(ctx, []Network{{Bridge: "shva", Gateway: "10.0.1.1"}}); err != nil {
		t.Fatal(err)
	}
	if len(addrs["shva"]) != 0 || !contains(ran, "nft delete table ip shoal-vip") || !contains(ran, "nft delete table bridge shoal-vip") {
		t.Errorf("VIPs gone: ran %q, addresses %v", ran, addrs)
	}
	if err := node.convergeVIP(ctx, want); err != nil {
		t.Fatal(err)
	}
	ran = nil
	if err := node.Remove(ctx); err != nil || !contains(ran, "nft delete table bridge shoal-vip") || len(addrs["shva"]) != 0 {
		t.Errorf("remove ran %q, addresses %v (%v)", ran, addrs, err)
	}
}

func ipAddrJSON(addrs map[string][]string) string {
	var parts []string
	for br, list := range addrs {
		var infos []string
		infos = append(infos, `{"family":"inet","local":"10.0.1.1","prefixlen":24}`)
		for _, a := range list {
			infos = append(infos, `{"family":"inet","local":"`+a+`","prefixlen":32}`)
		}
		parts = append(parts, `{"ifname":"`+br+`","addr_info":[`+strings.Join(infos, ",")+`]}`)
	}
	parts = append(parts, `{"ifname":"eth0","addr_info":[{"family":"inet","local":"192.168.1.2","prefixlen":32}]}`)
	return "[" + strings.Join(parts, ",") + "]"
}

func remove(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
