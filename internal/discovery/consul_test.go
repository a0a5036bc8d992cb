package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeConsul is the part of Consul's HTTP API the consul backend uses: KV
// with recurse, blocking queries and acquire, and sessions that delete
// their keys when destroyed. No real Consul server could be had for the
// tests; this checks the backend's use of the API as documented.
type fakeConsul struct {
	mu       sync.Mutex
	index    int
	changed  chan struct{}
	kv       map[string]consulKV
	sessions map[string]bool
	nextID   int
}

func newFakeConsul() *fakeConsul {
	return &fakeConsul{index: 1, changed: make(chan struct{}), kv: map[string]consulKV{}, sessions: map[string]bool{}}
}

func (f *fakeConsul) bump() {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeConsul) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v1/kv/"):
		key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
		if idx := q.Get("index"); idx != "" && idx == strconv.Itoa(f.index) {
			ch := f.changed
			f.mu.Unlock()
			select {
			case <-ch:
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
			f.mu.Lock()
		}
		var out []consulKV
		for k, v := range f.kv {
			if k == key || (q.Has("recurse") && strings.HasPrefix(k, key)) {
				out = append(out, v)
			}
		}
		w.Header().Set("X-Consul-Index", strconv.Itoa(f.index))
		if len(out) == 0 {
			w.WriteHeader(404)
			return
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
		json.NewEncoder(w).Encode(out)
	case r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/v1/kv/"):
		key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
		b, _ := io.ReadAll(r.Body)
		sid := q.Get("acquire")
		if cur, ok := f.kv[key]; ok && cur.Session != "" && cur.Session != sid || !f.sessions[sid] {
			fmt.Fprint(w, "false")
			return
		}
		f.kv[key] = consulKV{Key: key, Value: b, Session: sid}
		f.bump()
		fmt.Fprint(w, "true")
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/v1/kv/"):
		delete(f.kv, strings.TrimPrefix(r.URL.Path, "/v1/kv/"))
		f.bump()
	case r.URL.Path == "/v1/session/create":
		f.nextID++
		id := fmt.Sprintf("s%d", f.nextID)
		f.sessions[id] = true
		fmt.Fprintf(w, `{"ID":%q}`, id)
	case strings.HasPrefix(r.URL.Path, "/v1/session/renew/"):
		if !f.sessions[strings.TrimPrefix(r.URL.Path, "/v1/session/renew/")] {
			w.WriteHeader(404)
		}
	case strings.HasPrefix(r.URL.Path, "/v1/session/destroy/"):
		f.destroy(strings.TrimPrefix(r.URL.Path, "/v1/session/destroy/"))
	default:
		w.WriteHeader(400)
	}
}

// destroy ends a session as its TTL would: its keys go (behavior delete).
func (f *fakeConsul) destroy(id string) {
	delete(f.sessions, id)
	for k, v := range f.kv {
		if v.Session == id {
			delete(f.kv, k)
		}
	}
	f.bump()
}

func TestConsulFake(t *testing.T) {
	fc := newFakeConsul()
	srv := httptest.NewServer(fc)
	defer srv.Close()
	uri := "consul://" + strings.TrimPrefix(srv.URL, "http://") + "/p"
	b, err := Open(uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	kv := b.(*KV)
	defer kv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range []string{"10.0.0.2:2375", "10.0.0.1:2375"} {
		if err := kv.Register(ctx, a, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Register(ctx, "10.0.0.1:2375", 10*time.Second); err != nil { // a heartbeat
		t.Fatal(err)
	}
	if l, err := kv.List(ctx); err != nil || !reflect.DeepEqual(l, []string{"10.0.0.1:2375", "10.0.0.2:2375"}) {
		t.Fatalf("list %v %v", l, err)
	}
	updates := make(chan []string, 10)
	go kv.Watch(ctx, func(l []string) { updates <- l })
	want := func(exp ...string) {
		t.Helper()
		select {
		case l := <-updates:
			if len(l) != len(exp) || (len(exp) > 0 && !reflect.DeepEqual(l, exp)) {
				t.Fatalf("watch: %v, want %v", l, exp)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("watch: no update, want %v", exp)
		}
	}
	want("10.0.0.1:2375", "10.0.0.2:2375")
	if err := kv.Deregister(ctx, "10.0.0.2:2375"); err != nil {
		t.Fatal(err)
	}
	want("10.0.0.1:2375")
	// The session lapses (as when join dies): its entry goes.
	fc.mu.Lock()
	fc.destroy(fc.kv["p/docker/swarm/nodes/10.0.0.1:2375"].Session)
	fc.mu.Unlock()
	want()

	// Election: the first candidate leads; when it steps down the other does.
	leaders := make(chan string, 10)
	c1, stop1 := context.WithCancel(ctx)
	done1 := make(chan struct{})
	go func() { kv.Elect(c1, "m1:1", func(l string) { leaders <- "1 sees " + l }); close(done1) }()
	if l := <-leaders; l != "1 sees m1:1" {
		t.Fatalf("first leader: %s", l)
	}
	go kv.Elect(ctx, "m2:1", func(l string) { leaders <- "2 sees " + l })
	if l := <-leaders; l != "2 sees m1:1" {
		t.Fatalf("second candidate: %s", l)
	}
	stop1()
	<-done1
	if l := <-leaders; l != "2 sees m2:1" {
		t.Fatalf("after the leader stepped down: %s", l)
	}
}
