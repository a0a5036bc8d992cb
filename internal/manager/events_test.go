package manager

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/events"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
)

func TestEventFilter(t *testing.T) {
	e := &engine.Engine{Addr: "10.0.0.1:2375", ID: "n0de1d"}
	ctr := events.Message{Type: "container", Action: "start", Scope: "local",
		Actor: events.Actor{ID: "abc123", Attributes: map[string]string{"name": "web", "image": "busybox:1.36", "tier": "front"}}}
	exec := events.Message{Type: "container", Action: "exec_start: sh -c true", Scope: "local", Actor: events.Actor{ID: "abc123", Attributes: map[string]string{"name": "web"}}}
	img := events.Message{Type: "image", Action: "pull", Scope: "local", Actor: events.Actor{ID: "sha256:77", Attributes: map[string]string{"name": "redis:7"}}}
	netw := events.Message{Type: "network", Action: "connect", Scope: "local", Actor: events.Actor{ID: "net9", Attributes: map[string]string{"name": "front", "container": "abc123"}}}
	vol := events.Message{Type: "volume", Action: "mount", Scope: "local", Actor: events.Actor{ID: "data", Attributes: map[string]string{"container": "abc123"}}}
	daemon := events.Message{Type: "daemon", Action: "reload", Scope: "local", Actor: events.Actor{ID: "d1", Attributes: map[string]string{"name": "host1"}}}
	node := events.Message{Type: "node", Action: EventNodeConnect, Scope: "local", Actor: events.Actor{ID: "n0de1d", Attributes: map[string]string{"name": "10.0.0.1:2375"}}}
	for _, tc := range []struct {
		filter string
		m      events.Message
		want   bool
	}{
		{`{}`, ctr, true},
		{`{"type":["container"]}`, ctr, true},
		{`{"type":["image","network"]}`, ctr, false},
		{`{"type":["node"]}`, node, true},
		{`{"event":["start"]}`, ctr, true},
		{`{"event":["stop"]}`, ctr, false},
		{`{"event":["exec_start"]}`, exec, true},
		{`{"event":["engine_connect"]}`, node, true},
		{`{"container":["web"]}`, ctr, true},
		{`{"container":["abc"]}`, ctr, true},
		{`{"container":["db"]}`, ctr, false},
		{`{"container":["web"]}`, img, false},
		{`{"image":["busybox"]}`, ctr, true},
		{`{"image":["busybox:1.36"]}`, ctr, true},
		{`{"image":["redis"]}`, img, true},
		{`{"image":["sha256:77"]}`, img, true},
		{`{"image":["redis"]}`, ctr, false},
		{`{"label":["tier"]}`, ctr, true},
		{`{"label":["tier=front"]}`, ctr, true},
		{`{"label":["tier=back"]}`, ctr, false},
		{`{"label":["tier","other"]}`, ctr, false},
		{`{"network":["front"]}`, netw, true},
		{`{"network":["net"]}`, netw, true},
		{`{"network":["back"]}`, netw, false},
		{`{"network":["front"]}`, ctr, false},
		{`{"volume":["data"]}`, vol, true},
		{`{"volume":["data"]}`, ctr, false},
		{`{"daemon":["host1"]}`, daemon, true},
		{`{"daemon":["host1"]}`, ctr, false},
		{`{"scope":["local"]}`, ctr, true},
		{`{"scope":["swarm"]}`, ctr, false},
		{`{"node":["10.0.0.1:2375"]}`, ctr, true},
		{`{"node":["n0de"]}`, ctr, true},
		{`{"node":["other"]}`, ctr, false},
		{`{"node":["n0de1d"]}`, node, true},
		{`{"type":["container"],"event":["start","die"],"container":["web"]}`, ctr, true},
		{`{"type":["container"],"event":["die"],"container":["web"]}`, ctr, false},
	} {
		f, err := newEventFilter(filtersOf(t, tc.filter))
		if err != nil {
			t.Fatalf("%s: %v", tc.filter, err)
		}
		if got := f.match(tc.m, e); got != tc.want {
			t.Errorf("%s on %s %s: got %v, want %v", tc.filter, tc.m.Type, tc.m.Action, got, tc.want)
		}
	}
}

