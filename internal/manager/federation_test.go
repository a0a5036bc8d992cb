package manager_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// fedLevel is one shoal of a federation under test: its manager, served
// over HTTP as an engine would be.
type fedLevel struct {
	mgr  *manager.Manager
	pool *engine.Pool
	url  string
}

// startLevel runs a shoal named name (labels its own) over addrs until
// the test ends, once every engine answered and, for members, said its
// leaves.
func startLevel(t *testing.T, name string, labels map[string]string, addrs ...string) *fedLevel {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pool := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond}, nil)
	pool.Update(addrs)
	done := make(chan struct{})
	go func() { defer close(done); _ = pool.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ready := len(pool.Healthy()) == len(addrs)
		for _, e := range pool.Healthy() {
			if e.IsShoal() && e.Member() == nil {
				ready = false
			}
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shoal %s: engines %v not all healthy", name, addrs)
		}
	}
	mgr := manager.New(manager.Config{Pool: pool, Placer: scheduler.New(scheduler.Spread{}, scheduler.Options{}),
		Strategy: "spread", Name: name, Labels: labels, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(dockerapi.New(mgr, "test", nil))
	t.Cleanup(srv.Close)
	return &fedLevel{mgr: mgr, pool: pool, url: srv.URL}
}

func (l *fedLevel) addr() string { return strings.TrimPrefix(l.url, "http://") }

// create posts a container create and returns the status and message.
func (l *fedLevel) create(t *testing.T, name string, body map[string]any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(l.url+"/v1.47/containers/create?name="+name, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// fedSims are two simulated engines: e1 (2 CPUs, 2 GiB, zone=z1) and e2
// (4 CPUs, 8 GiB, zone=z2).
func fedSims(t *testing.T, prefix string) (e1, e2 *enginesim.Engine) {
	t.Helper()
	return sim(t, enginesim.Options{Name: prefix + "e1", NCPU: 2, MemTotal: 2 << 30, Labels: []string{"zone=z1"}}),
		sim(t, enginesim.Options{Name: prefix + "e2", NCPU: 4, MemTotal: 8 << 30, Labels: []string{"zone=z2"}})
}

func running(e *enginesim.Engine) int { all, _ := e.Count(); return all }

// A shoal that is a node of another says its leaves, with its own labels
// on each; the upper shoal knows it for a member and shows it so.
func TestFederationMemberView(t *testing.T) {
	e1, e2 := fedSims(t, "")
	siteA := startLevel(t, "siteA", map[string]string{"region": "eu"}, e1.Addr(), e2.Addr())
	top := startLevel(t, "top", nil, siteA.addr())

	var v engine.MemberView
	if code := getJSON(t, siteA.url+"/_shoal/nodes", &v); code != 200 {
		t.Fatalf("GET /_shoal/nodes: %d", code)
	}
	if v.Name != "siteA" || v.Labels["region"] != "eu" || len(v.Nodes) != 2 {
		t.Fatalf("member view %+v: want siteA, region=eu, 2 nodes", v)
	}
	if v.NCPU != 6 || v.MemTotal != 10<<30 || v.FreeMemory != 10<<30 || v.Largest.Memory != 8<<30 || v.Largest.NanoCPUs != 4e9 {
		t.Errorf("member totals: NCPU %d MemTotal %d FreeMemory %d Largest %+v; want 6, 10 GiB, 10 GiB, 4 CPUs + 8 GiB", v.NCPU, v.MemTotal, v.FreeMemory, v.Largest)
	}
	for _, n := range v.Nodes {
		if n.State != "healthy" || n.Labels["region"] != "eu" || n.Labels["zone"] == "" || n.NCPU == 0 || n.MemTotal == 0 || n.ID == "" {
			t.Errorf("leaf %+v: want healthy, region=eu, a zone, CPUs, memory, an ID", n)
		}
	}

	m := top.pool.Engines()[0]
	if !m.IsShoal() || m.Name() != "siteA" || m.Member() == nil || len(m.Member().Nodes) != 2 {
		t.Fatalf("top's view of siteA: shoal %v, name %q, member %+v", m.IsShoal(), m.Name(), m.Member())
	}
	var info struct {
		Name         string
		Labels       []string
		NCPU         int
		MemTotal     int64
		DriverStatus [][2]string
	}
	getJSON(t, top.url+"/v1.47/info", &info)
	if info.Name != "top" || info.NCPU != 6 || info.MemTotal != 10<<30 {
		t.Errorf("top info: Name %q NCPU %d MemTotal %d; want top, 6, 10 GiB", info.Name, info.NCPU, info.MemTotal)
	}
	var kind string
	for _, l := range info.DriverStatus {
		if l[0] == "  └ Kind" {
			kind = l[1]
		}
	}
	var largest string
	for _, l := range info.DriverStatus {
		if l[0] == "Largest free placement" {
			largest = l[1]
		}
	}
	if largest != "4 CPUs, 8GiB" {
		t.Errorf("top info Largest free placement %q; want 4 CPUs, 8GiB", largest)
	}
	if kind != "shoal member: 2 nodes (2 healthy)" {
		t.Errorf("top info Kind line %q; want shoal member: 2 nodes (2 healthy)", kind)
	}
	var sinfo struct{ Labels []string }
	getJSON(t, siteA.url+"/v1.47/info", &sinfo)
	if len(sinfo.Labels) != 1 || sinfo.Labels[0] != "region=eu" {
		t.Errorf("siteA info Labels %v; want [region=eu]", sinfo.Labels)
	}
	var nodes []struct {
		Description struct{ Hostname string }
		Status      struct{ Message string }
	}
	getJSON(t, top.url+"/v1.47/nodes", &nodes)
	if len(nodes) != 1 || nodes[0].Description.Hostname != "siteA" || nodes[0].Status.Message != "shoal member: 2 nodes (2 healthy)" {
		t.Errorf("top nodes %+v: want siteA, a shoal member of 2 nodes", nodes)
	}
}

// The upper shoal places by the member's leaves: a container no single
// inner node can hold is refused above with the reason, not sent down;
// one that fits goes to the leaf that fits; constraints reach inner nodes
// by stacked name and by inner and member labels.
func TestFederationPlacesOnLeaves(t *testing.T) {
	e1, e2 := fedSims(t, "")
	siteA := startLevel(t, "siteA", map[string]string{"region": "eu"}, e1.Addr(), e2.Addr())
	f1, f2 := fedSims(t, "b-")
	siteB := startLevel(t, "siteB", map[string]string{"region": "us"}, f1.Addr(), f2.Addr())
	top := startLevel(t, "top", nil, siteA.addr(), siteB.addr())

	// 9 GiB fits no leaf (8 GiB at most), though each member has 10 GiB.
	code, msg := top.create(t, "huge", map[string]any{"Image": "busybox", "HostConfig": map[string]any{"Memory": 9 << 30}})
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "memory") {
		t.Errorf("create of 9 GiB: %d %s; want 503 naming memory", code, msg)
	}
	if n := running(e1) + running(e2) + running(f1) + running(f2); n != 0 {
		t.Errorf("after the refused create the engines hold %d containers; want 0", n)
	}

	cases := []struct {
		name string
		env  []string
		mem  int64
		want *enginesim.Engine
	}{
		{"by-path", []string{"constraint:node==siteA/e1"}, 0, e1},
		{"by-inner-label", []string{"constraint:region==us", "constraint:zone==z1"}, 0, f1},
		{"big", []string{"constraint:region==eu"}, 6 << 30, e2},
		{"member-name", []string{"constraint:node==siteB", "constraint:zone==z2"}, 0, f2},
	}
	for _, c := range cases {
		before := running(c.want)
		body := map[string]any{"Image": "busybox", "Env": c.env}
		if c.mem > 0 {
			body["HostConfig"] = map[string]any{"Memory": c.mem}
		}
		if code, msg := top.create(t, c.name, body); code != http.StatusCreated {
			t.Errorf("%s: create %d %s", c.name, code, msg)
			continue
		}
		if running(c.want) != before+1 {
			t.Errorf("%s: not on %s", c.name, c.want.Name())
		}
	}
	// The stacked name finds it from the top.
	var ins struct{ Name string }
	if code := getJSON(t, top.url+"/v1.47/containers/siteA/e1/by-path/json", &ins); code != 200 || ins.Name != "/by-path" {
		t.Errorf("inspect siteA/e1/by-path from the top: %d %q", code, ins.Name)
	}
	// A name is unique across the federation.
	if code, _ := top.create(t, "by-path", map[string]any{"Image": "busybox", "Env": []string{"constraint:node==siteB/b-e1"}}); code != http.StatusConflict {
		t.Errorf("second create of by-path at the top: %d; want 409", code)
	}
	if code, msg := top.create(t, "nowhere", map[string]any{"Image": "busybox", "Env": []string{"constraint:node==siteA/e9"}}); code != http.StatusServiceUnavailable || !strings.Contains(msg, "constraint") {
		t.Errorf("create on siteA/e9: %d %s; want 503 naming the constraint", code, msg)
	}
}

// Three levels: a constraint on the full stacked path reaches the engine
// two shoals down, and the name lists and resolves as top/mid/site/node.
func TestFederationThreeLevels(t *testing.T) {
	e1, e2 := fedSims(t, "")
	siteA := startLevel(t, "siteA", map[string]string{"zone-group": "a"}, e1.Addr(), e2.Addr())
	mid := startLevel(t, "mid", map[string]string{"region": "eu"}, siteA.addr())
	top := startLevel(t, "top", nil, mid.addr())

	var v engine.MemberView
	getJSON(t, mid.url+"/_shoal/nodes", &v)
	if len(v.Nodes) != 2 || v.Nodes[0].Name != "siteA/e1" || v.Nodes[0].Labels["region"] != "eu" || v.Nodes[0].Labels["zone-group"] != "a" {
		t.Fatalf("mid's leaves %+v: want siteA/e1, siteA/e2 with both shoals' labels", v.Nodes)
	}
	evResp, err := http.Get(top.url + `/v1.47/events?filters={"type":["container"]}`)
	if err != nil {
		t.Fatal(err)
	}
	defer evResp.Body.Close()
	if code, msg := top.create(t, "deep", map[string]any{"Image": "busybox", "Env": []string{"constraint:node==mid/siteA/e2"}}); code != http.StatusCreated {
		t.Fatalf("create deep: %d %s", code, msg)
	}
	var ev struct {
		Action string
		Actor  struct{ Attributes map[string]string }
	}
	if err := json.NewDecoder(evResp.Body).Decode(&ev); err != nil || ev.Actor.Attributes["node.name"] != "mid/siteA/e2" || ev.Actor.Attributes["name"] != "deep" {
		t.Errorf("top's event %+v (%v): want deep's, from node mid/siteA/e2", ev, err)
	}
	if running(e2) != 1 || running(e1) != 0 {
		t.Errorf("deep: e1 %d e2 %d containers; want it on e2", running(e1), running(e2))
	}
	var list []struct{ Names []string }
	getJSON(t, top.url+"/v1.47/containers/json?all=1", &list)
	if len(list) != 1 || len(list[0].Names) != 1 || list[0].Names[0] != "/mid/siteA/e2/deep" {
		t.Errorf("top's list %+v: want /mid/siteA/e2/deep", list)
	}
	if code, msg := top.create(t, "eu", map[string]any{"Image": "busybox", "Env": []string{"constraint:region==eu", "constraint:zone==z1"}}); code != http.StatusCreated || running(e1) != 1 {
		t.Errorf("create eu (region of mid, zone of e1): %d %s, e1 holds %d", code, msg, running(e1))
	}
}

// A member that refuses the leaf chosen above (the upper view was behind)
// has the container placed again elsewhere; when nothing else fits, the
// error says what the member said. Here siteA claims a leaf it does not
// have ("ghost", the roomiest), so its own placement refuses the pin.
func TestFederationRetriesARefusal(t *testing.T) {
	e1, e2 := fedSims(t, "")
	siteA := startLevel(t, "siteA", nil, e1.Addr(), e2.Addr())
	var pinned []string
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_shoal/nodes" {
			var v engine.MemberView
			getJSON(t, siteA.url+"/_shoal/nodes", &v)
			v.Nodes = append(v.Nodes, engine.MemberNode{Name: "ghost", ID: "ghost-id", State: "healthy", NCPU: 64, MemTotal: 64 << 30})
			_ = json.NewEncoder(w).Encode(v)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/containers/create") {
			b, _ := io.ReadAll(r.Body)
			var body struct{ Labels map[string]string }
			_ = json.Unmarshal(b, &body)
			pinned = append(pinned, body.Labels[scheduler.LabelConstraints])
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, siteA.url+r.URL.RequestURI(), r.Body)
		req.Header = r.Header
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.(http.Flusher).Flush() // an event stream says nothing at first
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				_, _ = w.Write(buf[:n])
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
			}
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(liar.Close)
	top := startLevel(t, "top", nil, strings.TrimPrefix(liar.URL, "http://"))

	// 7 GiB fits ghost (claimed) and e2 (real): ghost is tried first, as
	// the roomiest, refused, and the container lands on e2.
	code, msg := top.create(t, "moved", map[string]any{"Image": "busybox", "HostConfig": map[string]any{"Memory": 7 << 30}})
	if code != http.StatusCreated || running(e2) != 1 {
		t.Fatalf("create moved: %d %s, e2 holds %d; want it on e2", code, msg, running(e2))
	}
	if len(pinned) != 2 || pinned[0] != `["node==ghost-id"]` {
		t.Errorf("creates sent to siteA pinned %q; want ghost-id first, then another leaf", pinned)
	}
	// 9 GiB fits only ghost: refused, with siteA's reason.
	code, msg = top.create(t, "nowhere", map[string]any{"Image": "busybox", "HostConfig": map[string]any{"Memory": 9 << 30}})
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "member siteA refused the container") {
		t.Errorf("create of 9 GiB: %d %s; want 503 with siteA's refusal", code, msg)
	}
	if n := running(e1) + running(e2); n != 1 {
		t.Errorf("engines hold %d containers; want 1", n)
	}
}

