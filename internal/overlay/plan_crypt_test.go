package overlay

import (
	"context"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// An encrypted network has a bridge and, once the tunnel opened it, a TAP
// device on it: no VXLAN device, no flood entries.
func TestPlanEncrypted(t *testing.T) {
	n := cryptNet(NewKey())
	got := cmdLines(Plan([]Network{n}, Observed{}))
	want := []string{
		"ip link add shvabcdefghij mtu 1420 type bridge",
		"ip link set shvabcdefghij up",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan without the TAP yet:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	obs := Observed{Links: map[string]Link{
		n.Bridge: {Name: n.Bridge, Kind: "bridge", Up: true},
		n.Tap:    {Name: n.Tap, Kind: "tun"},
	}}
	got = cmdLines(Plan([]Network{n}, obs))
	if want := []string{"ip link set shyabcdefghij mtu 1420 master shvabcdefghij up"}; !reflect.DeepEqual(got, want) {
		t.Errorf("plan with the TAP open: %q, want %q", got, want)
	}
	obs.Links[n.Tap] = Link{Name: n.Tap, Kind: "tun", Master: n.Bridge, Up: true}
	if got := Plan([]Network{n}, obs); len(got) != 0 {
		t.Errorf("converged encrypted network planned %q", cmdLines(got))
	}
	got = cmdLines(Plan(nil, obs))
	if want := []string{"ip link del shvabcdefghij", "ip link del shyabcdefghij"}; !reflect.DeepEqual(got, want) {
		t.Errorf("plan once removed: %q, want %q", got, want)
	}
}

// Converge opens the TAP of an encrypted network before it plans (so the
// plan puts it on the bridge), keeps its name as the node's, and closes
// it when the network goes.
func TestConvergeEncrypted(t *testing.T) {
	n := cryptNet(NewKey())
	n.Local, n.Peers = "127.0.0.1", []string{"127.0.0.1", "127.0.0.2"}
	var ran []string
	links := `[{"ifname":"shvabcdefghij","flags":["UP"],"linkinfo":{"info_kind":"bridge"}},{"ifname":"shyabcdefghij","flags":[],"linkinfo":{"info_kind":"tun"}}]`
	run := func(_ context.Context, argv []string) ([]byte, error) {
		if argv[0] == "ip" && argv[1] == "-d" {
			return []byte(links), nil
		}
		ran = append(ran, strings.Join(argv, " "))
		return nil, nil
	}
	node := NewNode(NodeConfig{Run: run, StateFile: filepath.Join(t.TempDir(), "overlay.json")})
	node.crypt.port = 0 // any free port: the test's node is not alone on this machine
	var tap *fakeTap
	node.crypt.openTap = func(name string) (io.ReadWriteCloser, error) {
		if name != n.Tap {
			t.Errorf("TAP named %q, want %q", name, n.Tap)
		}
		tap = newFakeTap()
		return tap, nil
	}
	if err := node.Converge(context.Background(), []Network{n}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"ip link set shyabcdefghij mtu 1420 master shvabcdefghij up"}; !reflect.DeepEqual(ran, want) {
		t.Errorf("ran %q, want %q", ran, want)
	}
	if !node.owned[n.Tap] || !node.owned[n.Bridge] || node.owned[""] {
		t.Errorf("owned %v", node.owned)
	}
	ran = nil
	if err := node.Converge(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tap.closed:
	default:
		t.Error("the TAP of a removed network is still open")
	}
	if want := []string{"ip link del shvabcdefghij", "ip link del shyabcdefghij"}; !reflect.DeepEqual(ran, want) {
		t.Errorf("ran %q, want %q", ran, want)
	}
}

// On an encrypted network, ARP for a service's VIP is kept off the TAP
// device, as it is off the VXLAN device of a plain one.
func TestVIPRulesetEncrypted(t *testing.T) {
	n := cryptNet(NewKey())
	n.Gateway, n.VIPs = "10.0.1.1", []VIP{{Service: "web", Addr: "10.0.1.240", Backends: []string{"10.0.1.2"}}}
	got := VIPRuleset([]Network{n})
	for _, want := range []string{`oifname "shyabcdefghij" arp daddr ip 10.0.1.240 drop`, `iifname "shyabcdefghij" arp daddr ip 10.0.1.240 drop`} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, `""`) {
		t.Errorf("a rule names no device:\n%s", got)
	}
}
