package manager

import (
	"testing"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// The scheduler's snapshot is kept between creates: while no engine's
// cache changed it is the same views in the same slice, built without
// allocating; an engine whose cache changed gets a new view at its place,
// the others keep theirs; creates in flight show on their node only for
// that call; an engine joining the pool is in the next one.
func TestSnapshotKeptBetweenCalls(t *testing.T) {
	c := startCluster(t, 3, nil, 0)
	m := New(Config{Pool: c.pool, Placer: scheduler.New(nil, scheduler.Options{})})
	snapshot := func() ([]*scheduler.Node, map[string]*engine.Engine) {
		m.mu.Lock()
		defer m.mu.Unlock()
		nodes, byID := m.snapshot()
		return append([]*scheduler.Node(nil), nodes...), byID
	}
	first, byID := snapshot()
	if len(first) != 3 || len(byID) != 3 {
		t.Fatalf("%d nodes, %d engines by ID, want 3 and 3", len(first), len(byID))
	}
	m.mu.Lock()
	allocs := testing.AllocsPerRun(20, func() { m.snapshot() })
	m.mu.Unlock()
	if allocs != 0 {
		t.Errorf("a snapshot of an unchanged pool allocates %.0f times, want none", allocs)
	}

	// One engine's cache changes.
	e := c.pool.Engines()[1]
	sim := simOf(t, c, e)
	id, err := sim.Create(enginesim.CreateSpec{Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the cache holds the container", func() bool { return e.Container(id) != nil })
	second, _ := snapshot()
	if second[0] != first[0] || second[2] != first[2] {
		t.Error("views of unchanged engines were rebuilt")
	}
	if second[1] == first[1] || second[1].ID != e.ID || second[1].Container(id) == nil {
		t.Errorf("the view of the changed engine is not new or lacks its container")
	}

	// A create in flight counts on its node in that call only.
	_, placed, err := m.place(&scheduler.Request{Image: "busybox", Rules: &scheduler.Rules{}})
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	node := m.placedOn[placed.ID]
	m.mu.Unlock()
	withPending, _ := snapshot()
	for i, n := range withPending {
		switch {
		case n.ID == node && (n.Gen != 0 || n.Container(placed.ID) == nil):
			t.Errorf("node %s: the create in flight is not in its view (Gen %d)", n.ID, n.Gen)
		case n.ID != node && n != second[i]:
			t.Errorf("node %s: view changed by a create on another node", n.ID)
		}
	}
	m.unplace(node, "", placed)
	after, _ := snapshot()
	for i := range after {
		if after[i] != second[i] {
			t.Errorf("node %s: after the create its view is not the kept one", after[i].ID)
		}
	}

	// An engine joins.
	joined, err := enginesim.Start(enginesim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = joined.Close() })
	c.pool.Add(joined.Addr())
	waitUntil(t, "the new engine is healthy", func() bool { return len(c.pool.Healthy()) == 4 })
	fourth, byID := snapshot()
	if len(fourth) != 4 || len(byID) != 4 {
		t.Fatalf("after a join: %d nodes, %d engines by ID, want 4 and 4", len(fourth), len(byID))
	}
	for _, n := range fourth {
		if byID[n.ID] == nil || byID[n.ID].ID != n.ID {
			t.Errorf("node %s: not found by its ID", n.ID)
		}
	}
}

// simOf is the simulated engine behind e.
func simOf(t *testing.T, c *cluster, e *engine.Engine) *enginesim.Engine {
	for _, s := range c.sims {
		if s.Addr() == e.Addr {
			return s
		}
	}
	t.Fatalf("no simulated engine at %s", e.Addr)
	return nil
}
