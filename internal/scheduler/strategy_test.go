package scheduler

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// placeN places n copies of req one after another, adding each placed
// container to its node as the manager does, and counts them per node.
func placeN(t *testing.T, s *Scheduler, req Request, pool []*Node, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range n {
		node, err := s.Place(&req, pool)
		if err != nil {
			t.Fatalf("placement %d: %v", i, err)
		}
		got[node.Name]++
		node.Containers = append(node.Containers, Container{
			ID: strings.Repeat("f", 8) + string(rune('a'+i)), State: "created",
			Memory: req.Memory, NanoCPUs: req.NanoCPUs, CPUShares: req.CPUShares,
		})
	}
	return got
}

func equal(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestSpreadBalances(t *testing.T) {
	for _, req := range []Request{{Memory: gib}, {NanoCPUs: 5e8}, {}} {
		pool := []*Node{mk("n1"), mk("n2"), mk("n3")}
		got := placeN(t, New(Spread{}, Options{}), req, pool, 6)
		if want := map[string]int{"n1": 2, "n2": 2, "n3": 2}; !equal(got, want) {
			t.Errorf("spread %+v: %v, want %v", req, got, want)
		}
	}
}

func TestSpreadPrefersFreeCapacity(t *testing.T) {
	big := mk("big", func(n *Node) { n.Memory = 64 * gib })
	small := mk("a-small", with(Container{ID: "x", State: "running", Memory: 4 * gib}))
	n, err := New(Spread{}, Options{}).Place(&Request{Memory: gib}, []*Node{small, big})
	if err != nil || n != big {
		t.Fatalf("got %v, %v; want big", n, err)
	}
}

func TestBinpackFillsOneNodeFirst(t *testing.T) {
	pool := []*Node{mk("n1"), mk("n2"), mk("n3")}
	// 8 GiB nodes take eight 1 GiB containers each.
	got := placeN(t, New(Binpack{}, Options{}), Request{Memory: gib}, pool, 10)
	if want := map[string]int{"n1": 8, "n2": 2}; !equal(got, want) {
		t.Errorf("binpack: %v, want %v", got, want)
	}
}

func TestBinpackWithoutAskPicksBusiestNode(t *testing.T) {
	c := Container{ID: "c", State: "running"}
	pool := []*Node{mk("a", with(c)), mk("b", with(c, c, c)), mk("c", with(c, c, Container{ID: "d", State: "exited"}))}
	n, err := New(Binpack{}, Options{}).Place(&Request{}, pool)
	if err != nil || n.Name != "b" {
		t.Fatalf("got %v, %v; want b", n, err)
	}
	got := placeN(t, New(Binpack{}, Options{}), Request{}, pool, 3)
	if want := map[string]int{"b": 3}; !equal(got, want) {
		t.Errorf("binpack without ask: %v, want %v", got, want)
	}
}

func TestTiesBreakByNameThenID(t *testing.T) {
	pool := []*Node{mk("c"), mk("b", func(n *Node) { n.ID = "2" }), mk("b", func(n *Node) { n.ID = "1" }), mk("d")}
	for _, st := range []Strategy{Spread{}, Binpack{}} {
		n, err := New(st, Options{}).Place(&Request{}, pool)
		if err != nil || n.Name != "b" || n.ID != "1" {
			t.Errorf("%s: got %+v, %v; want b/1", st.Name(), n, err)
		}
	}
}

func TestImageIsPreferredOnTies(t *testing.T) {
	withImage := func(n *Node) { n.Images = []Image{{ID: "sha256:aa", RepoTags: []string{"redis:latest"}}} }
	for _, st := range []Strategy{Spread{}, Binpack{}} {
		pool := []*Node{mk("a"), mk("b", withImage), mk("c")}
		n, err := New(st, Options{}).Place(&Request{Image: "redis"}, pool)
		if err != nil || n.Name != "b" {
			t.Errorf("%s: got %v, %v; want b, which has the image", st.Name(), n, err)
		}
	}
	// The image is a preference: spread still balances first.
	pool := []*Node{mk("a"), mk("b", withImage, with(Container{ID: "x", State: "running"}))}
	n, _ := New(Spread{}, Options{}).Place(&Request{Image: "redis"}, pool)
	if n.Name != "a" {
		t.Errorf("spread chose %s, want the emptier a", n.Name)
	}
	// An image pulled since the last call is noticed.
	s := New(Spread{}, Options{})
	pool = []*Node{mk("a"), mk("b")}
	if n, _ := s.Place(&Request{Image: "redis"}, pool); n.Name != "a" {
		t.Fatalf("got %s", n.Name)
	}
	withImage(pool[1])
	if n, _ := s.Place(&Request{Image: "redis"}, pool); n.Name != "b" {
		t.Errorf("after pull: got %s, want b", n.Name)
	}
}

func TestRandom(t *testing.T) {
	pool := []*Node{mk("a"), mk("b"), mk("c"), mk("d", health(Unhealthy))}
	run := func(seed uint64) []string {
		s := New(NewRandom(rand.NewPCG(seed, 1)), Options{})
		var out []string
		for range 60 {
			n, err := s.Place(&Request{}, pool)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, n.Name)
		}
		return out
	}
	first, again := run(7), run(7)
	counts := map[string]int{}
	for i := range first {
		if first[i] != again[i] {
			t.Fatal("same seed, different choices")
		}
		counts[first[i]]++
	}
	if counts["d"] != 0 {
		t.Error("random placed on an unhealthy node")
	}
	for _, name := range []string{"a", "b", "c"} {
		if counts[name] < 8 {
			t.Errorf("random chose %s %d times of 60: %v", name, counts[name], counts)
		}
	}
	// The global source works too.
	if n, err := New(NewRandom(nil), Options{}).Place(&Request{}, pool); err != nil || n.Name == "d" {
		t.Errorf("unseeded random: %v, %v", n, err)
	}
}

