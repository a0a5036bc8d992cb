package engine

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

func containerEvent(id, action string) Event {
	m := events.Message{Type: events.ContainerEventType, Action: events.Action(action), Actor: events.Actor{ID: id}}
	raw, _ := json.Marshal(m)
	return Event{Raw: raw, Message: m}
}

// Events queued together are applied as one batch: each container is
// refreshed once however many of its events the batch holds, one that
// ends with destroy is dropped without asking the engine, and the bus
// gets every event, in order, after the cache applied them.
func TestApplyEventsRefreshesEachContainerOnce(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]int{}
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked[r.URL.Path+"?"+r.URL.Query().Get("filters")]++
		mu.Unlock()
		switch {
		case r.URL.Path == "/v1.41/containers/json" && strings.Contains(r.URL.Query().Get("filters"), "c1"):
			_, _ = w.Write([]byte(`[{"Id":"c1","Names":["/web"],"State":"exited"}]`))
		case r.URL.Path == "/v1.41/containers/c1/json":
			_, _ = w.Write([]byte(`{"Id":"c1","State":{"Status":"exited"},"Config":{},"HostConfig":{}}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"no such container"}`))
		}
	})
	e.opts.bus = newBus(0)
	sub := e.opts.bus.subscribe(context.Background())
	e.containers.put(&Container{ID: "c2"})

	batch := []Event{containerEvent("c1", "create"), containerEvent("c2", "die"), containerEvent("c1", "start"),
		containerEvent("c1", "exec_start: sh"), containerEvent("c2", "destroy"), containerEvent("c1", "die"), containerEvent("c1", "stop")}
	queued := make(chan json.RawMessage, len(batch))
	for _, ev := range batch[1:] {
		queued <- ev.Raw
	}
	if _, err := e.applyEvents(context.Background(), batch[0].Raw, queued); err != nil {
		t.Fatal(err)
	}

	if len(asked) != 2 || asked[`/v1.41/containers/json?{"id":["c1"]}`] != 1 || asked["/v1.41/containers/c1/json?"] != 1 {
		t.Errorf("the engine was asked %v; want one list and one inspect of c1, nothing of c2", asked)
	}
	if c := e.Container("c1"); c == nil || c.State != "exited" {
		t.Errorf("c1 cached as %+v, want exited", c)
	}
	if e.Container("c2") != nil {
		t.Error("c2 still cached after its destroy")
	}
	for i, want := range batch {
		got := next(t, sub)
		if got.Message.Actor.ID != want.Message.Actor.ID || got.Message.Action != want.Message.Action || got.Engine != e || got.Time.IsZero() {
			t.Fatalf("bus event %d: %s %s, want %s %s", i, got.Message.Actor.ID, got.Message.Action, want.Message.Actor.ID, want.Message.Action)
		}
	}
}

// A create alone in a batch still waits for its refresh only
// createRefreshWait (TestCreateEventRefreshDoesNotWaitForStart); with its
// start in the same batch the refresh gets the whole Timeout.
func TestApplyPlansCreateOnly(t *testing.T) {
	for _, c := range []struct {
		actions    []string
		createOnly bool
		forget     bool
	}{
		{[]string{"create"}, true, false},
		{[]string{"create", "start"}, false, false},
		{[]string{"create", "destroy"}, false, true},
		{[]string{"die", "destroy"}, false, true},
		{[]string{"create", "exec_create: sh", "attach"}, true, false},
	} {
		var msgs []events.Message
		for _, a := range c.actions {
			msgs = append(msgs, containerEvent("x", a).Message)
		}
		p := planOf(msgs).containers["x"]
		if p == nil || p.createOnly != c.createOnly || p.forget != c.forget {
			t.Errorf("%v: plan %+v, want createOnly %v forget %v", c.actions, p, c.createOnly, c.forget)
		}
	}
}

