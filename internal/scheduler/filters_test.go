package scheduler

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const gib = 1 << 30

// mk returns a healthy node with 4 CPUs and 8 GiB, changed by mods.
func mk(name string, mods ...func(*Node)) *Node {
	n := &Node{ID: "id-" + name, Name: name, Health: Healthy, NanoCPUs: 4e9, Memory: 8 * gib}
	for _, m := range mods {
		m(n)
	}
	return n
}

func labels(kv ...string) func(*Node) {
	return func(n *Node) {
		n.Labels = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

func with(cs ...Container) func(*Node) {
	return func(n *Node) { n.Containers = append(n.Containers, cs...) }
}

func health(h Health) func(*Node) { return func(n *Node) { n.Health = h } }

// collect is a Strategy that records every node offered to it.
type collect struct{ names *[]string }

func (c collect) Name() string { return "collect" }
func (c collect) picker(*ask) picker {
	*c.names = (*c.names)[:0] // Place starts over when it had to rank new nodes
	return &collector{names: c.names}
}

type collector struct {
	names *[]string
	first *Node
}

func (c *collector) offer(v *view) {
	*c.names = append(*c.names, v.n.Name)
	if c.first == nil {
		c.first = v.n
	}
}
func (c *collector) chosen() *Node { return c.first }

// feasible lists, sorted, the nodes of pool that Place considers for req
// once the filters and soft rules have run.
func feasible(t *testing.T, req *Request, pool []*Node) []string {
	t.Helper()
	var names []string
	_, err := New(collect{&names}, Options{}).Place(req, pool)
	var nf *NoFitError
	if err != nil && !errors.As(err, &nf) {
		t.Fatalf("Place: %v", err)
	}
	slices.Sort(names)
	return names
}

type filterCase struct {
	name string
	req  Request
	pool []*Node
	want []string // feasible nodes
}

func runFilterCases(t *testing.T, cases []filterCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := feasible(t, &tc.req, tc.pool)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("feasible = %q, want %q", got, want)
			}
		})
	}
}

func TestHealthFilter(t *testing.T) {
	runFilterCases(t, []filterCase{
		{"only healthy", Request{}, []*Node{mk("a"), mk("b", health(Unhealthy)), mk("c", health(Pending)),
			mk("d", health(Paused)), mk("e", health(Drained)), mk("f", health(Health(42)))}, []string{"a"}},
	})
}

func TestConstraintFilter(t *testing.T) {
	pool := func() []*Node {
		return []*Node{
			mk("web-1", labels("zone", "eu-1", "node.labels.team", "core")),
			mk("web-2", labels("zone", "eu-2"), func(n *Node) { n.StorageDriver, n.OSType = "zfs", "linux" }),
			mk("db-1", labels("zone", "us-1", "storagedriver", "btrfs"), func(n *Node) {
				n.KernelVersion, n.OperatingSystem, n.OSType, n.Architecture = "6.1.0", "Debian GNU/Linux 12", "windows", "aarch64"
			}),
			mk("bare"),
		}
	}
	c := func(exprs ...string) Request {
		var env []string
		for _, e := range exprs {
			env = append(env, "constraint:"+e)
		}
		return Request{Env: env}
	}
	runFilterCases(t, []filterCase{
		{"label ==", c("zone==eu-1"), pool(), []string{"web-1"}},
		{"label !=", c("zone!=eu-1"), pool(), []string{"web-2", "db-1", "bare"}},
		{"label glob", c("zone==eu-*"), pool(), []string{"web-1", "web-2"}},
		{"label ? glob", c("zone==??-1"), pool(), []string{"web-1", "db-1"}},
		{"label regex", c("zone==/^(eu-2|us-1)$/"), pool(), []string{"web-2", "db-1"}},
		{"missing label never matches ==", c("zone==*"), pool(), []string{"web-1", "web-2", "db-1"}},
		{"missing label matches !=", c("zone!=*"), pool(), []string{"bare"}},
		{"two constraints", c("zone==eu-*", "node!=web-1"), pool(), []string{"web-2"}},
		{"node by name", c("node==db-1"), pool(), []string{"db-1"}},
		{"node by ID", c("node==id-web-2"), pool(), []string{"web-2"}},
		{"node glob", c("node==web-*"), pool(), []string{"web-1", "web-2"}},
		{"node !=", c("node!=web-*"), pool(), []string{"db-1", "bare"}},
		{"node labels", c("node.labels.team==core"), pool(), []string{"web-1"}},
		{"storagedriver field", c("storagedriver==zfs"), pool(), []string{"web-2"}},
		{"storagedriver label when field unknown", c("storagedriver==btrfs"), pool(), []string{"db-1"}},
		{"kernelversion", c("kernelversion==6.*"), pool(), []string{"db-1"}},
		{"operatingsystem with spaces", c("operatingsystem==Debian GNU/Linux 12"), pool(), []string{"db-1"}},
		{"ostype", c("ostype==linux"), pool(), []string{"web-2"}},
		{"architecture", c("architecture!=aarch64"), pool(), []string{"web-1", "web-2", "bare"}},
		{"label form", Request{Labels: map[string]string{LabelConstraints: `["zone==us-1"]`}}, pool(), []string{"db-1"}},
		{"pre-parsed rules", Request{Env: []string{"constraint:zone==eu-1"}, Rules: &Rules{}}, pool(), []string{"web-1", "web-2", "db-1", "bare"}},
	})
}

