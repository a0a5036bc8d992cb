package manager

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
)

// TestNodeDigestFollowsInfoNotItsReloads: the orchestrator's node digest
// changes when an engine's labels change, and not when the engine's /info
// is merely reloaded unchanged (the cached per-engine part is reused).
func TestNodeDigestFollowsInfoNotItsReloads(t *testing.T) {
	sim, err := enginesim.Start(enginesim.Options{Name: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	var mu sync.Mutex
	labels := []string{"zone=a"}
	// The engine's /info with the labels of the moment.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/info") {
			sim.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, r)
		var info map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &info); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		mu.Lock()
		info["Labels"] = labels
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(info)
	}))
	t.Cleanup(srv.Close)

	pool := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond, Timeout: 2 * time.Second}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = pool.Run(ctx) }()
	pool.Update([]string{strings.TrimPrefix(srv.URL, "http://")})
	deadline := time.Now().Add(5 * time.Second)
	for len(pool.Healthy()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the engine is not healthy")
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := New(Config{Pool: pool})
	d := newNodeDigester(m.TaskRuntime().(taskRuntime))
	e := pool.Engines()[0]

	first := d.digest(ctx)
	before := e.Info()
	if err := e.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if e.Info() == before {
		t.Fatal("the resync did not reload /info")
	}
	if got := d.digest(ctx); got != first {
		t.Errorf("an unchanged /info reloaded changed the digest")
	}
	mu.Lock()
	labels = []string{"zone=b"}
	mu.Unlock()
	if err := e.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := d.digest(ctx); got == first {
		t.Errorf("a label change left the digest as it was")
	}
}
