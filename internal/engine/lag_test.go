package engine

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// lagEngine is a fake engine listing the containers of list (IDs) as
// running, inspecting each through inspect (nil: answered), its events
// followed as a session's would be.
func lagEngine(t *testing.T, list func() []string, inspect func(id string, w http.ResponseWriter) bool) *Engine {
	t.Helper()
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1.41/containers/json" {
			ids := list()
			if f := r.URL.Query().Get("filters"); f != "" {
				var filters map[string][]string
				_ = json.Unmarshal([]byte(f), &filters)
				var only []string
				for _, id := range ids {
					for _, want := range filters["id"] {
						if id == want {
							only = append(only, id)
						}
					}
				}
				ids = only
			}
			var items []string
			for _, id := range ids {
				items = append(items, `{"Id":"`+id+`","Names":["/`+id+`"],"State":"running"}`)
			}
			_, _ = w.Write([]byte("[" + strings.Join(items, ",") + "]"))
			return
		}
		id, ok := strings.CutPrefix(strings.TrimSuffix(r.URL.Path, "/json"), "/v1.41/containers/")
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if inspect != nil && inspect(id, w) {
			return
		}
		_, _ = w.Write([]byte(`{"Id":"` + id + `","State":{"Status":"running"}}`))
	})
	e.following.Store(true)
	return e
}

func fixedList(ids ...string) func() []string {
	return func() []string { return ids }
}