func TestAffinityFilter(t *testing.T) {
	pool := func() []*Node {
		return []*Node{
			mk("a", with(
				Container{ID: "abc123def", Name: "db", State: "running", Labels: map[string]string{"com.example.role": "database"}},
			), func(n *Node) {
				n.Images = []Image{{ID: "sha256:feed01", RepoTags: []string{"redis:latest", "docker.io/library/nginx:1.25"}}}
			}),
			mk("b", with(
				Container{ID: "999aaa", Name: "cache", State: "exited", Labels: map[string]string{"com.example.role": "frontend"}},
			), func(n *Node) {
				n.Images = []Image{{ID: "sha256:beef02", RepoTags: []string{"redis:7"}, RepoDigests: []string{"redis@sha256:d1"}}}
			}),
			mk("c"),
		}
	}
	a := func(exprs ...string) Request {
		var env []string
		for _, e := range exprs {
			env = append(env, "affinity:"+e)
		}
		return Request{Env: env}
	}
	runFilterCases(t, []filterCase{
		{"container by name", a("container==db"), pool(), []string{"a"}},
		{"container by ID prefix", a("container==999"), pool(), []string{"b"}},
		{"container glob", a("container==ca*"), pool(), []string{"b"}},
		{"container regex on ID", a("container==/^abc/"), pool(), []string{"a"}},
		{"container !=", a("container!=db"), pool(), []string{"b", "c"}},
		{"image default tag latest", a("image==redis"), pool(), []string{"a"}},
		{"image tag", a("image==redis:7"), pool(), []string{"b"}},
		{"image docker.io form", a("image==nginx:1.25"), pool(), []string{"a"}},
		{"image full name", a("image==docker.io/library/redis:7"), pool(), []string{"b"}},
		{"image ID prefix", a("image==beef"), pool(), []string{"b"}},
		{"image full ID", a("image==sha256:feed01"), pool(), []string{"a"}},
		{"image digest", a("image==redis@sha256:d1"), pool(), []string{"b"}},
		{"image glob any tag", a("image==redis:*"), pool(), []string{"a", "b"}},
		{"image regex on repository", a("image==/^ngin/"), pool(), []string{"a"}},
		{"image !=", a("image!=redis:*"), pool(), []string{"c"}},
		{"container label", a("com.example.role==database"), pool(), []string{"a"}},
		{"container label glob", a("com.example.role==*end"), pool(), []string{"b"}},
		{"container label !=", a("com.example.role!=database"), pool(), []string{"b", "c"}},
		{"label form", Request{Labels: map[string]string{LabelAffinities: `["container==cache"]`}}, pool(), []string{"b"}},
	})
}

