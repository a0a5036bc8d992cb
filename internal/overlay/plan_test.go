package overlay

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func testNet() Network {
	return Network{ID: "abcdefghijklmnop", VNI: 4097, Bridge: BridgeName("abcdefghijklmnop"), VXLAN: VXLANName("abcdefghijklmnop"),
		MTU: MTU, Local: "10.9.0.1", Peers: []string{"10.9.0.1", "10.9.0.2", "10.9.0.3"}}
}

func cmdLines(cmds [][]string) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = strings.Join(c, " ")
	}
	return out
}

func TestPlanFromNothing(t *testing.T) {
	got := cmdLines(Plan([]Network{testNet()}, Observed{}))
	want := []string{
		"ip link add shvabcdefghij mtu 1450 type bridge",
		"ip link set shvabcdefghij up",
		"ip link add shxabcdefghij mtu 1450 type vxlan id 4097 dstport 4789 local 10.9.0.1",
		"ip link set shxabcdefghij master shvabcdefghij up",
		"bridge fdb append 00:00:00:00:00:00 dev shxabcdefghij dst 10.9.0.2",
		"bridge fdb append 00:00:00:00:00:00 dev shxabcdefghij dst 10.9.0.3",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func converged(n Network) Observed {
	return Observed{
		Links: map[string]Link{
			n.Bridge: {Name: n.Bridge, Kind: "bridge", Up: true},
			n.VXLAN:  {Name: n.VXLAN, Kind: "vxlan", VNI: n.VNI, Master: n.Bridge, Up: true},
		},
		Flood: map[string][]string{n.VXLAN: {"10.9.0.2", "10.9.0.3"}},
	}
}

func TestPlanConverged(t *testing.T) {
	n := testNet()
	if got := Plan([]Network{n}, converged(n)); len(got) != 0 {
		t.Errorf("converged state planned %q", cmdLines(got))
	}
}

func TestPlanPeersChange(t *testing.T) {
	n := testNet()
	n.Peers = []string{"10.9.0.1", "10.9.0.3", "10.9.0.4"} // .2 left, .4 joined
	got := cmdLines(Plan([]Network{n}, converged(n)))
	want := []string{
		"bridge fdb append 00:00:00:00:00:00 dev shxabcdefghij dst 10.9.0.4",
		"bridge fdb del 00:00:00:00:00:00 dev shxabcdefghij dst 10.9.0.2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan %q, want %q", got, want)
	}
}

func TestPlanWrongVNIAndDetached(t *testing.T) {
	n := testNet()
	obs := converged(n)
	obs.Links[n.VXLAN] = Link{Name: n.VXLAN, Kind: "vxlan", VNI: 9999, Master: n.Bridge, Up: true}
	got := cmdLines(Plan([]Network{n}, obs))
	if len(got) < 3 || got[0] != "ip link del shxabcdefghij" || !strings.HasPrefix(got[1], "ip link add shxabcdefghij") {
		t.Errorf("a VXLAN device with another VNI is not replaced: %q", got)
	}
	obs = converged(n)
	obs.Links[n.VXLAN] = Link{Name: n.VXLAN, Kind: "vxlan", VNI: n.VNI, Up: true} // no master (its bridge was remade)
	got = cmdLines(Plan([]Network{n}, obs))
	if !reflect.DeepEqual(got, []string{"ip link set shxabcdefghij master shvabcdefghij up"}) {
		t.Errorf("a detached VXLAN device: %q", got)
	}
}

func TestPlanRemovesWhatIsNotWanted(t *testing.T) {
	n := testNet()
	obs := converged(n)
	obs.Links["eth0"] = Link{Name: "eth0", Kind: "veth"}
	got := cmdLines(Plan(nil, obs))
	want := []string{"ip link del shxabcdefghij", "ip link del shvabcdefghij"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan %q, want %q (VXLAN first; other devices left alone)", got, want)
	}
}

func TestParse(t *testing.T) {
	links, err := parseLinks([]byte(`[{"ifname":"lo","flags":["LOOPBACK","UP"]},
		{"ifname":"shvabc","flags":["BROADCAST","UP"],"linkinfo":{"info_kind":"bridge","info_data":{"stp_state":0}}},
		{"ifname":"shxabc","flags":["BROADCAST"],"master":"shvabc","linkinfo":{"info_kind":"vxlan","info_data":{"id":4097}}}]`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Link{
		"shvabc": {Name: "shvabc", Kind: "bridge", Up: true},
		"shxabc": {Name: "shxabc", Kind: "vxlan", Master: "shvabc", VNI: 4097},
	}
	if !reflect.DeepEqual(links, want) {
		t.Errorf("links %+v, want %+v", links, want)
	}
	flood, err := parseFlood([]byte(`[{"mac":"33:33:00:00:00:01","ifname":"shvabc","flags":["self"]},
		{"mac":"4a:2b:fe:1d:ef:10","ifname":"shxabc","master":"shvabc"},
		{"mac":"00:00:00:00:00:00","ifname":"shxabc","dst":"10.9.0.2","flags":["self"]},
		{"mac":"00:00:00:00:00:00","ifname":"docker0","dst":"10.9.0.9"}]`))
	if err != nil || !reflect.DeepEqual(flood, map[string][]string{"shxabc": {"10.9.0.2"}}) {
		t.Errorf("flood %v %v", flood, err)
	}
}

// TestConverge runs a node's pass against a fake kernel that records
// the commands: the second pass, over the state the first made, does nothing.
func TestConverge(t *testing.T) {
	n := testNet()
	var ran []string
	state := `[]`
	fdb := `[]`
	run := func(_ context.Context, argv []string) ([]byte, error) {
		line := strings.Join(argv, " ")
		switch line {
		case "ip -d -j link show":
			return []byte(state), nil
		case "bridge -j fdb show":
			return []byte(fdb), nil
		}
		ran = append(ran, line)
		return nil, nil
	}
	node := NewNode(NodeConfig{Run: run, StateFile: filepath.Join(t.TempDir(), "overlay.json")})
	if err := node.Converge(context.Background(), nil); err != nil || len(ran) != 0 {
		t.Fatalf("a node asked for nothing ran %q (%v)", ran, err)
	}
	if err := node.Converge(context.Background(), []Network{n}); err != nil {
		t.Fatal(err)
	}
	if len(ran) != 6 {
		t.Fatalf("first pass ran %q", ran)
	}
	state = `[{"ifname":"shvabcdefghij","flags":["UP"],"linkinfo":{"info_kind":"bridge"}},
		{"ifname":"shxabcdefghij","flags":["UP"],"master":"shvabcdefghij","linkinfo":{"info_kind":"vxlan","info_data":{"id":4097}}}]`
	fdb = `[{"mac":"00:00:00:00:00:00","ifname":"shxabcdefghij","dst":"10.9.0.2"},{"mac":"00:00:00:00:00:00","ifname":"shxabcdefghij","dst":"10.9.0.3"}]`
	ran = nil
	if err := node.Converge(context.Background(), []Network{n}); err != nil || len(ran) != 0 {
		t.Errorf("second pass ran %q (%v)", ran, err)
	}
	// A restarted agent (its state file) still removes what it made, and
	// leaves another agent's devices in the same namespace alone.
	state = `[{"ifname":"shvabcdefghij","flags":["UP"],"linkinfo":{"info_kind":"bridge"}},
		{"ifname":"shxabcdefghij","flags":["UP"],"master":"shvabcdefghij","linkinfo":{"info_kind":"vxlan","info_data":{"id":4097}}},
		{"ifname":"shvotherother","flags":["UP"],"linkinfo":{"info_kind":"bridge"}}]`
	again := NewNode(NodeConfig{Run: run, StateFile: node.cfg.StateFile})
	if err := again.Remove(context.Background()); err != nil || !reflect.DeepEqual(ran, []string{"ip link del shxabcdefghij", "ip link del shvabcdefghij"}) {
		t.Errorf("remove ran %q (%v)", ran, err)
	}
}

// A VXLAN device of shoal's left by a cluster this node was in before
// (stopped without leaving: its agent's state file is gone) holds the VNI
// a wanted network takes: the kernel refuses a second device with it, so
// the stale one is removed first, in the same pass. Another agent's
// devices with other VNIs stay.
func TestConvergeRemovesAStaleDeviceHoldingTheVNI(t *testing.T) {
	n := testNet()
	var ran []string
	run := func(_ context.Context, argv []string) ([]byte, error) {
		line := strings.Join(argv, " ")
		switch line {
		case "ip -d -j link show":
			return []byte(`[{"ifname":"shxoldcluster","flags":["UP"],"linkinfo":{"info_kind":"vxlan","info_data":{"id":4097}}},
				{"ifname":"shxotherother","flags":["UP"],"linkinfo":{"info_kind":"vxlan","info_data":{"id":5000}}}]`), nil
		case "bridge -j fdb show":
			return []byte(`[]`), nil
		}
		ran = append(ran, line)
		return nil, nil
	}
	node := NewNode(NodeConfig{Run: run, StateFile: filepath.Join(t.TempDir(), "overlay.json")})
	if err := node.Converge(context.Background(), []Network{n}); err != nil {
		t.Fatal(err)
	}
	if len(ran) == 0 || ran[0] != "ip link del shxoldcluster" {
		t.Fatalf("pass ran %q; want the stale device holding VNI 4097 removed first", ran)
	}
	for _, l := range ran {
		if strings.Contains(l, "shxotherother") {
			t.Errorf("another agent's device touched: %q", l)
		}
		if strings.HasPrefix(l, "ip link add "+n.VXLAN) {
			return
		}
	}
	t.Errorf("pass ran %q; want the wanted VXLAN device added", ran)
}
