package scenario

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
)

// Placement checks where the scheduler puts containers: spread balances six
// containers 2/2/2 over three nodes, binpack puts six on one node,
// constraint:node==X lands on X, and a request no node fits is answered
// with the scheduler's explanation as a dockerd-style error. It needs
// exactly three engines holding no containers of other tests.
func Placement(t *testing.T, env Env) {
	if len(env.Nodes) != 3 {
		t.Fatalf("Placement needs 3 engines, has %d", len(env.Nodes))
	}
	t.Run("spread", func(t *testing.T) {
		c := newClient(t, env.Shoal(t, "--strategy", "spread"))
		if got := countsAfterRuns(t, c, env, 0); fmt.Sprint(got) != "[2 2 2]" {
			t.Fatalf("spread placed %v, want 2/2/2", got)
		}
	})
	t.Run("binpack", func(t *testing.T) {
		c := newClient(t, env.Shoal(t, "--strategy", "binpack"))
		if got := countsAfterRuns(t, c, env, 64<<20); fmt.Sprint(got) != "[6 0 0]" {
			t.Fatalf("binpack placed %v, want all on one node", got)
		}
	})
	t.Run("constraint", func(t *testing.T) {
		c := newClient(t, env.Shoal(t))
		for _, node := range env.Nodes {
			id := c.run(uniq("on-"+node), env.spec("constraint:node=="+node))
			if got := c.nodeOf(id); got != node {
				t.Errorf("constraint:node==%s placed on %s", node, got)
			}
		}
	})
	t.Run("no fit", func(t *testing.T) { noFit(t, env) })
}

// countsAfterRuns runs six containers (each reserving mem bytes, if not 0)
// and returns how many each node got, largest first.
func countsAfterRuns(t *testing.T, c *client, env Env, mem int64) []int {
	t.Helper()
	per := map[string]int{}
	for i := 0; i < 6; i++ {
		s := env.spec()
		s.HostConfig.Memory = mem
		per[c.nodeOf(c.run(uniq(fmt.Sprintf("place%d", i)), s))]++
	}
	t.Logf("placed: %s", fmtCounts(per, env.Nodes))
	var counts []int
	for _, n := range env.Nodes {
		counts = append(counts, per[n])
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	return counts
}

// noFit: a constraint no node meets is refused before any engine is asked,
// with the scheduler's count of failing nodes, as {"message": ...}.
func noFit(t *testing.T, env Env) {
	c := newClient(t, env.Shoal(t))
	name := uniq("nofit")
	st, id, msg := c.create(name, env.spec("constraint:zone==nowhere"))
	if st == http.StatusCreated {
		c.removeAtEnd(id)
	}
	want := fmt.Sprintf("no node can run this container: %d nodes fail constraint zone==nowhere", len(env.Nodes))
	if st != http.StatusServiceUnavailable || msg != want {
		t.Fatalf("create with an unmet constraint: %d %q, want %d %q", st, msg, http.StatusServiceUnavailable, want)
	}
	for _, e := range env.Engines {
		if slices.Contains(names(t, e), "/"+name) {
			t.Errorf("engine %s got the container no node fits", e)
		}
	}
}

// LinksApart: a create linking to two containers that run on different
// nodes is refused (503) with where each one is, not only with how many
// nodes lack each (issue 10 #7); linking to both once they are together
// works. It needs at least two engines.
func LinksApart(t *testing.T, env Env) {
	if len(env.Nodes) < 2 {
		t.Fatalf("LinksApart needs 2 engines, has %d", len(env.Nodes))
	}
	c := newClient(t, env.Shoal(t))
	db, cache := uniq("db"), uniq("cache")
	c.run(db, env.spec("constraint:node=="+env.Nodes[0]))
	c.run(cache, env.spec("constraint:node=="+env.Nodes[1]))
	s := env.spec()
	s.HostConfig.Links = []string{db + ":db", cache + ":cache"}
	st, id, msg := c.create(uniq("app"), s)
	if st == http.StatusCreated {
		c.removeAtEnd(id)
	}
	want := fmt.Sprintf("no node can run this container: containers linked to must be on one node: %s is on %s, %s is on %s", db, env.Nodes[0], cache, env.Nodes[1])
	if st != http.StatusServiceUnavailable || msg != want {
		t.Fatalf("create linking to containers on two nodes: %d %q, want %d %q", st, msg, http.StatusServiceUnavailable, want)
	}
	// Kept together by an affinity, they can be linked to.
	near := uniq("near")
	c.run(near, env.spec("affinity:container=="+db))
	s.HostConfig.Links = []string{db + ":db", near + ":near"}
	app := c.run(uniq("app"), s)
	if got := c.nodeOf(app); got != env.Nodes[0] {
		t.Errorf("the container linking to %s and %s runs on %s, want %s", db, near, got, env.Nodes[0])
	}
}
