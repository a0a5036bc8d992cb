package manager

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// The rescheduler recreates a lost container from its kept spec through
// placement and the engine's typed create, and starts it if it ran.
func TestRescheduleRecreatesFromKeptSpec(t *testing.T) {
	c := startCluster(t, 2, nil, 0)
	m := New(Config{Pool: c.pool, Placer: scheduler.New(nil, scheduler.Options{}), RescheduleAfter: time.Second})
	lost, other := c.sims[0], c.sims[1]
	id, err := lost.Create(enginesim.CreateSpec{Name: "rs", Image: "busybox", Cmd: []string{"sleep", "1d"}, Env: []string{"A=1"},
		Labels: map[string]string{scheduler.LabelReschedule: `["on-node-failure"]`}})
	if err != nil {
		t.Fatal(err)
	}
	if err := lost.StartContainer(id); err != nil {
		t.Fatal(err)
	}
	e := c.pool.Engines()[engineIndex(c.pool, lost.Addr())]
	waitUntil(t, "the spec is kept", func() bool { ct := e.Container(id); return ct != nil && ct.State == "running" && len(ct.Spec) > 0 })
	_ = lost.Close()
	waitUntil(t, "the engine is down", func() bool { st, _ := e.State(); return st == engine.Unhealthy })

	r := m.Rescheduler()
	r.Now = func() time.Time { return time.Now().Add(time.Minute) }
	r.pass(context.Background(), checks{})
	if all, running := other.Count(); all != 1 || running != 1 {
		st, _ := e.State()
		t.Fatalf("on the other engine: %d containers, %d running; want the rescheduled one, running (lost: %v since %v, %d cached)", all, running, st, e.StateSince(), len(e.Containers()))
	}
	ne, nc, err := m.findContainer(context.Background(), "rs")
	if err != nil || ne.Addr != other.Addr() || nc.ID == id || nc.Labels[scheduler.LabelReschedule] == "" || nc.Env[0] != "A=1" {
		t.Fatalf("rescheduled copy %+v on %v: %v", nc, ne, err)
	}
	if e.Container(id) != nil {
		t.Fatal("the lost copy is still in the view")
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}
