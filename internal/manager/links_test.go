package manager_test

import (
	"context"
	"testing"

	"github.com/shoal-dev/shoal/internal/manager"
)

// A link (parent/alias) is resolved on its parent's engine, named there
// as dockerd removes it: the parent's local name, then the alias, however
// the client named the parent.
func TestResolveLink(t *testing.T) {
	sim, id := simWithContainer(t, "node1", "web")
	m := manager.New(manager.Config{Pool: startPool(t, 1, sim.Addr())})
	ctx := context.Background()
	for _, ref := range []string{"/web/db", "web/db", "node1/web/db", "/node1/web/db", id[:12] + "/db"} {
		tg, parent, path, err := m.ResolveLink(ctx, ref)
		if err != nil || tg == nil || tg.Name() != "node1" || parent != id || path != "web/db" {
			t.Errorf("ResolveLink(%q) = %v %q %q %v; want node1 %s web/db", ref, tg, parent, path, err, id)
		}
	}
	// No such parent: an engine answers for it, in its words.
	if tg, parent, path, err := m.ResolveLink(ctx, "/nosuch/db"); err != nil || tg == nil || parent != "" || path != "nosuch/db" {
		t.Errorf("ResolveLink(/nosuch/db) = %v %q %q %v", tg, parent, path, err)
	}
}