func TestDependencyFilter(t *testing.T) {
	pool := func() []*Node {
		return []*Node{
			mk("a", with(Container{ID: "aaa111", Name: "data", State: "exited"}), func(n *Node) {
				n.Networks = []string{"bridge", "backend"}
				n.Volumes = []string{"pgdata"}
			}),
			mk("b", with(Container{ID: "bbb222", Name: "web", State: "running"}), func(n *Node) {
				n.Networks = []string{"bridge", "backend", "front"}
			}),
			mk("c", with(Container{ID: "web999", Name: "other", State: "running"}), func(n *Node) { n.Networks = []string{"bridge"} }),
		}
	}
	runFilterCases(t, []filterCase{
		// "web" is b's container's name and also a prefix of c's
		// container's ID: it means the named one, as dockerd resolves it.
		{"link name that is also an ID prefix", Request{Links: []string{"web:w"}}, pool(), []string{"b"}},
		{"volumes-from with mode", Request{VolumesFrom: []string{"data:ro"}}, pool(), []string{"a"}},
		{"link name:alias", Request{Links: []string{"web:w"}}, pool(), []string{"b"}},
		{"link by ID prefix", Request{Links: []string{"/bbb"}}, pool(), []string{"b"}},
		{"network container:", Request{NetworkMode: "container:data"}, pool(), []string{"a"}},
		{"two dependencies on two nodes", Request{VolumesFrom: []string{"data"}, Links: []string{"web:w"}}, pool(), nil},
		{"network on some nodes", Request{Networks: []string{"backend"}}, pool(), []string{"a", "b"}},
		{"network mode naming a network", Request{NetworkMode: "front"}, pool(), []string{"b"}},
		{"predefined networks", Request{NetworkMode: "bridge", Networks: []string{"host", "none"}}, pool(), []string{"a", "b", "c"}},
		{"network nowhere", Request{Networks: []string{"ghost"}}, pool(), []string{"a", "b", "c"}},
		{"named volume", Request{Volumes: []string{"pgdata"}}, pool(), []string{"a"}},
		{"named volume nowhere", Request{Volumes: []string{"fresh"}}, pool(), []string{"a", "b", "c"}},
		{"host path is no volume", Request{Volumes: []string{"/srv/data:/data"}}, pool(), []string{"a", "b", "c"}},
	})
}

