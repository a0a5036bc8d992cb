package manager_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/services"
)

// imageEngine serves a simulated engine plus what the services support
// asks of engines: image inspect, a registry lookup and container logs.
type imageEngine struct {
	sim      http.Handler
	images   map[string]bool // held by this engine
	registry map[string]bool // pullable from this engine's registries

	mu       sync.Mutex
	logQuery url.Values
	down     atomic.Bool // answers everything but open log streams 500
}

func (e *imageEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if i := strings.Index(path[1:], "/"); strings.HasPrefix(path, "/v1.") && i > 0 {
		path = path[i+1:]
	}
	if e.down.Load() && path != "/containers/c2/logs" {
		http.Error(w, `{"message":"engine down"}`, http.StatusInternalServerError)
		return
	}
	switch {
	case path == "/containers/c2/logs": // follows until the client leaves
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	case path != "/images/json" && strings.HasPrefix(path, "/images/") && strings.HasSuffix(path, "/json") && r.Method == http.MethodGet:
		name := strings.TrimSuffix(strings.TrimPrefix(path, "/images/"), "/json")
		if !e.images[name] {
			http.Error(w, `{"message":"No such image: `+name+`"}`, http.StatusNotFound)
			return
		}
		io.WriteString(w, `{"Id":"sha256:1"}`)
	case strings.HasPrefix(path, "/distribution/"):
		name := strings.TrimSuffix(strings.TrimPrefix(path, "/distribution/"), "/json")
		if !e.registry[name] {
			http.Error(w, `{"message":"pull access denied for `+name+`, repository does not exist or may require 'docker login'"}`, http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"Descriptor":{}}`)
	case path == "/containers/c1/logs":
		e.mu.Lock()
		e.logQuery = r.URL.Query()
		e.mu.Unlock()
		io.WriteString(w, "stream")
	default:
		e.sim.ServeHTTP(w, r)
	}
}

func startImageEngines(t *testing.T, engines ...*imageEngine) []string {
	t.Helper()
	var addrs []string
	for _, e := range engines {
		sim, err := enginesim.Start(enginesim.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sim.Close() })
		e.sim = sim
		srv := httptest.NewServer(e)
		t.Cleanup(srv.Close)
		addrs = append(addrs, srv.Listener.Addr().String())
	}
	return addrs
}

// The manager is what the services backend reaches engines through.
var _ services.Engines = (*manager.Manager)(nil)

func TestServicesEngines(t *testing.T) {
	a := &imageEngine{images: map[string]bool{"busybox:latest": true}, registry: map[string]bool{}}
	b := &imageEngine{images: map[string]bool{}, registry: map[string]bool{"nginx:1.27": true}}
	addrs := startImageEngines(t, a, b)
	pool := startPool(t, 0, addrs...)
	m := manager.New(manager.Config{Pool: pool})
	ctx := context.Background()

	for _, image := range []string{"busybox", "busybox:latest", "nginx:1.27"} {
		if err := m.CheckImage(ctx, image, ""); err != nil {
			t.Errorf("CheckImage(%s): %v", image, err)
		}
	}
	err := m.CheckImage(ctx, "nosuch:1", "")
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "pull access denied for nosuch:1") {
		t.Errorf("CheckImage(nosuch:1): %v", err)
	}

	var nodeA string
	for _, e := range pool.Engines() {
		if e.Addr == addrs[0] {
			nodeA = e.ID
		}
	}
	if id, err := m.ResolveNode(ctx, nodeA[:8]); err != nil || id != nodeA {
		t.Errorf("ResolveNode(prefix): %q %v", id, err)
	}
	if _, err := m.ResolveNode(ctx, "nosuchnode"); !errdefs.IsNotFound(err) {
		t.Errorf("ResolveNode(unknown): %v", err)
	}
	rc, err := m.ContainerLogs(ctx, nodeA, "c1", url.Values{"follow": {"1"}, "details": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	if string(body) != "stream" || a.logQuery.Get("follow") != "1" || a.logQuery.Get("details") != "1" {
		t.Errorf("logs %q, query %v", body, a.logQuery)
	}
	if _, err := m.ContainerLogs(ctx, "nosuchnode", "c1", nil); !errdefs.IsNotFound(err) {
		t.Errorf("logs on an unknown node: %v", err)
	}
}

// An image some engine's cached list has is found there: no engine is
// asked (at 10,000 engines each service create asked every one).
func TestCheckImageFromCache(t *testing.T) {
	var asked atomic.Int64
	var addrs []string
	for range 3 {
		sim, err := enginesim.Start(enginesim.Options{Images: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sim.Close() })
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/images/") && !strings.HasSuffix(r.URL.Path, "/images/json") || strings.Contains(r.URL.Path, "/distribution/") {
				asked.Add(1)
			}
			sim.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		addrs = append(addrs, srv.Listener.Addr().String())
	}
	pool := startPool(t, 0, addrs...)
	m := manager.New(manager.Config{Pool: pool})
	for _, image := range []string{"sim/image-1", "sim/image-0:latest"} {
		if err := m.CheckImage(context.Background(), image, ""); err != nil {
			t.Errorf("CheckImage(%s): %v", image, err)
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the engines were asked %d times about cached images", n)
	}
}

// A followed log stream ends with an error as soon as its node is down,
// instead of hanging on the dead node's connection.
func TestContainerLogsEndWhenNodeGoesDown(t *testing.T) {
	a := &imageEngine{images: map[string]bool{}, registry: map[string]bool{}}
	addrs := startImageEngines(t, a)
	pool := startPool(t, 0, addrs...)
	m := manager.New(manager.Config{Pool: pool})
	rc, err := m.ContainerLogs(context.Background(), pool.Engines()[0].ID, "c2", url.Values{"follow": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(rc, buf); err != nil || string(buf) != "first" {
		t.Fatalf("first read %q %v", buf, err)
	}
	a.down.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(rc)
		done <- err
	}()
	select {
	case err := <-done:
		if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "went down") {
			t.Errorf("stream ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of a node that went down did not end")
	}
}