func TestParseStrategy(t *testing.T) {
	for name, want := range map[string]string{"spread": "spread", "": "spread", "BINPACK": "binpack", "random": "random"} {
		s, err := ParseStrategy(name)
		if err != nil || s.Name() != want {
			t.Errorf("ParseStrategy(%q) = %v, %v; want %s", name, s, err, want)
		}
	}
	if _, err := ParseStrategy("roundrobin"); err == nil || !strings.Contains(err.Error(), "spread, binpack or random") {
		t.Errorf("unknown strategy: %v", err)
	}
}

// The index memo must answer as if it recomputed everything.
func TestIndexNoticesChanges(t *testing.T) {
	s := New(Spread{}, Options{})
	a, b := mk("a", labels("zone", "eu")), mk("b", labels("zone", "us"))
	pool := []*Node{a, b}
	place := func(req Request, pool []*Node) string {
		t.Helper()
		n, err := s.Place(&req, pool)
		if err != nil {
			return "error"
		}
		return n.Name
	}
	eu := Request{Env: []string{"constraint:zone==eu"}}
	if got := place(eu, pool); got != "a" {
		t.Fatalf("got %s", got)
	}
	b.Labels = map[string]string{"zone": "eu"} // a new label map
	a.Health = Unhealthy
	if got := place(eu, pool); got != "b" {
		t.Errorf("after relabel: got %s, want b", got)
	}
	a.Health = Healthy
	a.Containers = append(a.Containers, Container{ID: "x", State: "running", Memory: 7 * gib})
	if got := place(Request{Memory: 2 * gib}, pool); got != "b" {
		t.Errorf("after append: got %s, want b", got)
	}
	a2 := mk("a", labels("zone", "eu"), func(n *Node) { n.Memory = 64 * gib }) // a new snapshot
	if got := place(Request{Memory: 16 * gib}, []*Node{a2, b}); got != "a" {
		t.Errorf("new snapshot: got %s, want a", got)
	}
	c := mk("0-first")
	if got := place(Request{}, []*Node{b, c, a2}); got != "0-first" {
		t.Errorf("pool reordered and grown: got %s", got)
	}
	if got := place(Request{Env: []string{"constraint:node==b"}}, []*Node{b}); got != "b" {
		t.Errorf("pool shrunk: got %s", got)
	}
	b.NanoCPUs = 1e9
	if got := place(Request{NanoCPUs: 2e9}, []*Node{b}); got != "error" {
		t.Errorf("capacity change not noticed: got %s", got)
	}
}
