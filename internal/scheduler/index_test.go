package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// The fields read on every call share the first cache line of a Node, and
// Node keeps a size whose objects are 64-byte aligned.
func TestNodeLayout(t *testing.T) {
	var n Node
	if s := unsafe.Sizeof(n); s%64 != 0 {
		t.Errorf("Node is %d bytes, want a multiple of 64", s)
	}
	for name, end := range map[string]uintptr{
		"Health":     unsafe.Offsetof(n.Health) + unsafe.Sizeof(n.Health),
		"Labels":     unsafe.Offsetof(n.Labels) + unsafe.Sizeof(n.Labels),
		"Containers": unsafe.Offsetof(n.Containers) + unsafe.Sizeof(n.Containers),
		"NanoCPUs":   unsafe.Offsetof(n.NanoCPUs) + unsafe.Sizeof(n.NanoCPUs),
		"Memory":     unsafe.Offsetof(n.Memory) + unsafe.Sizeof(n.Memory),
		"Gen":        unsafe.Offsetof(n.Gen) + unsafe.Sizeof(n.Gen),
	} {
		if end > 64 {
			t.Errorf("%s ends at byte %d, outside the first cache line", name, end)
		}
	}
}

// positionsOf lists, the slow way, the positions whose column value is v.
func positionsOf(c *column, v string) []int32 {
	var out []int32
	for i, id := range c.of {
		if id >= 0 && c.vals[id] == v {
			out = append(out, int32(i))
		}
	}
	return out
}

func checkPositions(t *testing.T, when string, c *column) {
	t.Helper()
	for id, v := range c.vals {
		got, want := c.positions(int32(id)), positionsOf(c, v)
		if !slices.Equal(got, want) {
			t.Errorf("%s: positions of %q = %v, want %v", when, v, got, want)
		}
	}
}

// The inverted lists of a column follow its values through refreshes,
// resizes and mass changes.
func TestColumnPositions(t *testing.T) {
	x := newIndex(1)
	zone := func(n *Node) (string, bool) { v, ok := n.Labels["zone"]; return v, ok }
	pool := []*Node{
		mk("a", labels("zone", "eu")), mk("b", labels("zone", "us")), mk("c", labels("zone", "eu")),
		mk("d"), mk("e", labels("zone", "eu")),
	}
	x.fit(len(pool))
	for i, n := range pool {
		x.update(i, n)
	}
	c := x.column("label:zone", zone)
	checkPositions(t, "built", c)
	if got := c.positions(c.ids["eu"]); !slices.Equal(got, []int32{0, 2, 4}) {
		t.Fatalf("eu at %v", got)
	}

	// One value changes; a node gains the label; one loses it.
	pool[2] = mk("c", labels("zone", "us"))
	pool[3] = mk("d", labels("zone", "eu"))
	pool[4] = mk("e")
	for _, i := range []int{2, 3, 4} {
		x.update(i, pool[i])
	}
	if c.stale {
		t.Fatal("three moves made the column stale")
	}
	checkPositions(t, "after moves", c)
	if got := c.positions(c.ids["eu"]); !slices.Equal(got, []int32{0, 3}) {
		t.Errorf("eu at %v, want [0 3]", got)
	}

	// The pool grows, then shrinks.
	pool = append(pool, mk("f", labels("zone", "eu")), mk("g", labels("zone", "ap")))
	x.fit(len(pool))
	for i := 5; i < len(pool); i++ {
		x.update(i, pool[i])
	}
	checkPositions(t, "grown", c)
	pool = pool[:4]
	x.fit(len(pool))
	checkPositions(t, "shrunk", c)
	if got := c.positions(c.ids["ap"]); len(got) != 0 {
		t.Errorf("ap still at %v after the pool shrank", got)
	}

	// Many changes at once: rebuilt on use, same answer.
	big := make([]*Node, 1000)
	for i := range big {
		big[i] = mk(strconv.Itoa(i), labels("zone", []string{"eu", "us", "ap"}[i%3]))
	}
	x.fit(len(big))
	for i, n := range big {
		x.update(i, n)
	}
	checkPositions(t, "1000 nodes", c)
	for i := range big {
		if i%2 == 0 {
			big[i] = mk(strconv.Itoa(i), labels("zone", "eu"))
			x.update(i, big[i])
		}
	}
	if !c.stale {
		t.Error("500 moves did not make the column stale")
	}
	checkPositions(t, "500 moves", c)
}