// filtersOf reads a filter in the list form ({"key":["value"]}).
func filtersOf(t *testing.T, raw string) backend.Filters {
	t.Helper()
	var f backend.Filters
	if err := json.Unmarshal([]byte(raw), &f); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return f
}

func TestEventsRequestOf(t *testing.T) {
	req, err := eventsRequestOf(backend.EventsOptions{Since: "1700000000.5", Until: "1700000100", Filters: backend.Filters{"type": {"container"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !req.since.Equal(time.Unix(1700000000, 500000000)) || !req.until.Equal(time.Unix(1700000100, 0)) || req.filter["type"][0] != "container" {
		t.Fatalf("parsed %+v", req)
	}
	for _, q := range []backend.EventsOptions{{Since: "yesterday"}, {Until: "1.2.3"}, {Filters: backend.Filters{"colour": {"red"}}}} {
		if _, err := eventsRequestOf(q); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%v: want an invalid-argument error, got %v", q, err)
		}
	}
}

// cluster is a manager and its Docker API over simulated engines.
type cluster struct {
	pool *engine.Pool
	sims []*enginesim.Engine
	api  *httptest.Server
}

// startCluster serves a manager over n simulated engines; wrap, if set,
// stands between the pool and each engine (to answer what enginesim does not).
func startCluster(t *testing.T, n int, wrap func(*enginesim.Engine) http.Handler, busBuffer int) *cluster {
	t.Helper()
	f, err := enginesim.StartFleet(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	c := &cluster{sims: f.Engines, pool: engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond, FailureRetry: 1, Timeout: 2 * time.Second, SubscriberBuffer: busBuffer}, nil)}
	addrs := f.Addrs()
	if wrap != nil {
		for i, s := range f.Engines {
			srv := httptest.NewServer(wrap(s))
			t.Cleanup(srv.Close)
			addrs[i] = srv.Listener.Addr().String()
		}
	}
	c.pool.Update(addrs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.pool.Run(ctx); close(done) }()
	m := New(Config{Pool: c.pool})
	c.api = httptest.NewServer(dockerapi.New(m, "test", nil))
	t.Cleanup(func() { c.api.Close(); cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); len(c.pool.Healthy()) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("engines did not become healthy")
		}
	}
	return c
}

// eventStream is one `docker events` client.
type eventStream struct {
	c    chan map[string]any
	done chan struct{}
}

func (c *cluster) events(t *testing.T, q url.Values) *eventStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", c.api.URL+"/v1.41/events?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET /events: %s", resp.Status)
	}
	s := &eventStream{c: make(chan map[string]any, 100), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("bad event line %q: %v", sc.Text(), err)
				return
			}
			s.c <- ev
		}
	}()
	return s
}

// collect reads events until want of them satisfy match, then for settle
// more; it returns those that match.
func (s *eventStream) collect(t *testing.T, want int, settle time.Duration, match func(map[string]any) bool) []map[string]any {
	t.Helper()
	var got []map[string]any
	deadline := time.After(10 * time.Second)
	var quiet <-chan time.Time
	for {
		select {
		case ev := <-s.c:
			if match(ev) {
				got = append(got, ev)
				if len(got) == want {
					quiet = time.After(settle)
				}
			}
		case <-quiet:
			return got
		case <-deadline:
			t.Fatalf("got %d of %d events: %v", len(got), want, got)
		}
	}
}

func action(ev map[string]any) string { return fmt.Sprint(ev["Type"], " ", ev["Action"]) }

func attrs(ev map[string]any) map[string]any {
	return ev["Actor"].(map[string]any)["Attributes"].(map[string]any)
}