// Under a churn faster than the engines answer (each request delayed), a
// subscriber still gets every event of every engine, in each engine's
// order, and the cache ends as the engines are.
func TestChurnEveryEventInOrderAndCacheConverges(t *testing.T) {
	f, err := enginesim.StartFleet(3, func(int) enginesim.Options { return enginesim.Options{Latency: time.Millisecond} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	p := NewPool(Options{RefreshInterval: 100 * time.Millisecond, Timeout: 5 * time.Second, FailureRetry: 3}, nil)
	p.Update(f.Addrs())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "engines healthy", func() bool { return len(p.Healthy()) == 3 })
	sub := p.Subscribe(context.Background())
	for _, e := range f.Engines {
		e.RecordEvents(true)
	}
	cctx, stop := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer stop()
	n, err := f.Churn(cctx, 600, 4, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]enginesim.LoggedEvent{}
	for i := range n {
		var ev Event
		select {
		case ev = <-sub.C():
		case <-time.After(10 * time.Second):
			for _, e := range f.Engines {
				t.Logf("engine %s: %d on the bus of %d emitted", e.Name(), len(got[e.Name()]), len(e.EventLog()))
			}
			t.Fatalf("%d of %d events arrived, subscription: %v", i, n, sub.Err())
		}
		if ev.IsState() {
			t.Fatalf("engine %s went %v", ev.Engine.Name(), ev.New)
		}
		got[ev.Engine.Name()] = append(got[ev.Engine.Name()], enginesim.LoggedEvent{ID: ev.Message.Actor.ID, Action: string(ev.Message.Action)})
	}
	for _, e := range f.Engines {
		want := e.EventLog()
		have := got[e.Name()]
		if len(have) != len(want) {
			t.Fatalf("engine %s: %d events on the bus, it emitted %d", e.Name(), len(have), len(want))
		}
		for i := range want {
			if have[i].ID != want[i].ID || have[i].Action != want[i].Action {
				t.Fatalf("engine %s event %d: %s %s, want %s %s", e.Name(), i, have[i].Action, have[i].ID, want[i].Action, want[i].ID)
			}
		}
	}
	// The bus delivered each event after the cache applied it: the last
	// ones are applied, so the cache holds what each engine holds.
	for _, e := range p.Engines() {
		for _, sim := range f.Engines {
			if all, _ := sim.Count(); sim.Name() == e.Name() && len(e.Containers()) != all {
				t.Errorf("engine %s: %d containers cached, it holds %d", e.Name(), len(e.Containers()), all)
			}
		}
	}
}

// A create whose refresh gave up early (the engine held the inspect
// during the container's start) is still cached once the engine answers,
// without waiting for another event.
func TestCreateRefreshFinishesAside(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.41/containers/json":
			_, _ = w.Write([]byte(`[{"Id":"c1","Names":["/web.1.x"],"State":"running"}]`))
		case "/v1.41/containers/c1/json":
			select { // a start under way
			case <-release:
			case <-r.Context().Done():
				return
			}
			_, _ = w.Write([]byte(`{"Id":"c1","State":{"Status":"running"},"Config":{},"HostConfig":{}}`))
		}
	})
	e.opts.Timeout = 10 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.apply(ctx, events.Message{Type: events.ContainerEventType, Action: "create", Actor: events.Actor{ID: "c1"}})
	if e.Container("c1") != nil {
		t.Fatal("cached before the engine answered the inspect")
	}
	once.Do(func() { close(release) })
	waitFor(t, "the container cached", func() bool { return e.Container("c1") != nil })
}

// Only one create refresh per engine finishes aside at a time: more
// would only add connections to an engine, and load, when the manager is
// already too slow for the bound.
func TestCreateRefreshesAsideOneAtATime(t *testing.T) {
	wait := createRefreshWait
	t.Cleanup(func() { createRefreshWait = wait })
	createRefreshWait = 50 * time.Millisecond
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	var mu sync.Mutex
	inspects := map[string]int{}
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		id, _ := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1.41/containers/"), "/json")
		if r.URL.Path == "/v1.41/containers/json" {
			for _, id := range []string{"c1", "c2"} {
				if strings.Contains(r.URL.Query().Get("filters"), id) {
					_, _ = w.Write([]byte(`[{"Id":"` + id + `","Names":["/` + id + `"],"State":"running"}]`))
				}
			}
			return
		}
		mu.Lock()
		inspects[id]++
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write([]byte(`{"Id":"` + id + `","State":{"Status":"running"},"Config":{},"HostConfig":{}}`))
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, id := range []string{"c1", "c2"} {
		e.apply(ctx, events.Message{Type: events.ContainerEventType, Action: "create", Actor: events.Actor{ID: id}})
	}
	once.Do(func() { close(release) })
	waitFor(t, "c1 cached", func() bool { return e.Container("c1") != nil })
	mu.Lock()
	defer mu.Unlock()
	if inspects["c1"] != 2 || inspects["c2"] != 1 {
		t.Fatalf("inspects %v: want c1's refresh and its second try aside, c2's only once", inspects)
	}
}
