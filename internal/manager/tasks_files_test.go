package manager_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/enginesim"
)

// configData serves one config to the task runtime.
type configData struct{}

func (configData) SecretData(context.Context, string) (swarm.Secret, error) {
	return swarm.Secret{}, nil
}

func (configData) ConfigData(_ context.Context, id string) (swarm.Config, error) {
	var c swarm.Config
	c.ID = id
	c.Spec.Name = "app.conf"
	c.Spec.Data = []byte("a=1")
	return c, nil
}

// Under shoal manage configs are copied into the created container before
// it starts. When that copy fails the container is removed, so that the
// next Start makes it again with its files instead of starting it
// without them.
func TestTaskStartRemovesAContainerItCouldNotPutFilesIn(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	var copies atomic.Int32
	env := newTaskEnvWrapped(t, 1, func(s *enginesim.Engine) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/archive") {
				copies.Add(1)
				if refuse.Load() {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusInternalServerError)
					_, _ = w.Write([]byte(`{"message":"no space left on device"}`))
					return
				}
				w.WriteHeader(http.StatusOK)
				return
			}
			s.ServeHTTP(w, r)
		})
	})
	rt := env.m.TaskRuntimeWith(configData{})
	svc := webService("busybox")
	svc.Spec.TaskTemplate.ContainerSpec.Configs = []*swarm.ConfigReference{{
		ConfigID: "cfg00000000000000000000a", ConfigName: "app.conf",
		File: &swarm.ConfigReferenceFileTarget{Name: "/etc/app.conf", UID: "0", GID: "0", Mode: 0o444},
	}}
	task := webTask(svc, "task00000000000000000000a", env.node(0), 1)
	task.Spec = svc.Spec.TaskTemplate
	if _, err := rt.Start(context.Background(), svc, task); err == nil {
		t.Fatal("Start succeeded although its config could not be copied in")
	}
	if n, _ := env.sims[0].Count(); n != 0 {
		t.Fatalf("%d containers left on the engine after the failed copy; want none", n)
	}
	waitFor(t, "the removed container is gone from the view", func() bool {
		_, ok := env.observedTask(t, task.ID)
		return !ok
	})
	refuse.Store(false)
	before := copies.Load()
	id, err := rt.Start(context.Background(), svc, task)
	if err != nil {
		t.Fatal(err)
	}
	if copies.Load() == before {
		t.Fatalf("container %s started without its config copied in", id)
	}
}
