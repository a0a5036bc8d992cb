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

// Up to 1,500 engines each is reloaded every ResyncInterval; past that
// the pool reloads 25 engines a second.
func TestResyncIntervalWithinRate(t *testing.T) {
	for _, tc := range []struct {
		engines int
		want    time.Duration
	}{{1, time.Minute}, {1500, time.Minute}, {10000, 400 * time.Second}} {
		o := Options{budget: &budget{}}
		o.defaults()
		o.budget.setEngines(tc.engines)
		if got := o.resyncInterval(); got != tc.want {
			t.Errorf("%d engines: reloaded every %s, want %s", tc.engines, got, tc.want)
		}
	}
}

// Health-check connections stay open between checks only while they,
// every engine's event stream and the reserve fit the open-files limit;
// those over it after the pool grew are given up at their next check.
func TestKeptConnectionsWithinOpenFiles(t *testing.T) {
	for _, tc := range []struct {
		limit   int64
		engines int
		want    int
	}{
		{20000, 1000, 1000},
		{20000, 10000, 20000 - fdReserve - 10000},
		{0, 3000, 3000}, // limit unknown
	} {
		b := &budget{fdLimit: tc.limit}
		b.setEngines(tc.engines)
		kept := 0
		for range tc.engines {
			if b.keep(false) {
				kept++
			}
		}
		if kept != tc.want {
			t.Errorf("limit %d, %d engines: %d keep their connection, want %d", tc.limit, tc.engines, kept, tc.want)
		}
	}
	b := &budget{fdLimit: 20000}
	b.setEngines(1000)
	for range 1000 {
		b.keep(false)
	}
	b.setEngines(18000) // allowance 20000-2048-18000 < 0
	if b.keep(true) {
		t.Error("a kept connection stays after the pool grew past the open-files limit")
	}
	if got := b.kept.Load(); got != 999 {
		t.Errorf("%d kept after one was given up, want 999", got)
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
		if !keep {
			b.fdLimit = fdReserve + 1 // the event stream's descriptor and no more
		}
		b.setEngines(1)
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
	case raw := <-evs:
		if ev, err := decodeEvent(raw); err != nil || ev.Message.Actor.ID == "" || ev.Message.Action != "create" {
			t.Errorf("first event %s, want the create", raw)
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