// Defect a: the event hub handed one map to every `docker events` client
// and each deleted from it: two clients and a node state change killed the
// manager with a concurrent map write. Every client now has its own copy.
func TestEventsManyClientsNodeChangesAndContainers(t *testing.T) {
	c := startCluster(t, 2, nil, 0)
	clients := []*eventStream{c.events(t, nil), c.events(t, nil), c.events(t, nil)}
	time.Sleep(100 * time.Millisecond) // let every client subscribe

	id, err := c.sims[0].Create(enginesim.CreateSpec{Name: "web", Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	isCreate := func(ev map[string]any) bool {
		return ev["Action"] == "create" && ev["Actor"].(map[string]any)["ID"] == id
	}
	for i, cl := range clients {
		got := cl.collect(t, 1, 0, isCreate)
		if a := attrs(got[0]); a["node.name"] != c.sims[0].Name() || a["node.addr"] != c.sims[0].Addr() || a["name"] != "web" {
			t.Errorf("client %d: container event attributes %v", i, a)
		}
	}

	sim1 := c.sims[1]
	addr, name := sim1.Addr(), sim1.Name()
	_ = sim1.Close()
	var back *enginesim.Engine
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if st, _ := c.pool.Engines()[engineIndex(c.pool, addr)].State(); st == engine.Unhealthy {
			if back, err = enginesim.Start(enginesim.Options{Addr: addr, Name: name}); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("engine not seen down")
		}
	}
	defer back.Close()

	for i, cl := range clients {
		got := cl.collect(t, 2, 300*time.Millisecond, func(ev map[string]any) bool { return ev["Type"] == "node" || isCreate(ev) })
		want := []string{"node " + EventNodeDisconnect, "node " + EventNodeReconnect}
		if len(got) != 2 || action(got[0]) != want[0] || action(got[1]) != want[1] {
			var seen []string
			for _, ev := range got {
				seen = append(seen, action(ev))
			}
			t.Fatalf("client %d saw %v, want each of %v once (and the create no more)", i, seen, want)
		}
		node := got[0]
		if a := attrs(node); node["id"] == "" || node["status"] != EventNodeDisconnect || node["scope"] != "local" || a["node.addr"] != addr || a["name"] != name {
			t.Errorf("client %d: node event %v", i, node)
		}
	}
}

func engineIndex(p *engine.Pool, addr string) int {
	for i, e := range p.Engines() {
		if e.Addr == addr {
			return i
		}
	}
	return -1
}

func TestEventsFilteredPerClient(t *testing.T) {
	c := startCluster(t, 1, nil, 0)
	webOnly := c.events(t, url.Values{"filters": {`{"container":["web"],"event":["start"]}`}})
	all := c.events(t, nil)
	time.Sleep(100 * time.Millisecond)
	for _, n := range []string{"web", "db"} {
		if _, err := c.sims[0].Create(enginesim.CreateSpec{Name: n, Image: "busybox"}); err != nil {
			t.Fatal(err)
		}
		if err := c.sims[0].StartContainer(n); err != nil {
			t.Fatal(err)
		}
	}
	isContainer := func(ev map[string]any) bool { return ev["Type"] == "container" }
	if got := all.collect(t, 4, 200*time.Millisecond, isContainer); len(got) != 4 {
		t.Fatalf("unfiltered client got %d container events, want 4", len(got))
	}
	got := webOnly.collect(t, 1, 200*time.Millisecond, func(map[string]any) bool { return true })
	if len(got) != 1 || got[0]["Action"] != "start" || attrs(got[0])["name"] != "web" {
		t.Fatalf("filtered client got %v", got)
	}
}

// historyEngine answers /events with since or until from a fixed past (as
// dockerd does from its buffer) and everything else from the simulation.
func historyEngine(past []events.Message) func(*enginesim.Engine) http.Handler {
	return func(sim *enginesim.Engine) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			if !strings.HasSuffix(r.URL.Path, "/events") || q.Get("until") == "" {
				sim.ServeHTTP(w, r)
				return
			}
			since, until := parseTimestamp(q.Get("since")), parseTimestamp(q.Get("until"))
			if q.Get("since") == "" {
				since = time.Time{}
			}
			enc := json.NewEncoder(w)
			for _, m := range past {
				t := time.Unix(0, m.TimeNano)
				if !t.Before(since) && !t.After(until) {
					_ = enc.Encode(m)
				}
			}
		})
	}
}

