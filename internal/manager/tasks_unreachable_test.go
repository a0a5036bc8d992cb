package manager_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/orchestrator"
)

// A task's start on an engine that breaks off (it died while the pool
// still counts it healthy) or on a node that is down fails with
// orchestrator.ErrUnreachable: the node's loss, which must not count as
// the task's failure (an engine killed mid-update paused the update). An
// engine's refusal does not.
func TestTaskStartUnreachable(t *testing.T) {
	var cut atomic.Bool
	env := newTaskEnvWrapped(t, 2, func(s *enginesim.Engine) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if cut.Load() && strings.HasSuffix(r.URL.Path, "/containers/create") {
				conn, _, err := w.(http.Hijacker).Hijack() // the engine dies mid-request
				if err == nil {
					conn.Close()
				}
				return
			}
			s.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	svc := webService("busybox")
	cut.Store(true)
	_, err := env.rt.Start(ctx, svc, webTask(svc, "task00000000000000000000u", env.node(0), 1))
	if !errors.Is(err, orchestrator.ErrUnreachable) {
		t.Fatalf("start on an engine that broke off: %v; want orchestrator.ErrUnreachable", err)
	}
	cut.Store(false)

	if _, err := env.m.CreateContainer(ctx, backend.ContainerCreateRequest{ // a user took the task's name
		Name: "web.2.task00000000000000000000v", Body: []byte(`{"Image":"busybox"}`),
		Config: backend.ContainerConfig{Image: "busybox"},
	}); err != nil {
		t.Fatal(err)
	}
	_, err = env.rt.Start(ctx, svc, webTask(svc, "task00000000000000000000v", env.node(0), 2))
	if err == nil || errors.Is(err, orchestrator.ErrUnreachable) {
		t.Fatalf("start on a taken name: %v; want the engine's refusal", err)
	}

	down := env.node(1)
	env.sims[1].Close()
	waitFor(t, "node2 down", func() bool { return len(env.pool.Healthy()) == 1 })
	_, err = env.rt.Start(ctx, svc, webTask(svc, "task00000000000000000000w", down, 3))
	if !errors.Is(err, orchestrator.ErrUnreachable) {
		t.Fatalf("start on a node that is down: %v; want orchestrator.ErrUnreachable", err)
	}
}
