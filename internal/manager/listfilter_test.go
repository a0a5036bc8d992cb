package manager

import (
	"context"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
)

// Each `docker ps --filter` key matches as dockerd's does, and keys combine
// with AND while values of one key combine with OR.
func TestContainerFilters(t *testing.T) {
	e := &engine.Engine{Addr: "10.0.0.1:2375", ID: "n0de1"}
	web := listed{e: e, c: &engine.Container{
		ID: "abc123", Names: []string{"/web"}, Image: "busybox:1.36", ImageID: "sha256:77",
		Labels: map[string]string{"tier": "front"}, State: "running", Status: "Up 3 minutes (healthy)",
		Ports:    []engine.Port{{PrivatePort: 80, PublicPort: 8080, Type: "tcp"}},
		Networks: map[string]string{"front": "net9"}, Mounts: []engine.Mount{{Name: "data", Destination: "/data"}},
	}}
	done := listed{e: e, c: &engine.Container{
		ID: "def456", Names: []string{"/job"}, Image: "redis", State: "exited", Status: "Exited (3) 2 minutes ago",
		Labels: map[string]string{"com.docker.swarm.task": ""},
	}}
	m := &Manager{}
	for _, tc := range []struct {
		f         backend.Filters
		web, done bool
	}{
		{backend.Filters{}, true, true},
		{backend.Filters{"id": {"abc"}}, true, false},
		{backend.Filters{"name": {"^/web$"}}, true, false},
		{backend.Filters{"name": {"10.0.0.1:2375/job"}}, false, true},
		{backend.Filters{"label": {"tier=front"}}, true, false},
		{backend.Filters{"status": {"exited", "paused"}}, false, true},
		{backend.Filters{"ancestor": {"busybox:1.36"}}, true, false},
		{backend.Filters{"ancestor": {"redis"}}, false, true},
		{backend.Filters{"node": {"n0de"}}, true, true},
		{backend.Filters{"node": {"other"}}, false, false},
		{backend.Filters{"exited": {"3"}}, false, true},
		{backend.Filters{"health": {"healthy"}}, true, false},
		{backend.Filters{"health": {"none"}}, false, true},
		{backend.Filters{"network": {"net"}}, true, false},
		{backend.Filters{"volume": {"/data"}}, true, false},
		{backend.Filters{"is-task": {"true"}}, false, true},
		{backend.Filters{"publish": {"8080"}}, true, false},
		{backend.Filters{"expose": {"80/tcp"}}, true, false},
		{backend.Filters{"expose": {"80/udp"}}, false, false},
		{backend.Filters{"status": {"running"}, "label": {"tier=back"}}, false, false},
	} {
		match, err := m.containerMatcher(context.Background(), tc.f)
		if err != nil {
			t.Fatalf("%v: %v", tc.f, err)
		}
		if got := match(web); got != tc.web {
			t.Errorf("%v on web: %v, want %v", tc.f, got, tc.web)
		}
		if got := match(done); got != tc.done {
			t.Errorf("%v on job: %v, want %v", tc.f, got, tc.done)
		}
	}
	if _, err := m.containerMatcher(context.Background(), backend.Filters{"name": {"("}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a bad name pattern: %v, want an invalid-argument error", err)
	}
}
