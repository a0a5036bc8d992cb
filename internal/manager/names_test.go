package manager_test

import (
	"context"
	"github.com/containerd/errdefs"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/manager"
)

// startPool runs a pool over addrs until the test ends and waits until
// every engine is healthy with want containers cached in all.
func startPool(t *testing.T, want int, addrs ...string) *engine.Pool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond}, nil)
	p.Update(addrs)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n := 0
		for _, e := range p.Healthy() {
			n += len(e.Containers())
		}
		if len(p.Healthy()) == len(addrs) && n == want {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool over %v: %d healthy engines, %d containers; want %d, %d", addrs, len(p.Healthy()), n, len(addrs), want)
		}
	}
}

// A shoal whose engine is another shoal (a member) lists that member's
// containers as /member/node/name and finds them by every form of
// reference, the three-segment one included.
func TestNestedShoalNames(t *testing.T) {
	sim, id := simWithContainer(t, "node1", "web")
	inner := manager.New(manager.Config{Pool: startPool(t, 1, sim.Addr()), Name: "siteA"})
	member := httptest.NewServer(dockerapi.New(inner, "test", nil))
	t.Cleanup(member.Close)
	outerPool := startPool(t, 1, member.Listener.Addr().String())
	outer := manager.New(manager.Config{Pool: outerPool})
	ctx := context.Background()

	// The name is kept, not dropped for having a slash: name uniqueness
	// and rescheduling see it.
	if c := outerPool.Engines()[0].Containers()[0]; c.Name() != "web" || c.Path().String() != "/node1/web" {
		t.Errorf("member's container: Name %q, Path %s; want web, /node1/web", c.Name(), c.Path())
	}

	for _, ref := range []string{id, id[:8], "web", "/web", "node1/web", "siteA/node1/web", "/siteA/node1/web"} {
		_, got, _, err := outer.ResolveContainer(ctx, ref)
		if err != nil || got != id {
			t.Errorf("ResolveContainer(%q) = %q, %v; want %s", ref, got, err, id)
		}
	}
	// A path-like name no engine has is dockerd's 404 in the client's
	// words, answered here: escaped into an engine's path it would read
	// "other%2Fnode1%2Fweb" (or name another endpoint).
	for _, ref := range []string{"other/node1/web", "siteA/node2/web", "/node1/db", "a?b", "50%"} {
		want := "No such container: " + strings.TrimPrefix(ref, "/")
		if _, got, _, err := outer.ResolveContainer(ctx, ref); !errdefs.IsNotFound(err) || err.Error() != want || got != "" {
			t.Errorf("ResolveContainer(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	// A plain name no engine has goes to an engine as written, for its own 404.
	if _, got, pathRef, err := outer.ResolveContainer(ctx, "no such"); err != nil || got != "" || pathRef != "no such" {
		t.Errorf(`ResolveContainer("no such") = %q, %q, %v; want an engine, no ID, the name unescaped`, got, pathRef, err)
	}

	list, err := outer.ListContainers(ctx, backend.ContainerListOptions{All: true})
	if err != nil || len(list) != 1 {
		t.Fatalf("ListContainers = %d entries, %v", len(list), err)
	}
	if entry := string(list[0].Entry.AppendJSON(nil, list[0].Status)); !strings.Contains(entry, `"Names":["/siteA/node1/web"]`) {
		t.Errorf("list entry %s: want Names [/siteA/node1/web]", entry)
	}
}

// simWithContainer starts a simulated engine called node holding one
// container named name, and returns the engine and the container's ID.
func simWithContainer(t *testing.T, node, name string) (*enginesim.Engine, string) {
	t.Helper()
	sim, err := enginesim.Start(enginesim.Options{Name: node})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	id, err := sim.Create(enginesim.CreateSpec{Name: name, Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	return sim, id
}
