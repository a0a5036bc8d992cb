package manager

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// TestEnsureEngineNetworkReplacesARemovedOnes: a node that kept the
// engine network of a removed cluster network of the same name (its
// label names another ID) has it replaced by the new network's, even
// though its cache lists the name; a network of the node's own of that
// name is refused.
func TestEnsureEngineNetworkReplacesARemovedOnes(t *testing.T) {
	var mu sync.Mutex
	label := "oldid0000000000000000000a" // the engine network's cluster network
	var deleted, created int
	pool, e := networksEngine(t, func(w http.ResponseWriter, r *http.Request, path string) bool {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodGet && path == "/networks":
			w.Write([]byte(`[{"Name":"appnet","Id":"enginenetid"}]`))
		case r.Method == http.MethodGet && path == "/networks/appnet":
			if label == "" {
				w.Write([]byte(`{"Name":"appnet","Id":"enginenetid","Labels":{}}`))
				break
			}
			w.Write([]byte(`{"Name":"appnet","Id":"enginenetid","Labels":{"` + overlay.LabelNetwork + `":"` + label + `"}}`))
		case r.Method == http.MethodDelete && path == "/networks/enginenetid":
			deleted++
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodPost && path == "/networks/create":
			created++
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"Id":"newnetid","Warning":""}`))
		default:
			return false
		}
		return true
	})
	ctx := t.Context()
	waitUntil(t, "the cache lists appnet", func() bool {
		names, _ := e.NetworksVolumes()
		return len(names) > 0
	})
	st := storetest.Open(t)
	nw := store.Network{ID: "newid0000000000000000000a", Name: "appnet", Subnet: "10.0.1.0/24", VNI: 4097, Created: time.Now(), Slots: map[string]int{}}
	if err := store.NewNetworks(st).Create(ctx, nw); err != nil {
		t.Fatal(err)
	}
	m := New(Config{Cluster: storeCluster{st: st}, Pool: pool})
	if _, err := m.ensureEngineNetwork(ctx, e, nw); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if deleted != 1 || created != 1 {
		t.Errorf("the removed network's engine network: %d deleted, %d made; want it replaced", deleted, created)
	}
	label = "" // the node's own network of that name
	mu.Unlock()
	if _, err := m.ensureEngineNetwork(ctx, e, nw); err == nil || !strings.Contains(err.Error(), "has a network appnet of its own") {
		t.Errorf("a stranger of the same name: %v", err)
	}
}

// TestEnsureEngineNetworkOnceAtATime: tasks and docker runs joining a
// cluster network on one node at once make its engine network once. A
// dockerd answers a create racing another of the same network with "Pool
// overlaps" (403), not a conflict (CI saw TestVIP's docker run fail so).
func TestEnsureEngineNetworkOnceAtATime(t *testing.T) {
	var mu sync.Mutex
	var creating, made bool
	creates := 0
	pool, e := networksEngine(t, func(w http.ResponseWriter, r *http.Request, path string) bool {
		switch {
		case r.Method == http.MethodGet && path == "/networks/appnet":
			mu.Lock()
			defer mu.Unlock()
			if !made {
				w.WriteHeader(http.StatusNotFound)
				w.Write([]byte(`{"message":"network appnet not found"}`))
				break
			}
			w.Write([]byte(`{"Name":"appnet","Id":"enginenetid","Labels":{"` + overlay.LabelNetwork + `":"newid0000000000000000000a"}}`))
		case r.Method == http.MethodPost && path == "/networks/create":
			mu.Lock()
			creates++
			switch {
			case made:
				mu.Unlock()
				w.WriteHeader(http.StatusConflict)
				w.Write([]byte(`{"message":"network with name appnet already exists"}`))
				return true
			case creating:
				mu.Unlock()
				w.WriteHeader(http.StatusForbidden)
				w.Write([]byte(`{"message":"Pool overlaps with other one on this address space"}`))
				return true
			}
			creating = true
			mu.Unlock()
			time.Sleep(100 * time.Millisecond) // the engine allocating the pool
			mu.Lock()
			creating, made = false, true
			mu.Unlock()
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"Id":"enginenetid","Warning":""}`))
		default:
			return false
		}
		return true
	})
	ctx := t.Context()
	st := storetest.Open(t)
	nw := store.Network{ID: "newid0000000000000000000a", Name: "appnet", Subnet: "10.0.1.0/24", VNI: 4097, Created: time.Now(), Slots: map[string]int{}}
	if err := store.NewNetworks(st).Create(ctx, nw); err != nil {
		t.Fatal(err)
	}
	m := New(Config{Cluster: storeCluster{st: st}, Pool: pool})
	const joiners = 6
	errs := make(chan error, joiners)
	for range joiners {
		go func() {
			_, err := m.ensureEngineNetwork(ctx, e, nw)
			errs <- err
		}()
	}
	for range joiners {
		if err := <-errs; err != nil {
			t.Errorf("a joiner: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if creates != 1 {
		t.Errorf("%d creates of the engine network, want 1", creates)
	}
}

// networksEngine is a healthy pool engine whose /networks calls nets
// answers (paths without the version prefix) and the rest a simulated
// engine, with the pool that holds it.
func networksEngine(t *testing.T, nets func(w http.ResponseWriter, r *http.Request, path string) bool) (*engine.Pool, *engine.Engine) {
	t.Helper()
	sim, err := enginesim.Start(enginesim.Options{Name: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if i := strings.Index(path, "/networks"); i > 0 {
			path = path[i:]
		}
		if !strings.HasPrefix(path, "/networks") || !nets(w, r, path) {
			sim.ServeHTTP(w, r) // the event stream is long: not under the handler's locks
		}
	}))
	t.Cleanup(srv.Close)
	pool := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond, FailureRetry: 1, Timeout: 2 * time.Second}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pool.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	pool.Update([]string{srv.Listener.Addr().String()})
	waitUntil(t, "the engine is healthy", func() bool { return len(pool.Healthy()) == 1 })
	return pool, pool.Healthy()[0]
}
