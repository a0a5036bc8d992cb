package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
)

// TestCollections runs the typed collections over one single-member store.
func TestCollections(t *testing.T) {
	c := newTestCA(t)
	s := mustOpen(t, c.config(t, "m0"))
	t.Run("versioned update", func(t *testing.T) { testVersionedUpdate(t, s) })
	t.Run("watch order", func(t *testing.T) { testWatchOrder(t, s) })
	t.Run("services", func(t *testing.T) { testServices(t, s) })
	t.Run("tasks", func(t *testing.T) { testTasks(t, s) })
}

func testVersionedUpdate(t *testing.T, s *Store) {
	ctx := ctxT(t, 20*time.Second)
	col := NewCollection[node](s, Root+"versioned/")
	rev, err := col.Create(ctx, "a", node{Addr: "1"})
	if err != nil || rev == 0 {
		t.Fatalf("create: %d %v", rev, err)
	}
	got, err := col.Get(ctx, "a")
	if err != nil || got.Revision != rev {
		t.Fatalf("get = %+v %v, want revision %d", got, err, rev)
	}
	rev2, err := col.Update(ctx, "a", rev, node{Addr: "2"})
	if err != nil || rev2 <= rev {
		t.Fatalf("update at current revision: %d %v", rev2, err)
	}
	// A writer still holding the first read loses.
	if _, err := col.Update(ctx, "a", rev, node{Addr: "stale"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("update at stale revision: %v, want ErrConflict", err)
	}
	if got, _ := col.Get(ctx, "a"); got.Value.Addr != "2" {
		t.Fatalf("after conflict the value is %q", got.Value.Addr)
	}
	if _, err := col.Update(ctx, "missing", rev2, node{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a missing item: %v, want ErrNotFound", err)
	}
	if err := col.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := col.Update(ctx, "a", rev2, node{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a deleted item: %v, want ErrNotFound", err)
	}
}

func testWatchOrder(t *testing.T, s *Store) {
	ctx := ctxT(t, 20*time.Second)
	col := NewCollection[node](s, Root+"watched/")
	_, from, err := col.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Writes made before the watch starts are delivered too: it starts at
	// the listed revision + 1, so nothing falls in a gap.
	var want []string
	for i := range 5 {
		id := fmt.Sprintf("n%d", i%2)
		rev := int64(0)
		if it, err := col.Get(ctx, id); err == nil {
			rev = it.Revision
		}
		v := node{Addr: fmt.Sprint(i)}
		if rev == 0 {
			_, err = col.Create(ctx, id, v)
		} else {
			_, err = col.Update(ctx, id, rev, v)
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("put %s %d", id, i))
	}
	if err := col.Delete(ctx, "n0"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "delete n0 4")
	watch := col.Watch(ctx, from+1)
	var lastRev int64
	for i, w := range want {
		var ch Change[node]
		select {
		case ch = <-watch:
		case <-ctx.Done():
			t.Fatalf("change %d: timeout", i)
		}
		kind := map[bool]string{false: "put", true: "delete"}[ch.Deleted]
		if g := fmt.Sprintf("%s %s %s", kind, ch.Item.ID, ch.Item.Value.Addr); g != w || ch.Err != nil {
			t.Fatalf("change %d = %q (%v), want %q", i, g, ch.Err, w)
		}
		if ch.Item.Revision <= lastRev {
			t.Fatalf("change %d at revision %d after %d", i, ch.Item.Revision, lastRev)
		}
		lastRev = ch.Item.Revision
	}
}

func testServices(t *testing.T, s *Store) {
	ctx := ctxT(t, 20*time.Second)
	svcs := NewServices(s)
	watch := svcs.Watch(ctx, 0)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	spec := swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "web"}}
	created, err := svcs.Create(ctx, "s1", spec, now)
	if err != nil || created.Version.Index == 0 || !created.CreatedAt.Equal(now) {
		t.Fatalf("create = %+v, %v", created, err)
	}
	if _, err := svcs.Create(ctx, "s1", spec, now); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	got, err := svcs.Get(ctx, "s1")
	if err != nil || got.ID != "s1" || got.Version != created.Version || got.Spec.Name != "web" {
		t.Fatalf("get = %+v, %v", got, err)
	}
	spec2 := spec
	spec2.Labels = map[string]string{"v": "2"}
	later := now.Add(time.Minute)
	updated, err := svcs.Update(ctx, "s1", created.Version.Index, spec2, later)
	if err != nil || updated.Version.Index <= created.Version.Index || updated.Spec.Labels["v"] != "2" ||
		updated.PreviousSpec == nil || updated.PreviousSpec.Labels != nil || !updated.UpdatedAt.Equal(later) || !updated.CreatedAt.Equal(now) {
		t.Fatalf("update = %+v, %v", updated, err)
	}
	if _, err := svcs.Update(ctx, "s1", created.Version.Index, spec, later); !errors.Is(err, ErrConflict) {
		t.Fatalf("update at an old version: %v, want ErrConflict", err)
	}
	if created.SpecVersion != 1 || updated.SpecVersion != 2 {
		t.Fatalf("spec versions %d, %d; want 1, 2", created.SpecVersion, updated.SpecVersion)
	}
	// A status write (the orchestrator's) at any version keeps the spec's.
	status, err := svcs.Change(ctx, "s1", 0, func(s *Service) error {
		s.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateUpdating}
		return nil
	})
	if err != nil || status.SpecVersion != 2 || status.Version.Index <= updated.Version.Index || status.PreviousSpec == nil {
		t.Fatalf("status change = %+v, %v", status, err)
	}
	specWrite := updated.Version.Index
	updated = status
	list, _, err := svcs.List(ctx)
	if err != nil || len(list) != 1 || list[0].Version != updated.Version {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if err := svcs.Delete(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	for i, w := range []uint64{created.Version.Index, specWrite, updated.Version.Index} {
		select {
		case ch := <-watch:
			if ch.Err != nil || ch.Deleted || ch.Item.Value.Version.Index != w {
				t.Fatalf("change %d = %+v, want version %d", i, ch, w)
			}
		case <-ctx.Done():
			t.Fatal("timeout")
		}
	}
	if ch := <-watch; !ch.Deleted || ch.Item.ID != "s1" || ch.Item.Value.Spec.Labels["v"] != "2" {
		t.Fatalf("delete change = %+v", ch)
	}
}

// testTasks writes more tasks than one transaction holds, deletes some in
// the same batch, and reads them back with their versions and the
// orchestrator's private fields.
func testTasks(t *testing.T, s *Store) {
	ctx := ctxT(t, 20*time.Second)
	tasks := NewTasks(s)
	var puts []Task
	for i := range 250 {
		tk := Task{SpecVersion: 7}
		tk.ID = fmt.Sprintf("task%03d", i)
		tk.ServiceID, tk.Slot, tk.DesiredState = "svc", i+1, swarm.TaskStateRunning
		puts = append(puts, tk)
	}
	if err := tasks.Apply(ctx, puts, nil); err != nil {
		t.Fatal(err)
	}
	var dels []string
	for i := range 120 {
		dels = append(dels, fmt.Sprintf("task%03d", i))
	}
	extra := Task{Private: []byte(`{"restarts":3}`)}
	extra.ID = "task999"
	if err := tasks.Apply(ctx, []Task{extra}, dels); err != nil {
		t.Fatal(err)
	}
	all, _, err := tasks.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 131 || all[0].ID != "task120" || all[0].Slot != 121 || all[0].SpecVersion != 7 || all[0].Version.Index == 0 {
		t.Fatalf("after apply: %d tasks, first %+v", len(all), all[0])
	}
	got, err := tasks.Get(ctx, "task999")
	if err != nil || string(got.Private) != `{"restarts":3}` {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if err := tasks.Delete(ctx, "task999"); err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.Get(ctx, "task999"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted task: %v", err)
	}
}
