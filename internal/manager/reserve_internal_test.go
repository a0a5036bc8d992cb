package manager

import (
	"testing"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// A placed container counts once in the scheduler's view: as pending until
// its engine's cache holds it, then through the cache, even while its
// create is still finishing. Counted twice, a node at its capacity
// refused a create it had room for.
func TestReservationCountsOnce(t *testing.T) {
	c := startCluster(t, 1, nil, 0)
	m := New(Config{Pool: c.pool, Placer: scheduler.New(nil, scheduler.Options{Overcommit: 0})})
	e := c.pool.Engines()[0]
	half := int64(4 * units.GiB) // enginesim's 8 GiB holds two
	req := &scheduler.Request{Image: "busybox", Memory: half}

	_, placed, err := m.place(req)
	if err != nil {
		t.Fatal(err)
	}
	// The engine creates it and the cache sees it (its create event),
	// before the create's own refresh is done.
	id, err := c.sims[0].Create(enginesim.CreateSpec{Image: "busybox", Resources: container.Resources{Memory: half}})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the cache holds the container", func() bool { return e.Container(id) != nil })
	m.bind(placed, id)
	if n := reserved(m, e); n != 1 {
		t.Fatalf("created and cached: counted %d times, want once", n)
	}
	if _, _, err := m.place(req); err != nil {
		t.Fatalf("the second half of the node was refused: %v", err)
	}
	m.unplace(e.ID, "", placed)
}

// reserved counts the containers the scheduler's view holds on e.
func reserved(m *Manager, e *engine.Engine) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	nodes, _ := m.snapshot()
	for _, n := range nodes {
		if n.ID == e.ID {
			return len(n.Containers)
		}
	}
	return -1
}