// Equality constraints visit only the matching positions; node==x visits
// the union of the nodes named x and those with ID x.
func TestNarrowingConstraint(t *testing.T) {
	pool := []*Node{
		mk("x", func(n *Node) { n.ID = "y" }), mk("y", func(n *Node) { n.ID = "1" }), mk("z"), nil,
		mk("y", func(n *Node) { n.ID = "2" }), mk("q", labels("zone", "eu")),
	}
	for expr, want := range map[string][]string{
		"node==y":    {"x", "y", "y"},
		"node==z":    {"z"},
		"node==id-z": {"z"},
		"node==nope": nil,
		"zone==eu":   {"q"},
		"zone==us":   nil,
	} {
		var names []string
		s := New(collect{&names}, Options{})
		_, err := s.Place(&Request{Env: []string{"constraint:" + expr}}, pool)
		var nf *NoFitError
		if err != nil && !errors.As(err, &nf) {
			t.Fatalf("%s: %v", expr, err)
		}
		slices.Sort(names)
		if !slices.Equal(names, want) {
			t.Errorf("%s: offered %v, want %v", expr, names, want)
		}
	}
}

// A Node with Gen set is not read again while the same *Node is at the
// same position: the scheduler trusts its memo, and notices a new *Node.
func TestGenTrustsMemo(t *testing.T) {
	s := New(Spread{}, Options{})
	a := mk("a", labels("zone", "eu"), func(n *Node) { n.Gen = 1 })
	b := mk("b", labels("zone", "us"), func(n *Node) { n.Gen = 1 })
	pool := []*Node{a, b}
	eu := &Request{Env: []string{"constraint:zone==eu"}}
	if n, err := s.Place(eu, pool); err != nil || n != a {
		t.Fatalf("got %v, %v", n, err)
	}
	// Written in place, even with a new Gen: this breaks the promise, so
	// the memo is kept (this documents the contract; a manager must
	// publish a new *Node instead).
	b.Labels = map[string]string{"zone": "eu"}
	a.Health = Unhealthy
	a.Gen, b.Gen = 2, 2
	if n, err := s.Place(eu, pool); err != nil || n != a {
		t.Errorf("written in place: got %v, %v; want the memoized answer a", n, err)
	}
	// New *Nodes are noticed, whatever their Gen.
	a2 := mk("a", labels("zone", "eu"), health(Unhealthy), func(n *Node) { n.Gen = 1 })
	b2 := mk("b", labels("zone", "eu"), func(n *Node) { n.Gen = 1 })
	pool = []*Node{a2, b2}
	if n, err := s.Place(eu, pool); err != nil || n != b2 {
		t.Errorf("new nodes: got %v, %v; want b2", n, err)
	}
	// A new *Node with Gen 0 is read on every call again.
	b3 := *b2
	b3.Gen = 0
	pool[1] = &b3
	if n, err := s.Place(eu, pool); err != nil || n != &b3 {
		t.Errorf("gen 0: got %v, %v; want b3", n, err)
	}
	b3.Health = Drained
	if _, err := s.Place(eu, pool); err == nil || !strings.Contains(err.Error(), "1 node drained") {
		t.Errorf("gen 0, drained in place: %v; want no fit", err)
	}
}