// labelCluster gives engine addresses node labels that a test changes.
type labelCluster struct {
	manager.Cluster
	mu     sync.Mutex
	labels map[string]map[string]string
}

func (c *labelCluster) NodeLabels(addr string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.labels[addr]
}

func (c *labelCluster) set(addr, k, v string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.labels[addr] = map[string]string{k: v}
}

// The built-in cluster's node labels reach placement (node.labels.x), and
// a change of them is seen at the next create, though the node's cache
// did not change (the views are rebuilt on a label change, not copied at
// every call).
func TestPlacementFollowsNodeLabels(t *testing.T) {
	a, b := sim(t, enginesim.Options{Name: "a"}), sim(t, enginesim.Options{Name: "b"})
	lvl := startLevel(t, "c", nil, a.Addr(), b.Addr())
	cl := &labelCluster{labels: map[string]map[string]string{}}
	cl.set(a.Addr(), "disk", "ssd")
	mgr := manager.New(manager.Config{Pool: lvl.pool, Placer: scheduler.New(scheduler.Spread{}, scheduler.Options{}), Cluster: cl})
	srv := httptest.NewServer(dockerapi.New(mgr, "test", nil))
	t.Cleanup(srv.Close)
	c := &fedLevel{mgr: mgr, pool: lvl.pool, url: srv.URL}
	ssd := map[string]any{"Image": "busybox", "Env": []string{"constraint:node.labels.disk==ssd"}}
	if code, msg := c.create(t, "one", ssd); code != http.StatusCreated || running(a) != 1 {
		t.Fatalf("create on disk==ssd: %d %s, a holds %d", code, msg, running(a))
	}
	cl.set(a.Addr(), "disk", "hdd")
	cl.set(b.Addr(), "disk", "ssd")
	if code, msg := c.create(t, "two", ssd); code != http.StatusCreated || running(b) != 1 {
		t.Fatalf("create on disk==ssd after the labels moved: %d %s, b holds %d", code, msg, running(b))
	}
}
