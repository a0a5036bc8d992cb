package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSwarm is a swarm-mode manager engine's /info, /nodes, /nodes/{id},
// /nodes/{id}/update and /events, enough for the backend.
type fakeSwarm struct {
	mu     sync.Mutex
	self   string // node ID of this engine
	nodes  []map[string]any
	events chan struct{}
	srv    *httptest.Server
}

func newFakeSwarm(t *testing.T, self string) *fakeSwarm {
	f := &fakeSwarm{self: self, events: make(chan struct{}, 16)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSwarm) add(id, addr, state, avail string, leader bool, manager bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[string]any{
		"ID": id, "Version": map[string]any{"Index": 1},
		"Spec":   map[string]any{"Role": "worker", "Availability": avail, "Labels": map[string]any{}, "Name": ""},
		"Status": map[string]any{"State": state, "Addr": addr},
	}
	if manager {
		n["Spec"].(map[string]any)["Role"] = "manager"
		n["ManagerStatus"] = map[string]any{"Leader": leader, "Reachability": "reachable", "Addr": addr + ":2377"}
	}
	f.nodes = append(f.nodes, n)
}

func (f *fakeSwarm) node(id string) map[string]any {
	for _, n := range f.nodes {
		if n["ID"] == id {
			return n
		}
	}
	return nil
}

func (f *fakeSwarm) set(id string, fn func(n map[string]any)) {
	f.mu.Lock()
	fn(f.node(id))
	f.mu.Unlock()
	f.events <- struct{}{}
}

func (f *fakeSwarm) label(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, _ := f.node(id)["Spec"].(map[string]any)["Labels"].(map[string]any)[SwarmManagerLabel].(string)
	return v
}

func (f *fakeSwarm) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch p := r.URL.Path; {
	case p == "/info":
		json.NewEncoder(w).Encode(map[string]any{"Swarm": map[string]any{"NodeID": f.self, "LocalNodeState": "active"}})
	case p == "/nodes":
		out := []map[string]any{}
		for _, n := range f.nodes {
			if strings.Contains(r.URL.Query().Get("filters"), "manager") && n["ManagerStatus"] == nil {
				continue
			}
			out = append(out, n)
		}
		json.NewEncoder(w).Encode(out)
	case p == "/events":
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		f.mu.Unlock()
		defer f.mu.Lock()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-f.events:
				fmt.Fprintln(w, `{"Type":"node","Action":"update"}`)
				w.(http.Flusher).Flush()
			}
		}
	case strings.HasPrefix(p, "/nodes/") && strings.HasSuffix(p, "/update") && r.Method == "POST":
		n := f.node(strings.TrimSuffix(strings.TrimPrefix(p, "/nodes/"), "/update"))
		if fmt.Sprint(n["Version"].(map[string]any)["Index"]) != r.URL.Query().Get("version") {
			w.WriteHeader(500)
			fmt.Fprint(w, `{"message":"update out of sequence"}`)
			return
		}
		var spec map[string]any
		json.NewDecoder(r.Body).Decode(&spec)
		n["Spec"] = spec
		n["Version"].(map[string]any)["Index"] = n["Version"].(map[string]any)["Index"].(int) + 1
	case strings.HasPrefix(p, "/nodes/"):
		n := f.node(strings.TrimPrefix(p, "/nodes/"))
		if n == nil {
			w.WriteHeader(404)
			return
		}
		json.NewEncoder(w).Encode(n)
	default:
		w.WriteHeader(404)
	}
}

func TestSwarmOpen(t *testing.T) {
	for uri, want := range map[string]string{
		"swarm://unix:///var/run/docker.sock": "http://docker",
		"swarm://tcp://10.0.0.1:2375":         "http://10.0.0.1:2375",
		"swarm://10.0.0.1:2376":               "http://10.0.0.1:2376",
		"swarm://mgr":                         "http://mgr:2375",
	} {
		b, err := Open(uri, nil)
		if err != nil {
			t.Fatalf("%s: %v", uri, err)
		}
		s := b.(*Swarm)
		c, err := s.client(s.Endpoint)
		if err != nil || c.base != want {
			t.Errorf("%s: base %v %v, want %s", uri, c, err, want)
		}
	}
	if _, err := Open("swarm://h", map[string]string{"swarm.port": "x"}); err == nil {
		t.Error("swarm.port=x: want error")
	}
	if _, err := Open("swarm://h", map[string]string{"kv.certfile": "x"}); err == nil {
		t.Error("kv.certfile on swarm://: want error")
	}
	if b, err := Open("swarm://h", map[string]string{"swarm.port": "2376"}); err != nil || b.(*Swarm).Port != "2376" {
		t.Errorf("swarm.port: %v %v", b, err)
	}
}

