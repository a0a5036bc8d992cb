package engine

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A full refresh inspects the containers it does not know yet a few at a
// time, never more than its client keeps connections (so each is reused,
// not dialed anew), and keeps what each inspect
// said; one the engine no longer has is left out.
func TestRefreshInspectsAFewAtATime(t *testing.T) {
	const n = 40
	var inflight, most atomic.Int32
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1.41/containers/json" {
			var items []string
			for i := range n {
				items = append(items, fmt.Sprintf(`{"Id":"c%d","Names":["/web%d"],"State":"running"}`, i, i))
			}
			_, _ = w.Write([]byte("[" + strings.Join(items, ",") + "]"))
			return
		}
		id, ok := strings.CutPrefix(strings.TrimSuffix(r.URL.Path, "/json"), "/v1.41/containers/")
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		now := inflight.Add(1)
		defer inflight.Add(-1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		time.Sleep(5 * time.Millisecond) // long enough for the next ones to start meanwhile
		if id == "c7" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"No such container: c7"}`))
			return
		}
		_, _ = fmt.Fprintf(w, `{"Id":%q,"State":{"Status":"running"},"Config":{"Env":["ID=%s"]},"HostConfig":{"Memory":1048576}}`, id, id)
	})
	if err := e.refreshContainers(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(e.Containers()); got != n-1 {
		t.Errorf("%d containers cached, want %d (all but the one gone)", got, n-1)
	}
	for i := range n {
		c := e.Container(fmt.Sprintf("c%d", i))
		if i == 7 {
			if c != nil {
				t.Errorf("c7, gone from the engine, is cached")
			}
			continue
		}
		if c == nil || c.Memory != 1<<20 || len(c.Env) != 1 || c.Env[0] != fmt.Sprintf("ID=c%d", i) {
			t.Errorf("c%d cached as %+v: want its inspect's memory and env", i, c)
		}
	}
	if m := most.Load(); m < 2 || m > idleConnsPerEngine {
		t.Errorf("at most %d inspects at once, want 2..%d", m, idleConnsPerEngine)
	}
}

// The cache finds a container by name without a scan, and keeps that
// index true through a full refresh, a rename (single refresh) and a
// removal.
func TestContainerNamedFollowsTheCache(t *testing.T) {
	var name atomic.Value
	name.Store("/web")
	gone := atomic.Bool{}
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1.41/containers/json" {
			if gone.Load() {
				_, _ = w.Write([]byte(`[]`))
				return
			}
			fmt.Fprintf(w, `[{"Id":"c1","Names":["%s"],"State":"running"},{"Id":"c2","Names":["/db"],"State":"running"}]`, name.Load())
			return
		}
		if gone.Load() {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"No such container"}`))
			return
		}
		_, _ = w.Write([]byte(`{"State":{"Status":"running"},"Config":{},"HostConfig":{}}`))
	})
	ctx := context.Background()
	if err := e.refreshContainers(ctx); err != nil {
		t.Fatal(err)
	}
	if c := e.ContainerNamed("web"); c == nil || c.ID != "c1" {
		t.Fatalf("ContainerNamed(web) = %+v after a full refresh; want c1", c)
	}
	name.Store("/www")
	if err := e.RefreshContainer(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if c := e.ContainerNamed("web"); c != nil {
		t.Errorf("ContainerNamed(web) = %s after the rename; want nil", c.ID)
	}
	if c := e.ContainerNamed("www"); c == nil || c.ID != "c1" {
		t.Errorf("ContainerNamed(www) = %+v after the rename; want c1", c)
	}
	e.ForgetContainer("c2")
	if c := e.ContainerNamed("db"); c != nil {
		t.Errorf("ContainerNamed(db) = %s once forgotten; want nil", c.ID)
	}
	gone.Store(true)
	if err := e.RefreshContainer(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if c := e.ContainerNamed("www"); c != nil {
		t.Errorf("ContainerNamed(www) = %s once removed; want nil", c.ID)
	}
}

// countingConn counts its engine's open connections on the client's side.
type countingConn struct {
	net.Conn
	open *atomic.Int32
	once sync.Once
}

func (c *countingConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// A reload dials no more connections than the client keeps between
// calls, and closes those it kept when it ends: an engine loaded holds no
// idle connection of its own (its health check and event stream have
// theirs), where before the load's connections idled for IdleConnTimeout.
func TestResyncReusesAndClosesItsConnections(t *testing.T) {
	const n = 40
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1.41/containers/json":
			var items []string
			for i := range n {
				items = append(items, fmt.Sprintf(`{"Id":"c%d","Names":["/web%d"],"State":"running"}`, i, i))
			}
			_, _ = w.Write([]byte("[" + strings.Join(items, ",") + "]"))
		case strings.HasPrefix(r.URL.Path, "/v1.41/containers/"):
			time.Sleep(2 * time.Millisecond) // the next inspects start meanwhile
			_, _ = w.Write([]byte(`{"State":{"Status":"running"},"Config":{},"HostConfig":{}}`))
		case r.URL.Path == "/v1.41/info":
			_, _ = w.Write([]byte(`{"Name":"e1"}`))
		case r.URL.Path == "/v1.41/volumes":
			_, _ = w.Write([]byte(`{"Volumes":[]}`))
		default:
			_, _ = w.Write([]byte(`[]`))
		}
	}))
	t.Cleanup(srv.Close)
	var open, dialed atomic.Int32
	addr := strings.TrimPrefix(srv.URL, "http://")
	c := NewClientDial("e1", func(ctx context.Context) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		open.Add(1)
		dialed.Add(1)
		return &countingConn{Conn: conn, open: &open}, nil
	})
	opts := &Options{}
	opts.defaults()
	e := newEngine("e1", c, opts)
	e.apiVersion = "1.41"
	if err := e.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(e.Containers()); got != n {
		t.Fatalf("%d containers cached, want %d", got, n)
	}
	if o := open.Load(); o != 0 {
		t.Errorf("%d connections still open after the reload, want 0", o)
	}
	// The inspects at once reuse the kept connections; a race between a
	// connection going back to the pool and the next call may dial one
	// more now and then, never as many as eight inspects at once need.
	if d := dialed.Load(); d > 2*idleConnsPerEngine-1 {
		t.Errorf("the reload of %d containers dialed %d connections, want at most %d", n, d, 2*idleConnsPerEngine-1)
	}
}
