package manager

import "testing"

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