// TestDependenciesApart: when the containers a request links to (or
// otherwise depends on) exist but on different nodes, the answer says
// which is where, not only how many nodes lack each (issue 10 #7).
func TestDependenciesApart(t *testing.T) {
	pool := func() []*Node {
		return []*Node{
			mk("e1", with(Container{ID: "aaa1", Name: "db", State: "running"})),
			mk("e2", with(Container{ID: "bbb2", Name: "cache", State: "running"}, Container{ID: "ccc3", Name: "data", State: "exited"})),
			mk("e3", health(Unhealthy), with(Container{ID: "ddd4", Name: "queue", State: "running"})),
			mk("e4"),
		}
	}
	tests := []struct {
		name string
		req  Request
		want string // "" when it is placed
	}{
		{"links on two nodes", Request{Links: []string{"/db:/web/db", "cache:cache"}},
			"no node can run this container: 1 node unhealthy, containers linked to must be on one node: db is on e1, cache is on e2"},
		{"mixed dependencies", Request{VolumesFrom: []string{"data:ro"}, Links: []string{"db"}},
			"no node can run this container: 1 node unhealthy, containers it depends on must be on one node: data (--volumes-from) is on e2, db (--link) is on e1"},
		{"one on an unhealthy node", Request{Links: []string{"db", "queue"}},
			"no node can run this container: 1 node unhealthy, containers linked to must be on one node: db is on e1, queue is on e3 (unhealthy)"},
		{"one missing everywhere", Request{Links: []string{"db", "nosuch"}},
			"no node can run this container: 1 node unhealthy, 2 nodes lack container db (--link), 1 node lacks container nosuch (--link)"},
		{"together", Request{Links: []string{"cache"}, VolumesFrom: []string{"data"}}, ""},
		{"one container named twice", Request{Links: []string{"db:a", "db:b"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(Spread{}, Options{}).Place(&tt.req, pool())
			if tt.want == "" {
				if err != nil {
					t.Fatalf("not placed: %v", err)
				}
				return
			}
			var nf *NoFitError
			if !errors.As(err, &nf) {
				t.Fatalf("placed on %v (err %v), want *NoFitError", n, err)
			}
			if err.Error() != tt.want {
				t.Errorf("got  %q\nwant %q", err, tt.want)
			}
		})
	}
}

func TestPortFilter(t *testing.T) {
	c := func(state string, ports ...Port) Container {
		return Container{ID: "x" + state, Name: "x" + state, State: state, Ports: ports}
	}
	pool := func() []*Node {
		return []*Node{
			mk("tcp80", with(c("running", Port{HostPort: 80, Proto: "tcp"}))),
			mk("udp53", with(c("running", Port{HostIP: "0.0.0.0", HostPort: 53, Proto: "udp"}))),
			mk("ip80", with(c("paused", Port{HostIP: "10.0.0.1", HostPort: 80}))),
			mk("exited80", with(c("exited", Port{HostPort: 80, Proto: "tcp"}))),
		}
	}
	p := func(ports ...Port) Request { return Request{Ports: ports} }
	runFilterCases(t, []filterCase{
		{"port in use", p(Port{HostPort: 80, Proto: "tcp"}), pool(), []string{"udp53", "exited80"}},
		{"default proto tcp", p(Port{HostPort: 80}), pool(), []string{"udp53", "exited80"}},
		{"other proto", p(Port{HostPort: 53, Proto: "tcp"}), pool(), []string{"tcp80", "udp53", "ip80", "exited80"}},
		{"same proto", p(Port{HostPort: 53, Proto: "udp"}), pool(), []string{"tcp80", "ip80", "exited80"}},
		{"other host IP", p(Port{HostIP: "10.0.0.2", HostPort: 80}), pool(), []string{"udp53", "ip80", "exited80"}},
		{"same host IP", p(Port{HostIP: "10.0.0.1", HostPort: 80}), pool(), []string{"udp53", "exited80"}},
		{"random port", p(Port{HostPort: 0}), pool(), []string{"tcp80", "udp53", "ip80", "exited80"}},
	})
}

func TestSlotsFilter(t *testing.T) {
	c := func(state string) Container { return Container{ID: state, State: state} }
	runFilterCases(t, []filterCase{
		{"slots", Request{}, []*Node{
			mk("full", labels("containerslots", "2"), with(c("running"), c("created"))),
			mk("free", labels("containerslots", "2"), with(c("running"), c("exited"), c("dead"))),
			mk("zero", labels("containerslots", "0")),
			mk("bad", labels("containerslots", "many"), with(c("running"))),
			mk("none", with(c("running"), c("running"), c("running"))),
		}, []string{"free", "bad", "none"}},
	})
}

func TestResourceFilter(t *testing.T) {
	c := func(state string, mem, memRes, nano, shares int64) Container {
		return Container{ID: state, State: state, Memory: mem, MemoryReservation: memRes, NanoCPUs: nano, CPUShares: shares}
	}
	pool := func() []*Node {
		return []*Node{
			mk("mem6", with(c("running", 4*gib, 0, 0, 0), c("created", 0, 2*gib, 0, 0), c("exited", 8*gib, 0, 0, 0))),
			mk("cpu3", with(c("restarting", 0, 0, 2e9, 0), c("paused", 0, 0, 0, 1024))),
			mk("full", with(c("running", 8*gib, 0, 4e9, 0))),
			mk("unknown", func(n *Node) { n.NanoCPUs, n.Memory = 0, 0 }),
		}
	}
	runFilterCases(t, []filterCase{
		{"no ask always fits", Request{}, pool(), []string{"mem6", "cpu3", "full", "unknown"}},
		{"memory", Request{Memory: 2 * gib}, pool(), []string{"mem6", "cpu3"}},
		{"memory reservation counts", Request{MemoryReservation: 3 * gib}, pool(), []string{"cpu3"}},
		{"max of limit and reservation", Request{Memory: gib, MemoryReservation: 3 * gib}, pool(), []string{"cpu3"}},
		{"nano CPUs", Request{NanoCPUs: 1e9}, pool(), []string{"mem6", "cpu3"}},
		{"CPU shares: 1024 = 1 CPU", Request{CPUShares: 2048}, pool(), []string{"mem6"}},
		{"nano CPUs win over shares", Request{NanoCPUs: 5e8, CPUShares: 8192}, pool(), []string{"mem6", "cpu3"}},
	})
	t.Run("overcommit", func(t *testing.T) {
		n := mk("n", with(c("running", 8*gib, 0, 0, 0)))
		req := &Request{Memory: gib / 4}
		if _, err := New(Spread{}, Options{}).Place(req, []*Node{n}); err == nil {
			t.Error("no overcommit: 8.25 GiB fitted on 8 GiB")
		}
		if _, err := New(Spread{}, Options{Overcommit: DefaultOvercommit}).Place(req, []*Node{n}); err != nil {
			t.Errorf("5%% overcommit: %v", err)
		}
		req.Memory = gib / 2
		if _, err := New(Spread{}, Options{Overcommit: DefaultOvercommit}).Place(req, []*Node{n}); err == nil {
			t.Error("5% overcommit: 8.5 GiB fitted on 8.4 GiB")
		}
		empty := mk("e")
		req.Memory = 7 * gib
		if _, err := New(Spread{}, Options{Overcommit: -0.25}).Place(req, []*Node{empty}); err == nil {
			t.Error("-25% overcommit: 7 GiB fitted in 6 GiB")
		}
		if _, err := New(Spread{}, Options{Overcommit: -3}).Place(req, []*Node{empty}); err != nil {
			t.Errorf("overcommit ≤ -1 should count as 0: %v", err)
		}
	})
}

func TestNoFitExplanation(t *testing.T) {
	pool := []*Node{
		mk("u1", health(Unhealthy)), mk("u2", health(Unhealthy)), mk("d", health(Drained)),
		mk("us1", labels("zone", "us")), mk("us2", labels("zone", "us")), mk("us3", labels("zone", "us")),
		mk("small", labels("zone", "eu"), func(n *Node) { n.Memory = 2 * gib }),
		mk("busy", labels("zone", "eu", "containerslots", "1"), with(Container{ID: "c", State: "running", Ports: []Port{{HostPort: 443}}})),
		mk("slow", labels("zone", "eu"), func(n *Node) { n.NanoCPUs = 1e9 }),
	}
	req := &Request{Env: []string{"constraint:zone==eu"}, Memory: 4 * gib, NanoCPUs: 15e8, Ports: []Port{{HostPort: 443}}}
	_, err := New(Binpack{}, Options{}).Place(req, pool)
	var nf *NoFitError
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v, want *NoFitError", err)
	}
	want := "no node can run this container: 2 nodes unhealthy, 1 node drained, 3 nodes fail constraint zone==eu, " +
		"1 node has port 443/tcp in use, 1 node lacks 1.5 CPUs, 1 node lacks 4 GiB of memory"
	if err.Error() != want {
		t.Errorf("got  %q\nwant %q", err, want)
	}
	if len(nf.Reasons) != 5 || nf.Reasons[0].Filter != "health" || nf.Reasons[0].Nodes != 3 || nf.Reasons[2].Filter != "port" {
		t.Errorf("reasons = %+v", nf.Reasons)
	}

	// A second call on the same scheduler explains the same way.
	_, err2 := New(Spread{}, Options{}).Place(req, pool)
	if err2 == nil || err2.Error() != want {
		t.Errorf("second call: %v", err2)
	}
}

