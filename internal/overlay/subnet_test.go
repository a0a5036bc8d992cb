package overlay

import (
	"errors"
	"net/netip"
	"testing"
)

func TestAllocateSubnet(t *testing.T) {
	p := netip.MustParsePrefix
	cases := []struct {
		name string
		used []netip.Prefix
		want string
	}{
		{"empty pool: the first /24 after the ingress one", nil, "10.0.1.0/24"},
		{"skips used", []netip.Prefix{p("10.0.1.0/24"), p("10.0.2.0/24")}, "10.0.3.0/24"},
		{"skips an overlapping bigger net", []netip.Prefix{p("10.0.0.0/22")}, "10.0.4.0/24"},
		{"skips a node address", []netip.Prefix{p("10.0.1.7/32")}, "10.0.2.0/24"},
		{"ignores others", []netip.Prefix{p("172.17.0.0/16")}, "10.0.1.0/24"},
	}
	for _, c := range cases {
		got, err := AllocateSubnet(c.used)
		if err != nil || got.String() != c.want {
			t.Errorf("%s: %v %v, want %s", c.name, got, err, c.want)
		}
	}
	if _, err := AllocateSubnet([]netip.Prefix{p("10.0.0.0/8")}); !errors.Is(err, ErrNoSubnet) {
		t.Errorf("a full pool: %v, want ErrNoSubnet", err)
	}
}

func TestSlot(t *testing.T) {
	s := netip.MustParsePrefix("10.0.1.0/24")
	if n := Slots(s); n != 16 {
		t.Fatalf("a /24 has %d shares, want 16", n)
	}
	cases := []struct {
		i       int
		gw, rng string
	}{{0, "10.0.1.1", "10.0.1.0/28"}, {1, "10.0.1.17", "10.0.1.16/28"}, {15, "10.0.1.241", "10.0.1.240/28"}}
	for _, c := range cases {
		gw, rng, err := Slot(s, c.i)
		if err != nil || gw.String() != c.gw || rng.String() != c.rng {
			t.Errorf("share %d: %v %v %v, want %s %s", c.i, gw, rng, err, c.gw, c.rng)
		}
	}
	if _, _, err := Slot(s, 16); !errors.Is(err, ErrBadSlot) {
		t.Errorf("share 16 of a /24: %v, want ErrBadSlot", err)
	}
	big := netip.MustParsePrefix("10.8.0.0/16")
	if gw, rng, _ := Slot(big, 2); gw.String() != "10.8.32.1" || rng.String() != "10.8.32.0/20" {
		t.Errorf("share 2 of a /16: %v %v", gw, rng)
	}
	if n := Slots(netip.MustParsePrefix("10.0.0.0/27")); n != 4 {
		t.Errorf("a /27 has %d shares, want 4 (/29 each)", n)
	}
	if n := Slots(netip.MustParsePrefix("10.0.0.0/30")); n != 0 {
		t.Errorf("a /30 has %d shares, want none", n)
	}
}

func TestFreeSlot(t *testing.T) {
	s := netip.MustParsePrefix("10.0.1.0/26") // shares are capped at /29: 8 of them
	if n := Slots(s); n != 8 {
		t.Fatalf("a /26 has %d shares, want 8", n)
	}
	if i, err := FreeSlot(s, map[string]int{"a": 0, "b": 2}); err != nil || i != 1 {
		t.Errorf("free share: %d %v, want 1", i, err)
	}
	full := map[string]int{}
	for i := range 7 { // the 8th is the VIPs'
		full[string(rune('a'+i))] = i
	}
	if _, err := FreeSlot(s, full); !errors.Is(err, ErrNoSlot) {
		t.Errorf("all taken: %v, want ErrNoSlot", err)
	}
}
