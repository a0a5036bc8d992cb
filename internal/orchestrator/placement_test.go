package orchestrator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

func plNode(id string, mod ...func(*Node)) Node {
	n := Node{ID: id, Hostname: "host-" + id, Role: swarm.NodeRoleWorker, Availability: swarm.NodeAvailabilityActive,
		Ready: true, OS: "linux", Arch: "x86_64", NanoCPUs: 4e9, MemoryBytes: 8 << 30}
	for _, f := range mod {
		f(&n)
	}
	return n
}

func plLabel(k, v string) func(*Node) {
	return func(n *Node) {
		n.Labels = maps.Clone(n.Labels)
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[k] = v
	}
}

func plService(mod ...func(*swarm.ServiceSpec)) store.Service {
	s := store.Service{}
	s.ID = "svc1"
	s.Spec.Name = "web"
	for _, f := range mod {
		f(&s.Spec)
	}
	return s
}

func plPlacement(f func(*swarm.Placement)) func(*swarm.ServiceSpec) {
	return func(s *swarm.ServiceSpec) {
		if s.TaskTemplate.Placement == nil {
			s.TaskTemplate.Placement = &swarm.Placement{}
		}
		f(s.TaskTemplate.Placement)
	}
}

func plReserve(cpu, mem int64) func(*swarm.ServiceSpec) {
	return func(s *swarm.ServiceSpec) {
		s.TaskTemplate.Resources = &swarm.ResourceRequirements{Reservations: &swarm.Resources{NanoCPUs: cpu, MemoryBytes: mem}}
	}
}

func plTask(svc, nodeID string) store.Task {
	var t store.Task
	t.ServiceID, t.NodeID, t.DesiredState = svc, nodeID, swarm.TaskStateRunning
	return t
}

// placeN places n tasks and returns how many went to each node.
func plPlaceN(t *testing.T, p *Placer, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		id, err := p.Place()
		if err != nil {
			t.Fatalf("Place: %v", err)
		}
		got[id]++
	}
	return got
}

