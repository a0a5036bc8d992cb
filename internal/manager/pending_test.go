package manager_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// sim starts a simulated engine and closes it with the test.
func sim(t *testing.T, o enginesim.Options) *enginesim.Engine {
	t.Helper()
	e, err := enginesim.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// slowAtFirst serves e, but holds every request that arrives in the first
// d until d has passed: an engine shoal is still contacting (Pending).
// extra answers objects the simulated engine does not model: a GET of a
// path ending in one of its keys gets the JSON value.
func slowAtFirst(t *testing.T, e http.Handler, d time.Duration, extra ...map[string]string) string {
	t.Helper()
	until := time.Now().Add(d)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Until(until))
		for _, x := range extra {
			for suffix, body := range x {
				if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, suffix) {
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, body)
					return
				}
			}
		}
		e.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// silent accepts connections and never answers: an engine that is down
// in the worst way.
func silent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln.Addr().String()
}

// startManager runs a pool over addrs, a manager and its API, as
// `shoal manage` does, and returns the API's URL as soon as the pool
// holds every engine (before any has answered).
func startManager(t *testing.T, timeout time.Duration, addrs ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pool := engine.NewPool(engine.Options{Timeout: timeout, RefreshInterval: time.Second}, nil)
	pool.Update(addrs)
	done := make(chan struct{})
	go func() { defer close(done); pool.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for len(pool.Engines()) < len(addrs) {
		time.Sleep(time.Millisecond)
	}
	mgr := manager.New(manager.Config{Pool: pool, Placer: scheduler.New(scheduler.Spread{}, scheduler.Options{}), Strategy: "spread", Logger: slog.New(slog.DiscardHandler)})
	api := httptest.NewServer(dockerapi.New(mgr, "test", nil))
	t.Cleanup(api.Close)
	return api.URL
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// A manager that just started answers lists and info for every engine,
// waiting for those it is still contacting, not with what it has so far.
func TestListsWaitForPendingEngines(t *testing.T) {
	fast := sim(t, enginesim.Options{Name: "fast", Containers: 2, Stopped: 1})
	slow := sim(t, enginesim.Options{Name: "slow", Containers: 3, Images: 2})
	want, _ := fast.Count()
	n, _ := slow.Count()
	want += n

	t.Run("containers", func(t *testing.T) {
		url := startManager(t, 5*time.Second, fast.Addr(), slowAtFirst(t, slow, 500*time.Millisecond))
		var list []struct {
			ID string `json:"Id"`
		}
		if code := getJSON(t, url+"/v1.41/containers/json?all=1", &list); code != 200 || len(list) != want {
			t.Errorf("GET /containers/json?all=1: %d, %d containers; want %d", code, len(list), want)
		}
	})
	t.Run("info", func(t *testing.T) {
		url := startManager(t, 5*time.Second, fast.Addr(), slowAtFirst(t, slow, 500*time.Millisecond))
		var info struct{ Containers int }
		if code := getJSON(t, url+"/v1.41/info", &info); code != 200 || info.Containers != want {
			t.Errorf("GET /info: %d, Containers %d; want %d", code, info.Containers, want)
		}
	})
	t.Run("images", func(t *testing.T) {
		url := startManager(t, 5*time.Second, fast.Addr(), slowAtFirst(t, slow, 500*time.Millisecond))
		var list []struct {
			ID string `json:"Id"`
		}
		if code := getJSON(t, url+"/v1.41/images/json", &list); code != 200 || len(list) != 2 {
			t.Errorf("GET /images/json: %d, %d images; want 2", code, len(list))
		}
	})
	t.Run("volume and image lookups", func(t *testing.T) {
		url := startManager(t, 5*time.Second, fast.Addr(), slowAtFirst(t, slow, 500*time.Millisecond, map[string]string{
			"/volumes/slowvol":            `{"Name":"slowvol","Driver":"local"}`,
			"/images/slowimg:latest/json": `{"Id":"sha256:5104","RepoTags":["slowimg:latest"]}`,
		}))
		var v struct{ Name string }
		if code := getJSON(t, url+"/v1.41/volumes/slowvol", &v); code != 200 || v.Name != "slowvol" {
			t.Errorf("GET /volumes/slowvol: %d %q; want 200 slowvol", code, v.Name)
		}
		var img struct {
			ID string `json:"Id"`
		}
		if code := getJSON(t, url+"/v1.41/images/slowimg:latest/json", &img); code != 200 || img.ID != "sha256:5104" {
			t.Errorf("GET /images/slowimg:latest/json: %d %q; want 200 sha256:5104", code, img.ID)
		}
	})
	t.Run("lookup", func(t *testing.T) {
		url := startManager(t, 5*time.Second, fast.Addr(), slowAtFirst(t, slow, 500*time.Millisecond))
		var c struct{ Name string }
		if code := getJSON(t, url+"/v1.41/containers/slow-c1/json", &c); code != 200 || c.Name != "/slow-c1" {
			t.Errorf("GET /containers/slow-c1/json: %d %q; want 200 /slow-c1", code, c.Name)
		}
	})
}

// The wait is bounded: an engine that never answers delays a list by at
// most the engine timeout, and the list has the other engines.
func TestListWaitIsBounded(t *testing.T) {
	fast := sim(t, enginesim.Options{Name: "fast", Containers: 2})
	url := startManager(t, time.Second, fast.Addr(), silent(t))
	start := time.Now()
	var list []struct {
		ID string `json:"Id"`
	}
	code := getJSON(t, url+"/v1.41/containers/json?all=1", &list)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("list took %v with an engine that never answers (timeout 1s)", took)
	}
	if code != 200 || len(list) != 2 {
		t.Errorf("GET /containers/json?all=1: %d, %d containers; want 2", code, len(list))
	}
}
