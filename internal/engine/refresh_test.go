package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A full refresh whose inspect of a new container fails keeps the record
// a create's own refresh cached meanwhile, even one that started before
// the full refresh: dropping it would free the container's reservation
// while it exists (issue 10 B).
func TestFullRefreshKeepsContainerCachedMeanwhile(t *testing.T) {
	var inspects atomic.Int32
	release := make(chan struct{})
	var e *Engine
	e = fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.41/containers/json":
			_, _ = w.Write([]byte(`[{"Id":"c1","Names":["/web"],"State":"created"}]`))
		case "/v1.41/containers/c1/json":
			if inspects.Add(1) == 1 { // the create's refresh: answers once the full refresh asked
				<-release
				_, _ = w.Write([]byte(`{"Id":"c1","State":{"Status":"created"},"Config":{},"HostConfig":{"Memory":1024}}`))
				return
			}
			close(release) // the full refresh's: fails, once c1 is cached
			for deadline := time.Now().Add(5 * time.Second); e.Container("c1") == nil && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"message":"busy"}`))
		}
	})
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- e.RefreshContainer(ctx, "c1") }()
	for inspects.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := e.refreshContainers(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c := e.Container("c1"); c == nil || c.Memory != 1024 {
		t.Fatalf("the full refresh dropped the container the create's refresh cached: %+v", c)
	}
}

// A full refresh reads the cache while single refreshes (events, creates)
// write it: under -race, an unlocked read of the live map shows.
func TestFullRefreshWhileSingleRefreshes(t *testing.T) {
	// Each full list shows the containers in a new state, so that every
	// refresh inspects each one, reading the cache in between.
	var lists atomic.Int32
	list := func() string {
		state := []string{"running", "paused"}[lists.Add(1)%2]
		var b strings.Builder
		b.WriteString("[")
		for i := range 50 {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"Id":"c%d","Names":["/n%d"],"State":"%s"}`, i, i, state)
		}
		b.WriteString("]")
		return b.String()
	}
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1.41/containers/json" {
			if f := r.URL.Query().Get("filters"); f != "" {
				var q struct {
					ID []string `json:"id"`
				}
				_ = json.Unmarshal([]byte(f), &q)
				fmt.Fprintf(w, `[{"Id":"%s","Names":["/x"],"State":"running"}]`, q.ID[0])
				return
			}
			_, _ = w.Write([]byte(list()))
			return
		}
		_, _ = w.Write([]byte(`{"State":{"Status":"running"},"Config":{},"HostConfig":{}}`))
	})
	ctx := context.Background()
	if err := e.refreshContainers(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = e.RefreshContainer(ctx, fmt.Sprintf("new%d", i))
		}
	}()
	for range 5 {
		if err := e.refreshContainers(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-done
	if len(e.Containers()) < 50 {
		t.Fatalf("%d containers cached, want at least the 50 listed", len(e.Containers()))
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
