package manager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// busyEngine is a simulated engine behind a proxy that answers every
// inspect of a container after its second with a 500, as a loaded dockerd
// does when an inspect waits on a container busy starting and the caller
// gives up: the create's own refresh and its create event's succeed, the
// refreshes after its start fail.
func busyEngine(t *testing.T, name string) (*enginesim.Engine, string) {
	t.Helper()
	sim, err := enginesim.Start(enginesim.Options{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	target, _ := url.Parse("http://" + sim.Addr())
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // the event stream
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, rest, ok := strings.Cut(r.URL.Path, "/containers/")
		if id, isInspect := strings.CutSuffix(rest, "/json"); ok && isInspect && r.Method == http.MethodGet && !strings.Contains(id, "/") {
			mu.Lock()
			seen[id]++
			n := seen[id]
			mu.Unlock()
			if n > 2 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(`{"message":"engine busy"}` + "\n"))
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return sim, strings.TrimPrefix(srv.URL, "http://")
}

// TestParallelReservationsSurviveFailedRefreshes: many parallel creates
// reserving memory never place more than the nodes hold, even when the
// refreshes after each create fail (issue 10 B): a container the cache
// dropped on a failed refresh no longer held its reservation, and the next
// creates went to its node.
func TestParallelReservationsSurviveFailedRefreshes(t *testing.T) {
	const nodes, perNode, parallel, waves = 3, 12, 20, 5
	var addrs []string
	var sims []*enginesim.Engine
	for i := range nodes {
		sim, addr := busyEngine(t, fmt.Sprintf("busy%d", i+1))
		sims, addrs = append(sims, sim), append(addrs, addr)
	}
	pool := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond, ResyncInterval: 100 * time.Millisecond, Timeout: time.Second, FailureRetry: 3}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pool.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	pool.Update(addrs)
	waitUntil(t, "every engine is healthy", func() bool { return len(pool.Healthy()) == nodes })
	mgr := manager.New(manager.Config{Pool: pool, Placer: scheduler.New(scheduler.Spread{}, scheduler.Options{Overcommit: 0})})

	mem := int64(8<<30) / perNode // enginesim's 8 GiB, twelve to a node
	var mu sync.Mutex
	created, refused, failed := 0, 0, 0
	// Waves, so that later creates are placed after the refreshes that
	// followed the earlier ones' starts.
	for range waves {
		var wg sync.WaitGroup
		for range parallel {
			wg.Go(func() {
				body, _ := json.Marshal(map[string]any{"Image": "busybox", "Cmd": []string{"sleep", "300"}, "HostConfig": map[string]any{"Memory": mem}})
				req := backend.ContainerCreateRequest{Body: body}
				req.Config.Image = "busybox"
				req.Config.HostConfig = &backend.HostConfig{Memory: mem}
				resp, err := mgr.CreateContainer(context.Background(), req)
				if err == nil {
					startOnSim(t, sims, resp.ID)
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					created++
				case errdefs.IsUnavailable(err) && strings.Contains(err.Error(), "lack"):
					refused++
				case errdefs.IsUnavailable(err): // its own refresh failed: undone
					failed++
				default:
					t.Errorf("create: %v", err)
				}
			})
		}
		wg.Wait()
		time.Sleep(200 * time.Millisecond)
	}
	var per []int
	for _, sim := range sims {
		all, _ := sim.Count()
		per = append(per, all)
	}
	t.Logf("%d waves of %d parallel creates of %d MiB: %d created, %d refused, %d undone; per node %v", waves, parallel, mem>>20, created, refused, failed, per)
	for i, n := range per {
		if n > perNode {
			t.Errorf("node busy%d holds %d containers of %d MiB, capacity %d", i+1, n, mem>>20, perNode)
		}
	}
	if created == 0 || refused == 0 {
		t.Errorf("want some creates placed and some refused")
	}
}

// startOnSim starts the container on the simulated engine that holds it.
func startOnSim(t *testing.T, sims []*enginesim.Engine, id string) {
	for _, sim := range sims {
		if sim.StartContainer(id) == nil {
			return
		}
	}
	t.Errorf("no engine holds %s", id)
}
