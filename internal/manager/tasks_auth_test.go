package manager_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// encodedAuth is an X-Registry-Auth as the docker CLI makes it.
func encodedAuth(t *testing.T, user, pass, server string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"username": user, "password": pass, "serveraddress": server})
	if err != nil {
		t.Fatal(err)
	}
	return base64.URLEncoding.EncodeToString(b)
}

// syncBuffer is a log sink the runtime's goroutines may write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestTaskStartPullsWithTheServiceRegistryAuth: a task's image is pulled
// with the service's registry auth (docker service create
// --with-registry-auth); without it the registry's refusal makes the task
// fail with "No such image", as on swarm mode, and the auth shows neither
// in the error nor in the log.
func TestTaskStartPullsWithTheServiceRegistryAuth(t *testing.T) {
	env := newTaskEnv(t, 1)
	const reg, ref = "reg.example:5000", "reg.example:5000/team/app:v1"
	env.sims[0].RequireRegistryAuth(reg, "alice", "s3cret-pass")
	var logs syncBuffer
	m := manager.New(manager.Config{Pool: env.pool, Placer: scheduler.New(nil, scheduler.Options{}),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	rt := m.TaskRuntime()
	ctx := context.Background()

	svc := webService(ref)
	_, err := rt.Start(ctx, svc, webTask(svc, "task00000000000000000000a", env.node(0), 1))
	if !errdefs.IsNotFound(err) || err.Error() != "No such image: "+ref {
		t.Fatalf("Start without auth: %v; want No such image: %s", err, ref)
	}
	if !strings.Contains(logs.String(), "no basic auth credentials") {
		t.Errorf("the registry's refusal is not in the log:\n%s", logs.String())
	}

	wrong := encodedAuth(t, "alice", "wrong-pass", reg)
	svc.RegistryAuth = wrong
	if _, err = rt.Start(ctx, svc, webTask(svc, "task00000000000000000000b", env.node(0), 2)); !errdefs.IsNotFound(err) {
		t.Fatalf("Start with the wrong password: %v; want not found", err)
	}

	good := encodedAuth(t, "alice", "s3cret-pass", reg)
	svc.RegistryAuth = good
	if _, err := rt.Start(ctx, svc, webTask(svc, "task00000000000000000000c", env.node(0), 3)); err != nil {
		t.Fatalf("Start with the service's auth: %v", err)
	}
	if !hasImage(env.pool.Engines()[0], ref) {
		t.Fatalf("%s is not on the node after Start", ref)
	}
	if got := env.sims[0].Pulls(ref); len(got) != 3 || got[0] != "" || got[1] != wrong || got[2] != good {
		t.Errorf("X-Registry-Auth of the pulls: %q; want none, the wrong one, the service's", got)
	}
	for _, secret := range []string{good, wrong, "s3cret-pass", "wrong-pass"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds the registry auth %q:\n%s", secret, logs.String())
		}
	}
}
