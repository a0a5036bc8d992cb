package overlay

import (
	"fmt"
	"math/big"
	"net/netip"
)

// DefaultPool is where subnets are taken from when the user gives none,
// as swarm mode's default address pool (10.0.0.0/8 in /24s); its first
// /24 is skipped, as swarm mode keeps it for the ingress network.
var DefaultPool = netip.MustParsePrefix("10.0.0.0/8")

// DefaultSubnetBits is the size of a subnet taken from DefaultPool.
const DefaultSubnetBits = 24

// slotBits splits a subnet into 2^slotBits shares, one per node: each
// node's engine allocates addresses on its own, in its share only, so no
// two nodes ever give out the same address. A /24 gives 16 nodes 14
// addresses each; a bigger --subnet gives more. The last share is kept
// for the services' virtual IPs (vip.go): a /24 holds 15 nodes.
const slotBits = 4

// maxSlotLen keeps a share big enough for a gateway and a few containers.
const maxSlotLen = 29

// AllocateSubnet returns the first /24 of DefaultPool (after its first)
// that overlaps none of used.
func AllocateSubnet(used []netip.Prefix) (netip.Prefix, error) {
	base := DefaultPool.Addr().As4()
	for i := 1; i < 1<<(DefaultSubnetBits-DefaultPool.Bits()); i++ {
		a := base
		a[1], a[2] = byte(i>>8), byte(i)
		p := netip.PrefixFrom(netip.AddrFrom4(a), DefaultSubnetBits)
		if !Overlaps(p, used) {
			return p, nil
		}
	}
	return netip.Prefix{}, ErrNoSubnet
}

// Overlaps says whether p overlaps any of used.
func Overlaps(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if u.Overlaps(p) {
			return true
		}
	}
	return false
}

// slotLen is the prefix length of one share of subnet.
func slotLen(subnet netip.Prefix) int {
	return min(subnet.Bits()+slotBits, maxSlotLen)
}

// Slots is how many shares subnet has.
func Slots(subnet netip.Prefix) int {
	n := slotLen(subnet) - subnet.Bits()
	if n <= 0 {
		return 0
	}
	return 1 << n
}

// Slot returns share i of subnet: the range its node's engine allocates
// from and the node's gateway address (the share's first host address).
func Slot(subnet netip.Prefix, i int) (gateway netip.Addr, ipRange netip.Prefix, err error) {
	if !subnet.Addr().Is4() || i < 0 || i >= Slots(subnet) {
		return netip.Addr{}, netip.Prefix{}, fmt.Errorf("%w: %d of %s", ErrBadSlot, i, subnet)
	}
	l := slotLen(subnet)
	base := new(big.Int).SetBytes(subnet.Masked().Addr().AsSlice())
	base.Add(base, new(big.Int).Lsh(big.NewInt(int64(i)), uint(32-l)))
	var b [4]byte
	base.FillBytes(b[:])
	ipRange = netip.PrefixFrom(netip.AddrFrom4(b), l)
	return ipRange.Addr().Next(), ipRange, nil
}

// FreeSlot is the lowest share of subnet that slots does not give a node
// (the last share is the services' virtual IPs': see VIPSlot).
func FreeSlot(subnet netip.Prefix, slots map[string]int) (int, error) {
	taken := map[int]bool{VIPSlot(subnet): true}
	for _, i := range slots {
		taken[i] = true
	}
	for i := range Slots(subnet) {
		if !taken[i] {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: %s", ErrNoSlot, subnet)
}