func TestPlaceSpreadsEvenlyAndDeterministically(t *testing.T) {
	p := NewPlacer(plService(), []Node{plNode("c"), plNode("a"), plNode("b")}, nil)
	var order []string
	for range 6 {
		id, err := p.Place()
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, id)
	}
	if want := []string{"a", "b", "c", "a", "b", "c"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

func TestPlacePrefersFewerTasksOfServiceThenFewerOverall(t *testing.T) {
	running := []store.Task{plTask("svc1", "a"), plTask("other", "b"), plTask("other", "b"), plTask("other", "c")}
	p := NewPlacer(plService(), []Node{plNode("a"), plNode("b"), plNode("c")}, running)
	// a has one of ours; c has fewer tasks overall than b.
	for _, want := range []string{"c", "b", "a"} {
		if id, err := p.Place(); err != nil || id != want {
			t.Fatalf("Place = %q, %v; want %q", id, err, want)
		}
	}
}

func TestPlaceSkipsNodesNotAvailable(t *testing.T) {
	nodes := []Node{
		plNode("a", func(n *Node) { n.Availability = swarm.NodeAvailabilityPause }),
		plNode("b", func(n *Node) { n.Availability = swarm.NodeAvailabilityDrain }),
		plNode("c", func(n *Node) { n.Ready = false }),
		plNode("d"),
	}
	p := NewPlacer(plService(), nodes, nil)
	if got := plPlaceN(t, p, 3); got["d"] != 3 {
		t.Fatalf("placed %v, want all on d", got)
	}
	_, err := NewPlacer(plService(), nodes[:3], nil).Place()
	plWantErr(t, err, "no suitable node (3 nodes not available for new tasks)")
}

func plWantErr(t *testing.T, err error, text string) {
	t.Helper()
	if err == nil || err.Error() != text {
		t.Fatalf("error %v, want %q", err, text)
	}
	if !errors.Is(err, ErrNoSuitableNode) {
		t.Fatalf("error %v does not match ErrNoSuitableNode", err)
	}
}

func TestPlaceConstraints(t *testing.T) {
	nodes := []Node{
		plNode("a", plLabel("zone", "eu"), func(n *Node) { n.Role = swarm.NodeRoleManager }),
		plNode("b", plLabel("zone", "us"), func(n *Node) { n.EngineLabels = map[string]string{"disk": "ssd"} }),
		plNode("c", func(n *Node) { n.OS, n.Arch = "windows", "arm64" }),
	}
	cases := []struct {
		cons []string
		want []string // nodes that take tasks
	}{
		{[]string{"node.labels.zone==eu"}, []string{"a"}},
		{[]string{"node.labels.zone==EU"}, []string{"a"}}, // values compare case-insensitively
		{[]string{"NODE.LABELS.zone==eu"}, []string{"a"}}, // so do key prefixes
		{[]string{"node.labels.ZONE==eu"}, nil},           // label keys do not
		{[]string{"node.labels.zone!=eu"}, []string{"b", "c"}},
		{[]string{"engine.labels.disk==ssd"}, []string{"b"}},
		{[]string{"node.role==manager"}, []string{"a"}},
		{[]string{"node.role!=manager"}, []string{"b", "c"}},
		{[]string{"node.id==c"}, []string{"c"}},
		{[]string{"node.hostname==host-b"}, []string{"b"}},
		{[]string{"node.platform.os==windows"}, []string{"c"}},
		{[]string{"node.platform.arch==x86_64"}, []string{"a", "b"}},
		{[]string{"node.labels.zone!=eu", "node.platform.os==linux"}, []string{"b"}},
		{[]string{"something.else==x"}, nil}, // an unknown key holds nowhere
	}
	for _, c := range cases {
		p := NewPlacer(plService(plPlacement(func(pl *swarm.Placement) { pl.Constraints = c.cons })), nodes, nil)
		var got []string
		for _, n := range nodes {
			if p.Fits(n.ID) == nil {
				got = append(got, n.ID)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%v: fits %v, want %v", c.cons, got, c.want)
		}
		if len(c.want) == 0 {
			_, err := p.Place()
			plWantErr(t, err, "no suitable node (scheduling constraints not satisfied on 3 nodes)")
		}
	}
}

func TestParseConstraintsErrorsAsSwarmMode(t *testing.T) {
	cases := map[string]string{
		"zone":              "constraint expected one operator from ==, !=",
		"node.labels.a>b":   "constraint expected one operator from ==, !=",
		"a==b":              "key 'a' is invalid",
		"9zone==eu":         "key '9zone' is invalid",
		"node.labels.z==":   "value '' is invalid",
		"node.labels.z==e~": "value 'e~' is invalid",
		"node.labels.z=!=x": "key 'node.labels.z=' is invalid",
	}
	for expr, text := range cases {
		_, err := ParseConstraints([]string{"node.role==worker", expr})
		if err == nil || err.Error() != text || !errors.Is(err, ErrInvalidConstraint) {
			t.Errorf("%q: error %v, want %q matching ErrInvalidConstraint", expr, err, text)
		}
		p := NewPlacer(plService(plPlacement(func(pl *swarm.Placement) { pl.Constraints = []string{expr} })), []Node{plNode("a")}, nil)
		if _, err := p.Place(); !errors.Is(err, ErrInvalidConstraint) {
			t.Errorf("%q: Place error %v, want ErrInvalidConstraint", expr, err)
		}
	}
	got, err := ParseConstraints([]string{" node.labels.zone == eu west ", "node.id!=x1"})
	want := []Constraint{{Key: "node.labels.zone", Value: "eu west"}, {Key: "node.id", NotEq: true, Value: "x1"}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ParseConstraints = %v, %v; want %v", got, err, want)
	}
}

func TestPlaceSpreadPreference(t *testing.T) {
	nodes := []Node{
		plNode("a", plLabel("zone", "z1")), plNode("b", plLabel("zone", "z1")),
		plNode("c", plLabel("zone", "z2")),
		plNode("d"), // no label: a group of its own
	}
	spread := plPlacement(func(pl *swarm.Placement) {
		pl.Preferences = []swarm.PlacementPreference{{Spread: &swarm.SpreadOver{SpreadDescriptor: "node.labels.zone"}}}
	})
	got := plPlaceN(t, NewPlacer(plService(spread), nodes, nil), 6)
	if got["a"]+got["b"] != 2 || got["c"] != 2 || got["d"] != 2 {
		t.Fatalf("placed %v, want 2 per zone (z1, z2, none)", got)
	}
	// Tasks already running count for their group: z1 is full first.
	running := []store.Task{plTask("svc1", "a"), plTask("svc1", "b")}
	got = plPlaceN(t, NewPlacer(plService(spread), nodes, running), 2)
	if got["c"] != 1 || got["d"] != 1 {
		t.Fatalf("placed %v, want one on c and one on d", got)
	}
}

func TestPlaceSpreadPreferenceSkipsFullGroups(t *testing.T) {
	nodes := []Node{
		plNode("a", plLabel("zone", "z1")),
		plNode("b", plLabel("zone", "z2"), func(n *Node) { n.Availability = swarm.NodeAvailabilityDrain }),
	}
	spread := plPlacement(func(pl *swarm.Placement) {
		pl.Preferences = []swarm.PlacementPreference{{Spread: &swarm.SpreadOver{SpreadDescriptor: "engine.labels.zone"}}}
	})
	nodes[0].EngineLabels, nodes[1].EngineLabels = nodes[0].Labels, nodes[1].Labels
	if got := plPlaceN(t, NewPlacer(plService(spread), nodes, nil), 3); got["a"] != 3 {
		t.Fatalf("placed %v, want all on a", got)
	}
}

func TestPlaceMaxReplicasPerNode(t *testing.T) {
	max1 := plPlacement(func(pl *swarm.Placement) { pl.MaxReplicas = 1 })
	p := NewPlacer(plService(max1), []Node{plNode("a"), plNode("b")}, nil)
	plPlaceN(t, p, 2)
	_, err := p.Place()
	plWantErr(t, err, "no suitable node (max replicas per node limit exceed)")
	p.Forget("b")
	if id, err := p.Place(); err != nil || id != "b" {
		t.Fatalf("after Forget: %q, %v; want b", id, err)
	}

	nodes := []Node{plNode("a", func(n *Node) { n.Availability = swarm.NodeAvailabilityPause }), plNode("b")}
	p = NewPlacer(plService(max1), nodes, []store.Task{plTask("svc1", "b")})
	_, err = p.Place()
	plWantErr(t, err, "no suitable node (1 node not available for new tasks; max replicas per node limit exceed)")
}

func TestPlaceReservations(t *testing.T) {
	nodes := []Node{
		plNode("a", func(n *Node) { n.NanoCPUs, n.ReservedNanoCPUs = 2e9, 1e9 }),
		plNode("b", func(n *Node) { n.MemoryBytes, n.ReservedMemoryBytes = 1<<30, 1<<30-100 }),
	}
	p := NewPlacer(plService(plReserve(5e8, 0)), nodes, nil)
	plPlaceN(t, p, 3) // a takes 2 (1 CPU free), b 1
	if id, err := p.Place(); err != nil || id != "b" {
		t.Fatalf("4th: %q, %v; want b (a is full)", id, err)
	}
	p.Forget("a")
	if id, err := p.Place(); err != nil || id != "a" {
		t.Fatalf("after Forget: %q, %v; want a (its reservation given back)", id, err)
	}

	p = NewPlacer(plService(plReserve(0, 200)), nodes, nil)
	if got := plPlaceN(t, p, 1); got["a"] != 1 {
		t.Fatalf("placed %v, want a (b lacks memory)", got)
	}
	if err := p.Fits("b"); err == nil || err.Error() != "no suitable node (insufficient resources on 1 node)" {
		t.Fatalf("Fits(b) = %v", err)
	}
}

func TestPlaceExplainsLargestCountFirst(t *testing.T) {
	nodes := []Node{
		plNode("a", plLabel("zone", "us")), plNode("b", plLabel("zone", "us")),
		plNode("c", plLabel("zone", "eu"), func(n *Node) { n.MemoryBytes = 1 << 20 }),
	}
	p := NewPlacer(plService(plReserve(0, 1<<30), plPlacement(func(pl *swarm.Placement) { pl.Constraints = []string{"node.labels.zone==eu"} })), nodes, nil)
	_, err := p.Place()
	plWantErr(t, err, "no suitable node (scheduling constraints not satisfied on 2 nodes; insufficient resources on 1 node)")
	_, err = NewPlacer(plService(), nil, nil).Place()
	plWantErr(t, err, "no suitable node")
}

func TestPlaceHostModePorts(t *testing.T) {
	svc := plService(func(s *swarm.ServiceSpec) {
		s.EndpointSpec = &swarm.EndpointSpec{Ports: []swarm.PortConfig{{TargetPort: 80, PublishedPort: 8080, PublishMode: swarm.PortConfigPublishModeHost}}}
	})
	p := NewPlacer(svc, []Node{plNode("a"), plNode("b")}, []store.Task{plTask("svc1", "a")})
	if id, err := p.Place(); err != nil || id != "b" {
		t.Fatalf("Place = %q, %v; want b", id, err)
	}
	_, err := p.Place()
	plWantErr(t, err, "no suitable node (host-mode port already in use on 2 nodes)")
}

func TestPlacePlatforms(t *testing.T) {
	svc := plService(plPlacement(func(pl *swarm.Placement) {
		pl.Platforms = []swarm.Platform{{OS: "linux", Architecture: "amd64"}}
	}))
	nodes := []Node{plNode("a", func(n *Node) { n.Arch = "aarch64" }), plNode("b")} // b is x86_64 = amd64
	if got := plPlaceN(t, NewPlacer(svc, nodes, nil), 2); got["b"] != 2 {
		t.Fatalf("placed %v, want all on b", got)
	}
	_, err := NewPlacer(svc, nodes[:1], nil).Place()
	plWantErr(t, err, "no suitable node (unsupported platform on 1 node)")
}

func TestFits(t *testing.T) {
	nodes := []Node{plNode("a"), plNode("b", func(n *Node) { n.Availability = swarm.NodeAvailabilityDrain })}
	p := NewPlacer(plService(), nodes, nil)
	if err := p.Fits("a"); err != nil {
		t.Fatalf("Fits(a) = %v", err)
	}
	if err := p.Fits("b"); err == nil || err.Error() != "no suitable node (1 node not available for new tasks)" {
		t.Fatalf("Fits(b) = %v", err)
	}
	if err := p.Fits("nope"); !errors.Is(err, ErrNoSuitableNode) {
		t.Fatalf("Fits(unknown) = %v", err)
	}
	var nse *NoSuitableNodeError
	if err := p.Fits("b"); !errors.As(err, &nse) || nse.Ineligible {
		t.Fatalf("Fits(b) = %#v; a drained node is not ineligible", err)
	}
	c := NewPlacer(plService(plPlacement(func(pl *swarm.Placement) { pl.Constraints = []string{"node.id==b"} })), []Node{plNode("a")}, nil)
	if err := c.Fits("a"); !errors.As(err, &nse) || !nse.Ineligible {
		t.Fatalf("Fits(a) against node.id==b = %#v; want ineligible", err)
	}
	// Fits counts nothing: a is still the emptiest.
	if id, _ := p.Place(); id != "a" {
		t.Fatalf("Place = %q", id)
	}
}

func BenchmarkPlace(b *testing.B) {
	nodes := make([]Node, 1000)
	for i := range nodes {
		nodes[i] = plNode(fmt.Sprintf("n%04d", i), plLabel("zone", fmt.Sprintf("z%d", i%3)))
	}
	var running []store.Task
	for i := range 3000 {
		running = append(running, plTask(fmt.Sprintf("s%d", i%10), nodes[i%len(nodes)].ID))
	}
	svc := plService(plReserve(1e6, 1<<20), plPlacement(func(pl *swarm.Placement) {
		pl.Constraints = []string{"node.role==worker"}
		pl.Preferences = []swarm.PlacementPreference{{Spread: &swarm.SpreadOver{SpreadDescriptor: "node.labels.zone"}}}
	}))
	b.ReportAllocs()
	p := NewPlacer(svc, nodes, running)
	for i := 0; b.Loop(); i++ {
		if i%1000 == 0 {
			p = NewPlacer(svc, nodes, running)
		}
		if _, err := p.Place(); err != nil {
			b.Fatal(err)
		}
	}
}
