package engine

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// Up to PingRate × RefreshInterval engines each is checked every
// RefreshInterval; past that, every engines/PingRate.
func TestHealthIntervalWithinPingRate(t *testing.T) {
	for _, tc := range []struct {
		engines, rate int
		want          time.Duration
	}{
		{1, 0, 2 * time.Second},
		{1000, 0, 2 * time.Second},
		{2000, 0, 2 * time.Second},
		{10000, 0, 10 * time.Second},
		{10000, 500, 20 * time.Second},
		{10000, -1, 2 * time.Second},
	} {
		o := Options{PingRate: tc.rate, budget: &budget{}}
		o.defaults()
		o.budget.setEngines(tc.engines)
		if got := o.healthInterval(); got != tc.want {
			t.Errorf("%d engines, rate %d: checked every %s, want %s", tc.engines, tc.rate, got, tc.want)
		}
	}
}

// Up to 3,000 engines each is reloaded every ResyncInterval; past that
// the pool reloads 50 engines a second.
func TestResyncIntervalWithinRate(t *testing.T) {
	for _, tc := range []struct {
		engines int
		want    time.Duration
	}{{1, time.Minute}, {3000, time.Minute}, {10000, 200 * time.Second}} {
		o := Options{budget: &budget{}}
		o.defaults()
		o.budget.setEngines(tc.engines)
		if got := o.resyncInterval(); got != tc.want {
			t.Errorf("%d engines: reloaded every %s, want %s", tc.engines, got, tc.want)
		}
	}
}

// Each engine may keep an idle connection only while two descriptors per
// engine and the reserve fit the open-files limit.
func TestKeepIdleWithinOpenFiles(t *testing.T) {
	for _, tc := range []struct {
		limit   int64
		engines int
		want    bool
	}{
		{20000, 1000, true},
		{20000, 8976, true},
		{20000, 8977, false},
		{20000, 10000, false},
		{0, 100000, true}, // limit unknown
	} {
		b := &budget{fdLimit: tc.limit}
		b.setEngines(tc.engines)
		o := Options{RefreshInterval: 2 * time.Second, budget: b}
		if got := o.keepIdle(); got != tc.want {
			t.Errorf("limit %d, %d engines: keep idle %v, want %v", tc.limit, tc.engines, got, tc.want)
		}
	}
}

// A health check reuses its connection while the budget allows one idle
// connection per engine, and closes it after each check when not; a kept
// connection the engine closed meanwhile costs no failed check.
func TestPingConnectionsWithinBudget(t *testing.T) {
	for _, keep := range []bool{true, false} {
		var conns atomic.Int32
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("OK")) }))
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Start()
		c, err := NewClient(srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		b := &budget{fdLimit: 1 << 20}
		b.setEngines(1)
		b.keepIdle.Store(keep)
		opts := &Options{budget: b}
		opts.defaults()
		e := newEngine(srv.URL, c, opts)
		for range 3 {
			if err := e.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		want := int32(1)
		if !keep {
			want = 3
		}
		if n := conns.Load(); n != want {
			t.Errorf("keep idle %v: 3 checks opened %d connections, want %d", keep, n, want)
		}
		if keep {
			srv.CloseClientConnections()
			if err := e.Ping(context.Background()); err != nil {
				t.Errorf("a check after the engine closed the kept connection: %v", err)
			}
		}
		c.closePing()
		srv.Close()
	}
}

// The event stream has a connection of its own, not the client's pool
// (whose idle connection the health check owns), and ending its context
// closes it.
func TestEventStreamOwnConnection(t *testing.T) {
	sim, err := enginesim.Start(enginesim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	c, err := NewClient(sim.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := &Options{}
	opts.defaults()
	e := newEngine(sim.Addr(), c, opts)
	ctx, cancel := context.WithCancel(context.Background())
	evs, errc, err := e.openEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream open at the engine", func() bool { return sim.Listeners() == 1 })
	if _, err := sim.Create(enginesim.CreateSpec{Name: "web", Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-evs:
		if ev.Message.Actor.ID == "" || ev.Message.Action != "create" {
			t.Errorf("first event %+v, want the create", ev.Message)
		}
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	cancel()
	waitFor(t, "the stream closed at the engine", func() bool { return sim.Listeners() == 0 })
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("the reader did not end with its context")
	}
}
