package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// next reads one event, failing the test after a while.
func next(t *testing.T, s *Subscription) Event {
	t.Helper()
	select {
	case ev, ok := <-s.C():
		if !ok {
			t.Fatalf("subscription ended: %v", s.Err())
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

// nextWhere skips events until one satisfies ok.
func nextWhere(t *testing.T, s *Subscription, ok func(Event) bool) Event {
	t.Helper()
	for {
		if ev := next(t, s); ok(ev) {
			return ev
		}
	}
}

func TestBusStateChanges(t *testing.T) {
	f, err := enginesim.StartFleet(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := NewPool(Options{RefreshInterval: 50 * time.Millisecond, FailureRetry: 1, Timeout: time.Second}, nil)
	sub := p.Subscribe(context.Background())
	p.Update(f.Addrs())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	ev := next(t, sub)
	if !ev.IsState() || ev.Old != Pending || ev.New != Healthy || ev.Engine != p.Engines()[0] || ev.Time.IsZero() {
		t.Fatalf("first event %+v", ev)
	}
	addr := f.Engines[0].Addr()
	_ = f.Engines[0].Close()
	ev = nextWhere(t, sub, Event.IsState)
	if ev.Old != Healthy || ev.New != Unhealthy {
		t.Fatalf("after close: %v → %v", ev.Old, ev.New)
	}
	sim, err := enginesim.Start(enginesim.Options{Addr: addr, Name: "back"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ev = nextWhere(t, sub, Event.IsState)
	if ev.Old != Unhealthy || ev.New != Healthy {
		t.Fatalf("after restart: %v → %v", ev.Old, ev.New)
	}
}

func TestBusContainerEventAfterCache(t *testing.T) {
	// On a loaded machine the create's refresh may take longer than the
	// bound it is given in production (the start event then caches it):
	// here it is given all the time it needs. Restored after the pool
	// stopped (cleanups run last first).
	wait := createRefreshWait
	t.Cleanup(func() { createRefreshWait = wait })
	createRefreshWait = 10 * time.Second
	p, sims := simPool(t, 2, Options{})
	a, b := p.Subscribe(context.Background()), p.Subscribe(context.Background())
	id, err := sims[1].Create(enginesim.CreateSpec{Name: "web", Image: "busybox", Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Subscription{a, b} {
		ev := next(t, s)
		if ev.IsState() || ev.Message.Type != "container" || ev.Message.Action != "create" || ev.Message.Actor.ID != id || ev.Message.Actor.Attributes["k"] != "v" {
			t.Fatalf("event %+v", ev)
		}
		if ev.Engine.Name() != sims[1].Name() || !strings.Contains(string(ev.Raw), `"timeNano"`) {
			t.Fatalf("engine %s, raw %s", ev.Engine.Name(), ev.Raw)
		}
		// Consumers see the change already applied to the cache.
		if c := ev.Engine.Container(id); c == nil || c.Name() != "web" {
			t.Fatalf("cache does not have the container yet: %+v", c)
		}
	}
}

func TestBusSubscriberCancels(t *testing.T) {
	p, sims := simPool(t, 1, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	gone := p.Subscribe(ctx)
	stays := p.Subscribe(context.Background())
	cancel()
	if _, ok := <-gone.C(); ok {
		t.Fatal("cancelled subscription still delivers")
	}
	if !errors.Is(gone.Err(), context.Canceled) {
		t.Fatalf("Err = %v", gone.Err())
	}
	if _, err := sims[0].Create(enginesim.CreateSpec{Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, stays); ev.Message.Action != "create" {
		t.Fatalf("other subscriber got %+v", ev)
	}
}

func TestBusSlowSubscriberIsCutOffNotBlocking(t *testing.T) {
	p, sims := simPool(t, 1, Options{SubscriberBuffer: 4})
	slow := p.Subscribe(context.Background())
	fast := p.Subscribe(context.Background())
	got := make(chan int)
	go func() {
		n := 0
		for range fast.C() {
			if n++; n == 10 {
				got <- n
			}
		}
	}()
	// Creates until fast has seen 10 events (the engine loop must never
	// wait for slow); more than 10 when the event stream was still
	// connecting under the first ones.
	deadline := time.After(10 * time.Second)
created:
	for {
		if _, err := sims[0].Create(enginesim.CreateSpec{Image: "busybox"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
			break created
		case <-deadline:
			t.Fatal("the fast subscriber was held up")
		case <-time.After(20 * time.Millisecond):
		}
	}
	n := 0
	for range slow.C() {
		n++
	}
	if n != 4 || !errors.Is(slow.Err(), ErrSubscriberTooSlow) {
		t.Fatalf("slow subscriber: %d events then %v; want its 4 buffered, then cut off", n, slow.Err())
	}
	if fast.Err() != nil {
		t.Fatalf("fast subscriber ended: %v", fast.Err())
	}
}

// A value derived from a bus event (the line an events client writes)
// is computed once for all its subscribers.
func TestBusSharedOncePerEvent(t *testing.T) {
	b := newBus(0)
	a, c := b.subscribe(context.Background()), b.subscribe(context.Background())
	b.publishAll([]Event{containerEvent("c1", "start"), containerEvent("c1", "die")})
	calls := 0
	f := func() any { calls++; return calls }
	for _, s := range []*Subscription{a, c} {
		if v := next(t, s).Shared(f); v != 1 {
			t.Fatalf("first event's value %v, want the one computed first", v)
		}
		if v := next(t, s).Shared(f); v != 2 {
			t.Fatalf("second event's value %v", v)
		}
	}
	if calls != 2 {
		t.Fatalf("computed %d times for 2 events", calls)
	}
}
