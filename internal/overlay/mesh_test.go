package overlay

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestMeshRuleset(t *testing.T) {
	if got := MeshRuleset(nil); got != "" {
		t.Errorf("no ports: %q", got)
	}
	if got := MeshRuleset([]Published{{Protocol: "tcp", Port: 8080, Target: 80}}); got != "" {
		t.Errorf("a port without backends is not programmed: %q", got)
	}
	got := MeshRuleset([]Published{
		{Protocol: "tcp", Port: 8080, Target: 80, Backends: []string{"10.0.0.20", "10.0.0.5"}},
		{Protocol: "udp", Port: 5353, Target: 53, Backends: []string{"10.0.0.7"}},
	})
	want := `table ip shoal-mesh
delete table ip shoal-mesh
table ip shoal-mesh {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local tcp dport 8080 dnat to numgen random mod 2 map { 0 : 10.0.0.20, 1 : 10.0.0.5 } : 80
		fib daddr type local udp dport 5353 dnat to 10.0.0.7 : 53
	}
	chain output {
		type nat hook output priority -100; policy accept;
		fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 8080 dnat to numgen random mod 2 map { 0 : 10.0.0.20, 1 : 10.0.0.5 } : 80
		fib daddr type local ip daddr != 127.0.0.0/8 udp dport 5353 dnat to 10.0.0.7 : 53
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ct status dnat meta l4proto tcp ct original proto-dst 8080 masquerade
		ct status dnat meta l4proto udp ct original proto-dst 5353 masquerade
	}
}
`
	if got != want {
		t.Errorf("ruleset:\n%s\nwant:\n%s", got, want)
	}
}

// TestConvergeMesh checks the commands a node runs: the table and the
// firewall rule once, nothing while unchanged, all again when the
// backends change, and both removed when the ports go.
func TestConvergeMesh(t *testing.T) {
	var ran, scripts []string
	rules := map[string]bool{}
	run := func(_ context.Context, argv []string) ([]byte, error) {
		line := strings.Join(argv, " ")
		ran = append(ran, line)
		switch {
		case argv[0] == "nft" && argv[1] == "-f":
			b, _ := os.ReadFile(argv[2])
			scripts = append(scripts, string(b))
		case argv[0] == "iptables":
			key := strings.Join(argv[2:], " ")
			switch argv[1] {
			case "-C", "-D":
				if !rules[key] {
					return nil, errTest
				}
				if argv[1] == "-D" {
					delete(rules, key)
				}
			case "-I":
				rules[key] = true
			}
		}
		return nil, nil
	}
	ctx := context.Background()
	node := NewNode(NodeConfig{Run: run})
	m := &Mesh{Bridge: "shvingress00", Ports: []Published{{Protocol: "tcp", Port: 8080, Target: 80, Backends: []string{"10.0.0.5"}}}}
	if err := node.convergeMesh(ctx, m); err != nil {
		t.Fatal(err)
	}
	if len(scripts) != 1 || !strings.Contains(scripts[0], "dnat to 10.0.0.5 : 80") || len(rules) != 1 {
		t.Fatalf("first pass: ran %q, scripts %q, rules %v", ran, scripts, rules)
	}
	ran = nil
	if err := node.convergeMesh(ctx, m); err != nil || len(ran) != 0 {
		t.Fatalf("unchanged mesh ran %q (%v)", ran, err)
	}
	m.Ports[0].Backends = append(m.Ports[0].Backends, "10.0.0.20")
	if err := node.convergeMesh(ctx, m); err != nil || len(scripts) != 2 || !strings.Contains(scripts[1], "numgen random mod 2") || len(rules) != 1 {
		t.Fatalf("new backend: ran %q, scripts %d, rules %v (%v)", ran, len(scripts), rules, err)
	}
	ran = nil
	if err := node.convergeMesh(ctx, &Mesh{Bridge: m.Bridge}); err != nil {
		t.Fatal(err)
	}
	if !contains(ran, "nft delete table ip shoal-mesh") || len(rules) != 0 {
		t.Errorf("ports gone: ran %q, rules left %v", ran, rules)
	}
	// Remove (the node left) takes away what this run programmed.
	if err := node.convergeMesh(ctx, m); err != nil {
		t.Fatal(err)
	}
	ran = nil
	if err := node.Remove(ctx); err != nil || !contains(ran, "nft delete table ip shoal-mesh") || len(rules) != 0 {
		t.Errorf("remove ran %q, rules left %v (%v)", ran, rules, err)
	}
}

var errTest = errors.New("test: no such rule")

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestMembersReady: a task whose health check has not passed is on the
// network but neither named nor a backend of the mesh.
func TestMembersReady(t *testing.T) {
	en := EngineNetwork{Containers: map[string]Endpoint{
		"c1": {Name: "web.1.x", IPv4Address: "10.0.0.5/24"},
		"c2": {Name: "web.2.y", IPv4Address: "10.0.0.6/24"},
	}}
	ms := en.Members(func(id string) (string, bool) { return "web", id == "c1" })
	if got := Records(ms)["tasks.web"]; len(got) != 1 || got[0] != "10.0.0.5" {
		t.Errorf("tasks.web = %v, want the ready task only", got)
	}
}