func TestNoFitExplanationWording(t *testing.T) {
	tests := []struct {
		f    filter
		n    int
		want string
	}{
		{&constraintFilter{x: mustExpr(t, "disk==ssd")}, 1, "1 node fails constraint disk==ssd"},
		{&affinityFilter{x: mustExpr(t, "container==db")}, 2, "2 nodes fail affinity container==db"},
		{&containerDep{ref: "db", flag: "--link"}, 3, "3 nodes lack container db (--link)"},
		{&resourceDep{"network", "backend", nil}, 1, "1 node lacks network backend"},
		{&resourceDep{"volume", "pg", nil}, 2, "2 nodes lack volume pg"},
		{&portFilter{Port{HostIP: "10.0.0.1", HostPort: 53, Proto: "udp"}}, 2, "2 nodes have port 10.0.0.1:53/udp in use"},
		{slotsFilter{}, 1, "1 node has no free container slot"},
		{&cpuFilter{1e9}, 1, "1 node lacks 1 CPU"},
		{&cpuFilter{25e7}, 2, "2 nodes lack 0.25 CPU"},
		{&memoryFilter{512 << 20}, 1, "1 node lacks 512 MiB of memory"},
		{&memoryFilter{3 * gib / 2}, 1, "1 node lacks 1.5 GiB of memory"},
		{&memoryFilter{100}, 1, "1 node lacks 100 B of memory"},
	}
	for _, tt := range tests {
		if got := tt.f.Explain(tt.n); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.f.Name(), got, tt.want)
		}
	}
}