func TestSwarmWatchNodes(t *testing.T) {
	f := newFakeSwarm(t, "a")
	f.add("a", "10.0.0.1", "ready", "active", true, true)
	f.add("b", "10.0.0.2", "ready", "pause", false, false)
	f.add("c", "10.0.0.3", "down", "active", false, false)
	f.add("d", "0.0.0.0", "ready", "active", false, true) // manager with no Status.Addr: ManagerStatus.Addr
	f.node("d")["ManagerStatus"].(map[string]any)["Addr"] = "10.0.0.4:2377"
	s := &Swarm{Endpoint: f.srv.URL, Port: "2375", Resync: time.Hour}
	got := make(chan []Node, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.WatchNodes(ctx, func(n []Node) { got <- n })
	wait := func(want []Node) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		var last []Node
		for {
			select {
			case n := <-got:
				if reflect.DeepEqual(n, want) {
					return
				}
				last = n
			case <-deadline:
				t.Fatalf("nodes %v, want %v", last, want)
			}
		}
	}
	wait([]Node{{"10.0.0.1:2375", "active"}, {"10.0.0.2:2375", "pause"}, {"10.0.0.3:2375", "drain"}, {"10.0.0.4:2375", "active"}})
	// Node events bring changes at once (Resync is an hour).
	f.set("b", func(n map[string]any) { n["Spec"].(map[string]any)["Availability"] = "drain" })
	wait([]Node{{"10.0.0.1:2375", "active"}, {"10.0.0.2:2375", "drain"}, {"10.0.0.3:2375", "drain"}, {"10.0.0.4:2375", "active"}})
	f.set("c", func(n map[string]any) { n["Status"].(map[string]any)["State"] = "ready" })
	wait([]Node{{"10.0.0.1:2375", "active"}, {"10.0.0.2:2375", "drain"}, {"10.0.0.3:2375", "active"}, {"10.0.0.4:2375", "active"}})
	f.mu.Lock()
	f.nodes = f.nodes[:2]
	f.mu.Unlock()
	f.events <- struct{}{}
	wait([]Node{{"10.0.0.1:2375", "active"}, {"10.0.0.2:2375", "drain"}})
}

func TestSwarmElect(t *testing.T) {
	// Two shoals, each on a manager engine of the same swarm (one fake that
	// answers /info as a or b depending on the port used).
	fa := newFakeSwarm(t, "a")
	fa.add("a", "10.0.0.1", "ready", "active", true, true)
	fa.add("b", "10.0.0.2", "ready", "active", false, true)
	fb := &fakeSwarm{self: "b", nodes: fa.nodes, events: make(chan struct{}, 16)}
	fb.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/info" {
			json.NewEncoder(w).Encode(map[string]any{"Swarm": map[string]any{"NodeID": "b"}})
			return
		}
		fa.serve(w, r)
	}))
	defer fb.srv.Close()

	var dmu sync.Mutex
	dead := map[string]bool{}
	probe := func(ctx context.Context, addr string) error {
		dmu.Lock()
		defer dmu.Unlock()
		if dead[addr] {
			return errors.New("dead")
		}
		return nil
	}
	type view struct {
		mu sync.Mutex
		p  string
	}
	elect := func(ep, me string) (*view, context.CancelFunc, chan struct{}) {
		v := &view{}
		s := &Swarm{Endpoint: ep, Poll: 20 * time.Millisecond, TTL: 200 * time.Millisecond, Probe: probe}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Elect(ctx, me, func(a string) { v.mu.Lock(); v.p = a; v.mu.Unlock() })
		}()
		return v, cancel, done
	}
	want := func(v *view, p string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			v.mu.Lock()
			got := v.p
			v.mu.Unlock()
			if got == p {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("primary %q, want %q", got, p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	va, stopA, doneA := elect(fa.srv.URL, "shoal-a:1")
	vb, stopB, doneB := elect(fb.srv.URL, "shoal-b:1")
	defer func() { stopA(); stopB(); <-doneA; <-doneB }()
	want(va, "shoal-a:1")
	want(vb, "shoal-a:1")
	if fa.label("a") != "shoal-a:1" || fa.label("b") != "shoal-b:1" {
		t.Fatalf("labels a=%q b=%q", fa.label("a"), fa.label("b"))
	}
	// Leadership moves to b.
	fa.mu.Lock()
	fa.node("a")["ManagerStatus"].(map[string]any)["Leader"] = false
	fa.node("b")["ManagerStatus"].(map[string]any)["Leader"] = true
	fa.mu.Unlock()
	want(va, "shoal-b:1")
	want(vb, "shoal-b:1")
	// The shoal on the leader stops answering: after TTL the other takes over.
	dmu.Lock()
	dead["shoal-b:1"] = true
	dmu.Unlock()
	want(va, "shoal-a:1")
	dmu.Lock()
	dead["shoal-b:1"] = false
	dmu.Unlock()
	want(va, "shoal-b:1")
	// A shoal that stops removes its label: hand-over at once.
	stopB()
	<-doneB
	if l := fa.label("b"); l != "" {
		t.Fatalf("label of b after stop: %q", l)
	}
	want(va, "shoal-a:1")
}