// The memoized index (inverted lists, verdicts, Gen) answers exactly as a
// fresh Scheduler does, across random pools changed between calls the
// ways the Node contract allows.
func TestMemoMatchesFresh(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	zones := []string{"eu", "us", "ap"}
	newNode := func(i int) *Node {
		n := mk(fmt.Sprintf("n%02d", rng.IntN(40)), func(n *Node) { n.ID = fmt.Sprintf("id%d-%d", i, rng.IntN(1000)) })
		n.Labels = map[string]string{}
		if rng.IntN(4) > 0 {
			n.Labels["zone"] = zones[rng.IntN(len(zones))]
		}
		if rng.IntN(3) == 0 {
			n.Labels["disk"] = "ssd"
		}
		if rng.IntN(10) == 0 {
			n.Labels[slotsLabel] = strconv.Itoa(rng.IntN(4))
		}
		for range rng.IntN(4) {
			n.Containers = append(n.Containers, Container{ID: strconv.Itoa(rng.IntN(100)), State: "running", Memory: int64(rng.IntN(3)) * gib})
		}
		if rng.IntN(10) == 0 {
			n.Health = Unhealthy
		}
		if rng.IntN(2) == 0 {
			n.Images = []Image{{ID: "sha256:aa", RepoTags: []string{"redis:latest"}}}
		}
		if rng.IntN(2) == 0 {
			n.Gen = uint64(1 + rng.IntN(3))
		}
		return n
	}
	exprs := []string{"zone==eu", "zone==us", "zone!=eu", "zone==e*", "disk==ssd", "zone==mars", "node==n03", "node==n1*", "disk!=ssd"}
	// collect compares the offers themselves, in order: the set of feasible
	// nodes and the order Random would see them in.
	var memoOffers, freshOffers []string
	strategies := []func(fresh bool) Strategy{
		func(bool) Strategy { return Spread{} },
		func(bool) Strategy { return Binpack{} },
		func(fresh bool) Strategy {
			if fresh {
				return collect{&freshOffers}
			}
			return collect{&memoOffers}
		},
	}
	for _, mkStrategy := range strategies {
		memo := New(mkStrategy(false), Options{})
		pool := make([]*Node, 30)
		for i := range pool {
			pool[i] = newNode(i)
		}
		for call := range 400 {
			// Change the pool the ways the contract allows.
			for range rng.IntN(6) {
				i := rng.IntN(len(pool))
				switch n := pool[i]; {
				case n == nil:
					pool[i] = newNode(i)
				case rng.IntN(8) == 0:
					pool[i] = nil
				case n.Gen != 0 && rng.IntN(2) == 0: // a new version of the same node
					cp := *n
					cp.Gen++
					cp.Labels = map[string]string{"zone": zones[rng.IntN(len(zones))]}
					cp.Health = Health(rng.IntN(2) * 2) // healthy or unhealthy
					pool[i] = &cp
				case n.Gen == 0 && rng.IntN(4) == 0:
					n.Images = nil
				case n.Gen == 0 && rng.IntN(2) == 0:
					n.Containers = append(n.Containers, Container{ID: "new", State: "created", Memory: gib})
				case n.Gen == 0:
					n.Labels = map[string]string{"zone": zones[rng.IntN(len(zones))]}
					n.Health = Health(rng.IntN(2) * 2)
				default:
					pool[i] = newNode(i)
				}
			}
			switch rng.IntN(30) {
			case 0:
				pool = append(pool, newNode(len(pool)))
			case 1:
				pool = pool[:len(pool)-1]
			}
			req := &Request{Memory: int64(rng.IntN(3)) * gib, Image: []string{"", "redis", "nginx"}[rng.IntN(3)]}
			for range rng.IntN(3) {
				req.Env = append(req.Env, "constraint:"+exprs[rng.IntN(len(exprs))])
			}
			fresh := New(mkStrategy(true), Options{})
			soft := false
			for range rng.IntN(2) { // image affinities, memoized per node like the image tie-break
				a := []string{"image==redis", "image!=redis", "image==~redis", "image==nginx", "image!=~nginx"}[rng.IntN(5)]
				req.Env = append(req.Env, "affinity:"+a)
				soft = soft || strings.Contains(a, "=~")
			}
			soft = soft || rng.IntN(5) == 0
			if soft {
				req.Env = append(req.Env, "constraint:zone==~us")
			}
			got, gerr := memo.Place(req, pool)
			want, werr := fresh.Place(req, pool)
			if got != want || fmt.Sprint(gerr) != fmt.Sprint(werr) || !slices.Equal(memoOffers, freshOffers) {
				t.Fatalf("%s, call %d, %v: memo %v, %v, %v; fresh %v, %v, %v", memo.strategy.Name(), call, req.Env, got, gerr, memoOffers, want, werr, freshOffers)
			}
			if _, ok := memo.strategy.(collect); ok && !soft {
				if ref := reference(t, req, pool); !slices.Equal(memoOffers, ref) {
					t.Fatalf("call %d, %v: offered %v, want %v", call, req.Env, memoOffers, ref)
				}
			}
		}
	}
}

// Positions of the pool that are nil do not disturb the tie-break by name.
func TestTiesWithNilPositions(t *testing.T) {
	for _, pool := range [][]*Node{
		{mk("b"), nil, mk("a")},
		{mk("c"), nil, mk("b"), nil, mk("a")},
		{nil, mk("c"), mk("a"), nil, mk("b")},
	} {
		if n, err := New(Spread{}, Options{}).Place(&Request{}, pool); err != nil || n.Name != "a" {
			t.Errorf("got %v, %v; want a", n, err)
		}
	}
}

// reference lists the names of the nodes that pass the hard filters the
// random pools exercise (health, constraints, slots, memory), in pool
// order, computed naively from the Nodes.
func reference(t *testing.T, req *Request, pool []*Node) []string {
	t.Helper()
	rules, _, err := ParseRules(req.Env, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
nodes:
	for _, n := range pool {
		if n == nil || n.Health != Healthy {
			continue
		}
		for i := range rules.Constraints {
			x := &rules.Constraints[i]
			var m bool
			if x.Key == "node" {
				m = x.matches(n.Name) || x.matches(n.ID)
			} else if v, ok := n.Labels[x.Key]; ok {
				m = x.matches(v)
			}
			if m != (x.Op == OpEq) {
				continue nodes
			}
		}
		for i := range rules.Affinities {
			if x := &rules.Affinities[i]; newAffinityFilter(x).image(n) != (x.Op == OpEq) {
				continue nodes
			}
		}
		var used int64
		active := 0
		for _, c := range n.Containers {
			if c.Active() {
				used += memReservation(c.Memory, c.MemoryReservation)
				active++
			}
		}
		if s, err := strconv.Atoi(n.Labels[slotsLabel]); err == nil && active >= s {
			continue
		}
		if req.Memory > 0 && used+req.Memory > n.Memory {
			continue
		}
		out = append(out, n.Name)
	}
	return out
}