func mustExpr(t *testing.T, s string) *Expr {
	t.Helper()
	x, err := ParseExpr("constraint", s)
	if err != nil {
		t.Fatal(err)
	}
	return &x
}

func TestPlaceErrors(t *testing.T) {
	s := New(nil, Options{})
	if _, err := s.Place(&Request{}, nil); !errors.Is(err, ErrNoNodes) {
		t.Errorf("empty pool: %v", err)
	}
	if _, err := s.Place(&Request{}, []*Node{nil}); !errors.Is(err, ErrNoNodes) {
		t.Errorf("pool of nil: %v", err)
	}
	_, err := s.Place(&Request{Env: []string{"constraint:zone=eu"}}, []*Node{mk("a")})
	if !errors.Is(err, ErrInvalidRule) || !strings.Contains(err.Error(), `invalid constraint "zone=eu"`) {
		t.Errorf("malformed rule: %v", err)
	}
}

func TestSoftRules(t *testing.T) {
	pool := func() []*Node {
		return []*Node{
			mk("a", labels("zone", "eu", "disk", "hdd")),
			mk("b", labels("zone", "eu", "disk", "ssd")),
			mk("c", labels("zone", "us", "disk", "ssd", "gpu", "yes")),
		}
	}
	runFilterCases(t, []filterCase{
		{"soft constraint kept", Request{Env: []string{"constraint:disk==~ssd"}}, pool(), []string{"b", "c"}},
		{"soft != kept", Request{Env: []string{"constraint:zone!=~eu"}}, pool(), []string{"c"}},
		{"soft constraint dropped", Request{Env: []string{"constraint:disk==~nvme"}}, pool(), []string{"a", "b", "c"}},
		{"soft after hard", Request{Env: []string{"constraint:zone==eu", "constraint:gpu==~yes"}}, pool(), []string{"a", "b"}},
		{"soft rules in order", Request{Env: []string{"constraint:zone==~eu", "constraint:gpu==~yes", "constraint:disk==~ssd"}}, pool(), []string{"b"}},
		{"soft affinity dropped", Request{Env: []string{"affinity:container==~ghost"}}, pool(), []string{"a", "b", "c"}},
		{"soft never explains", Request{Env: []string{"constraint:zone==mars", "constraint:disk==~ssd"}}, pool(), nil},
	})
	_, err := New(Spread{}, Options{}).Place(&Request{Env: []string{"constraint:zone==mars", "constraint:disk==~ssd"}}, pool())
	if err == nil || err.Error() != "no node can run this container: 3 nodes fail constraint zone==mars" {
		t.Errorf("explanation with soft rule: %v", err)
	}
}