func TestEventsHistoryThenLive(t *testing.T) {
	now := time.Now()
	ev := func(ago time.Duration, action, id string) events.Message {
		at := now.Add(-ago)
		return events.Message{Type: "container", Action: events.Action(action), Scope: "local", Actor: events.Actor{ID: id, Attributes: map[string]string{"name": id}}, Time: at.Unix(), TimeNano: at.UnixNano()}
	}
	past := []events.Message{ev(time.Hour, "create", "old"), ev(10*time.Minute, "start", "old"), ev(time.Minute, "stop", "old")}
	c := startCluster(t, 1, historyEngine(past), 0)
	ts := func(ago time.Duration) string { return fmt.Sprint(now.Add(-ago).Unix()) }

	// since in the past: the history from there, then live.
	live := c.events(t, url.Values{"since": {ts(20 * time.Minute)}})
	got := live.collect(t, 2, 100*time.Millisecond, func(map[string]any) bool { return true })
	if len(got) != 2 || got[0]["Action"] != "start" || got[1]["Action"] != "stop" || attrs(got[0])["node.id"] != c.pool.Engines()[0].ID {
		t.Fatalf("history: %v", got)
	}
	if _, err := c.sims[0].Create(enginesim.CreateSpec{Name: "new", Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	got = live.collect(t, 1, 200*time.Millisecond, func(map[string]any) bool { return true })
	if len(got) != 1 || got[0]["Action"] != "create" || attrs(got[0])["name"] != "new" {
		t.Fatalf("live after history: %v", got)
	}

	// until in the past: the history window only, then the stream ends.
	window := c.events(t, url.Values{"since": {ts(2 * time.Hour)}, "until": {ts(5 * time.Minute)}})
	got = window.collect(t, 2, 100*time.Millisecond, func(map[string]any) bool { return true })
	if len(got) != 2 || got[0]["Action"] != "create" || got[1]["Action"] != "start" {
		t.Fatalf("window: %v", got)
	}
	select {
	case <-window.done:
	case <-time.After(5 * time.Second):
		t.Fatal("stream with an until in the past did not end")
	}
}

func TestEventsSlowClientStreamEnds(t *testing.T) {
	c := startCluster(t, 1, nil, 8)
	m := New(Config{Pool: c.pool})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &blockingWriter{release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- m.Events(ctx, backend.EventsOptions{}, w) }()
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 20; i++ {
		if _, err := c.sims[0].Create(enginesim.CreateSpec{Image: "busybox"}); err != nil {
			t.Fatal(err)
		}
	}
	// The pool applies an event to its cache just before it publishes it.
	for deadline := time.Now().Add(10 * time.Second); len(c.pool.Engines()[0].Containers()) < 20; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the pool did not see the creates")
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(w.release) // the client reads again, but it is too late: it lost events
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a client a whole buffer behind was not cut off")
	}
	if w.n > 1+8+1 { // headers, what was buffered, the stalled one
		t.Fatalf("a cut-off client still got %d writes", w.n)
	}
}

func TestEngineEventJSONKeepsFieldsAndPrecision(t *testing.T) {
	e := &engine.Engine{Addr: "10.0.0.1:2375", ID: "n1", IP: "10.0.0.1"}
	raw := []byte(`{"Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"web"}},"status":"start","id":"c1","from":"busybox","scope":"local","time":1700000000,"timeNano":1700000000123456789,"future":{"x":[1,2]}}`)
	b, err := json.Marshal(engineEventJSON(raw, e))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Action":"start","Actor":{"Attributes":{"name":"web","node.addr":"10.0.0.1:2375","node.id":"n1","node.ip":"10.0.0.1","node.name":"10.0.0.1:2375"},"ID":"c1"},"Type":"container","from":"busybox","future":{"x":[1,2]},"id":"c1","scope":"local","status":"start","time":1700000000,"timeNano":1700000000123456789}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	// Each call is a fresh copy: clients never share a map.
	a1, a2 := engineEventJSON(raw, e), engineEventJSON(raw, e)
	delete(a1, "Type")
	if a2["Type"] != "container" {
		t.Fatal("copies are shared")
	}
}

// blockingWriter stalls its first event write until released.
type blockingWriter struct {
	mu      sync.Mutex
	release chan struct{}
	n       int
}

func (w *blockingWriter) Write(b []byte) (int, error) {
	if len(b) > 0 {
		<-w.release
	}
	w.mu.Lock()
	w.n++
	w.mu.Unlock()
	return len(b), nil
}
