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

// editedInfoEngine is a pool of one simulated engine whose /info passes
// through edit (under a lock: set changes what the next /info says),
// healthy when it returns.
type editedInfoEngine struct {
	pool *engine.Pool
	mu   sync.Mutex
	edit func(info map[string]any)
}

func (e *editedInfoEngine) set(edit func(info map[string]any)) {
	e.mu.Lock()
	e.edit = edit
	e.mu.Unlock()
}

func newEditedInfoEngine(t *testing.T, edit func(info map[string]any)) *editedInfoEngine {
	t.Helper()
	sim, err := enginesim.Start(enginesim.Options{Name: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	e := &editedInfoEngine{edit: edit}
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
		e.mu.Lock()
		e.edit(info)
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(info)
	}))
	t.Cleanup(srv.Close)
	e.pool = engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond, Timeout: 2 * time.Second}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.pool.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.pool.Update([]string{strings.TrimPrefix(srv.URL, "http://")})
	until(t, "the engine healthy", func() bool { return len(e.pool.Healthy()) == 1 })
	return e
}