// Periodic reloads that drop nothing do not move Lag's count (at 1,000
// engines ~17 begin each second: each made a lookup's miss ask its
// engine); a container's refresh or drop does, and so does a reload that
// drops a container the cache had.
func TestLagCountsEventDrivenChangesNotReloads(t *testing.T) {
	var ids atomic.Value
	ids.Store([]string{"c1", "c2"})
	e := lagEngine(t, func() []string { return ids.Load().([]string) }, nil)
	ctx := context.Background()
	if err := e.refreshContainers(ctx); err != nil {
		t.Fatal(err)
	}
	start := e.Lag()
	if start.Behind {
		t.Fatalf("a followed engine just loaded is behind: %+v", start)
	}
	for range 3 {
		if err := e.refreshContainers(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if l := e.Lag(); l != start {
		t.Fatalf("after 3 reloads that changed nothing: %+v, want %+v", l, start)
	}
	if err := e.RefreshContainer(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if l := e.Lag(); l.Changes != start.Changes+1 || l.Behind {
		t.Fatalf("after a container's refresh: %+v, want the count moved by 1", l)
	}
	e.ForgetContainer("c2") // as after a destroy event
	if l := e.Lag(); l.Changes != start.Changes+2 {
		t.Fatalf("after a container's drop: %+v, want the count moved by 2", l)
	}
	if err := e.refreshContainers(ctx); err != nil { // caches c2 again
		t.Fatal(err)
	}
	ids.Store([]string{"c1"})
	if err := e.refreshContainers(ctx); err != nil { // drops c2
		t.Fatal(err)
	}
	if l := e.Lag(); l.Changes != start.Changes+3 {
		t.Fatalf("after a reload that dropped c2: %+v, want the count moved by 3", l)
	}
}

// The cache is behind while events read wait to be applied, while a
// container's refresh runs, after one failed (until a reload that began
// later), and while the engine's events are not followed.
func TestLagBehind(t *testing.T) {
	hold := make(chan struct{})
	arrived := make(chan struct{}, 1)
	var ids atomic.Value
	ids.Store([]string{"c1", "c9", "slow"})
	var failing atomic.Bool
	failing.Store(true)
	e := lagEngine(t, func() []string { return ids.Load().([]string) }, func(id string, w http.ResponseWriter) bool {
		switch {
		case id == "c8" || id == "c9" && failing.Load():
			w.WriteHeader(http.StatusInternalServerError)
			return true
		case id == "slow":
			select {
			case arrived <- struct{}{}:
			default:
			}
			<-hold
		}
		return false
	})
	ctx := context.Background()
	behind := func(want bool, when string) {
		t.Helper()
		if l := e.Lag(); l.Behind != want {
			t.Fatalf("%s: %+v, want Behind %v", when, l, want)
		}
	}
	behind(false, "at first")

	q := new(atomic.Int64)
	e.queued.Store(q)
	q.Add(1) // as readEvents does
	behind(true, "an event read, not applied")
	ev := json.RawMessage(`{"Type":"container","Action":"kill","Actor":{"ID":"c1"}}`)
	if _, err := e.applyEvents(ctx, ev, nil); err != nil {
		t.Fatal(err)
	}
	behind(false, "once it is applied")

	done := make(chan error, 1)
	go func() { done <- e.RefreshContainer(ctx, "slow") }()
	<-arrived
	behind(true, "a refresh under way")
	close(hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	behind(false, "once it ended")

	if err := e.RefreshContainer(ctx, "c9"); err == nil {
		t.Fatal("c9's refresh did not fail")
	}
	behind(true, "after a refresh failed")
	failing.Store(false)
	if err := e.refreshContainers(ctx); err != nil {
		t.Fatal(err)
	}
	behind(false, "after a reload that began later")
	if e.Container("c9") == nil {
		t.Fatal("the reload did not cache c9")
	}

	ids.Store([]string{"c1", "c9", "slow", "c8"})
	if err := e.refreshContainers(ctx); err != nil {
		t.Fatal(err)
	}
	behind(true, "after a reload that could not inspect c8, listed and not cached")
	if e.Container("c8") != nil {
		t.Fatal("c8 cached without an inspect")
	}
	ids.Store([]string{"c1", "c9", "slow"})
	if err := e.refreshContainers(ctx); err != nil {
		t.Fatal(err)
	}
	behind(false, "after a reload that lists no container it cannot inspect")

	e.following.Store(false)
	behind(true, "its events not followed")
}

// A reload whose inspect of a listed container fails keeps it if a
// refresh begun before the reload (so an older ticket) cached it
// meanwhile: dropping it would hide a container the engine has, which
// its create event added, until the next reload.
func TestReloadKeepsAListedContainerARefreshCached(t *testing.T) {
	var inspects atomic.Int32
	refreshHeld, refreshGo := make(chan struct{}), make(chan struct{})
	reloadFailed := make(chan struct{})
	otherHeld, otherGo := make(chan struct{}), make(chan struct{})
	e := lagEngine(t, fixedList("new", "other"), func(id string, w http.ResponseWriter) bool {
		switch id {
		case "new":
			switch inspects.Add(1) {
			case 1: // the create's refresh
				close(refreshHeld)
				<-refreshGo
			case 2: // the reload's
				w.WriteHeader(http.StatusInternalServerError)
				close(reloadFailed)
				return true
			}
		case "other": // holds the reload until the refresh ended
			close(otherHeld)
			<-otherGo
		}
		return false
	})
	ctx := context.Background()
	refreshed := make(chan error, 1)
	go func() { refreshed <- e.RefreshContainer(ctx, "new") }()
	<-refreshHeld
	reloaded := make(chan error, 1)
	go func() { reloaded <- e.refreshContainers(ctx) }()
	<-reloadFailed
	<-otherHeld
	time.Sleep(20 * time.Millisecond) // for the reload to take in its failed inspect
	close(refreshGo)
	if err := <-refreshed; err != nil {
		t.Fatal(err)
	}
	if e.Container("new") == nil {
		t.Fatal("the refresh did not cache new")
	}
	close(otherGo)
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	if e.Container("new") == nil {
		t.Fatal("the reload dropped new, which the engine has and a refresh cached")
	}
	if l := e.Lag(); l.Behind {
		t.Errorf("after the reload: %+v, want not behind", l)
	}
}
