package services_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/services"
	"github.com/shoal-dev/shoal/internal/store"
)

func published(name string, port uint32) swarm.ServiceSpec {
	sp := spec(name, 1)
	sp.EndpointSpec = &swarm.EndpointSpec{Ports: []swarm.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: port}}}
	return sp
}

// TestPortClaimInFlight: a port another manager is claiming for a service
// whose record is not written yet is refused; a claim left by a create
// that never finished stops holding it after a minute.
func TestPortClaimInFlight(t *testing.T) {
	b, _, st := newBackend(t)
	ctx := context.Background()
	ports := store.NewPorts(st)
	if err := ports.Modify(ctx, func(tb *store.PortTable) error {
		tb.Claims["tcp/9000"] = store.PortClaim{Service: "inflightid", At: now.Add(-10 * time.Second)}
		tb.Claims["tcp/9001"] = store.PortClaim{Service: "crashedid", At: now.Add(-2 * time.Minute)}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateService(ctx, published("a", 9000), ""); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "port '9000' is already in use by service 'inflightid'") {
		t.Errorf("a port claimed by a create in flight: %v", err)
	}
	if _, err := b.CreateService(ctx, published("b", 9001), ""); err != nil {
		t.Errorf("a port held by a stale claim: %v", err)
	}
	tb, err := ports.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tb.Claims["tcp/9001"]; !ok || tb.Claims["tcp/9001"].Service == "crashedid" {
		t.Errorf("claims after the create: %+v", tb.Claims)
	}
	// The refused create left no claim of its own.
	for k, c := range tb.Claims {
		if c.Service != "inflightid" && k == "tcp/9000" {
			t.Errorf("claim %s by %s", k, c.Service)
		}
	}
}

// TestPortClaimTwoManagers: services created at once through two managers
// (two backends over one store, each with its own lock) never share a
// published port, given or allocated.
func TestPortClaimTwoManagers(t *testing.T) {
	b1, f, st := newBackend(t)
	b2 := services.New(services.Config{Store: st, Engines: f, Now: func() time.Time { return now }})
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		b := b1
		if i%2 == 1 {
			b = b2
		}
		wg.Go(func() {
			if _, err := b.CreateService(ctx, published(string(rune('a'+i))+"fixed", 9100), ""); err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			} else if !errdefs.IsInvalidArgument(err) {
				t.Errorf("create %d: %v", i, err)
			}
			if _, err := b.CreateService(ctx, published(string(rune('a'+i))+"dyn", 0), ""); err != nil {
				t.Errorf("create %d with an allocated port: %v", i, err)
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d services got port 9100, want 1", won)
	}
	list, _, err := store.NewServices(st).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]string{}
	for _, s := range list {
		for _, p := range s.Endpoint.Ports {
			if other, dup := seen[p.PublishedPort]; dup {
				t.Errorf("port %d published by %s and %s", p.PublishedPort, other, s.Spec.Name)
			}
			seen[p.PublishedPort] = s.Spec.Name
		}
	}
	if len(seen) != 9 {
		t.Errorf("published ports %v, want 9100 and 8 allocated", seen)
	}
}
