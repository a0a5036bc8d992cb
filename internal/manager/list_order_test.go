package manager_test

import (
	"context"
	"testing"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
)

// A limit counts from the newest of the containers that match, whether the
// filters or the limit come first.
func TestListLimitAfterFilterNewestFirst(t *testing.T) {
	env := newTaskEnvWith(t, 2, nil, func(i int, o *enginesim.Options) { o.Containers, o.Stopped = 3, 2 })
	waitFor(t, "every container is cached", func() bool {
		n := 0
		for _, e := range env.pool.Engines() {
			n += len(e.Containers())
		}
		return n == 10
	})
	ctx := context.Background()
	list := func(o backend.ContainerListOptions) []*engine.Container {
		t.Helper()
		l, err := env.m.ListContainers(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]*engine.Container, len(l))
		for i, ent := range l {
			out[i] = ent.Entry.(*engine.Container)
		}
		return out
	}
	all := list(backend.ContainerListOptions{All: true})
	if len(all) != 10 {
		t.Fatalf("%d containers listed", len(all))
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.CreatedAt().Before(b.CreatedAt()) || a.CreatedAt().Equal(b.CreatedAt()) && a.ID > b.ID {
			t.Fatalf("not newest first at %d: %v %s, then %v %s", i, a.CreatedAt(), a.ID, b.CreatedAt(), b.ID)
		}
	}
	if got := list(backend.ContainerListOptions{All: true, Limit: 3}); len(got) != 3 || got[0] != all[0] || got[2] != all[2] {
		t.Errorf("limit 3 gave %d, not the 3 newest", len(got))
	}
	var exited []*engine.Container
	for _, c := range all {
		if c.State == "exited" {
			exited = append(exited, c)
		}
	}
	got := list(backend.ContainerListOptions{Limit: 2, Filters: backend.Filters{"status": {"exited"}}})
	if len(exited) != 4 || len(got) != 2 || got[0] != exited[0] || got[1] != exited[1] {
		t.Errorf("status=exited limit 2 gave %d of %d exited, not the newest", len(got), len(exited))
	}
}
