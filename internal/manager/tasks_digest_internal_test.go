package manager

import (
	"context"
	"testing"

	"github.com/moby/moby/api/types/swarm"
)

// TestNodeDigestFollowsInfoNotItsReloads: the orchestrator's node digest
// changes when an engine's labels change, and not when the engine's /info
// is merely reloaded unchanged (the cached per-engine part is reused).
func TestNodeDigestFollowsInfoNotItsReloads(t *testing.T) {
	ie := newEditedInfoEngine(t, func(info map[string]any) { info["Labels"] = []string{"zone=a"} })
	pool, ctx := ie.pool, t.Context()
	m := New(Config{Pool: pool})
	d := newNodeDigester(m.TaskRuntime().(taskRuntime))
	e := pool.Engines()[0]

	first := d.digest(ctx)
	before := e.Info()
	if err := e.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if e.Info() == before {
		t.Fatal("the resync did not reload /info")
	}
	if got := d.digest(ctx); got != first {
		t.Errorf("an unchanged /info reloaded changed the digest")
	}
	ie.set(func(info map[string]any) { info["Labels"] = []string{"zone=b"} })
	if err := e.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := d.digest(ctx); got == first {
		t.Errorf("a label change left the digest as it was")
	}
}

// versionedCluster is a built-in cluster that fingerprints its records;
// listing its nodes fails the test's expectations by counting.
type versionedCluster struct {
	Cluster
	version uint64
	lists   int
}

func (c *versionedCluster) NodesVersion() uint64 { return c.version }

func (c *versionedCluster) Nodes(context.Context) ([]swarm.Node, error) {
	c.lists++
	return nil, nil
}

// TestNodeDigestOfTheBuiltInCluster: under the built-in cluster the
// digest follows the records' fingerprint and the engines behind them,
// without listing (reading and decoding) every node record each time.
func TestNodeDigestOfTheBuiltInCluster(t *testing.T) {
	ie := newEditedInfoEngine(t, func(info map[string]any) { info["Labels"] = []string{"zone=a"} })
	pool, ctx := ie.pool, t.Context()
	cl := &versionedCluster{version: 1}
	m := New(Config{Pool: pool, Cluster: cl})
	d := newNodeDigester(m.TaskRuntime().(taskRuntime))

	first := d.digest(ctx)
	if got := d.digest(ctx); got != first {
		t.Errorf("nothing changed, the digest did")
	}
	cl.version = 2
	second := d.digest(ctx)
	if second == first {
		t.Errorf("a record changed (the fingerprint moved), the digest did not")
	}
	ie.set(func(info map[string]any) { info["Labels"] = []string{"zone=b"} })
	if err := pool.Engines()[0].Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := d.digest(ctx); got == second {
		t.Errorf("an engine label changed, the digest did not")
	}
	if cl.lists != 0 {
		t.Errorf("the digest listed the nodes %d times, want 0", cl.lists)
	}
}
