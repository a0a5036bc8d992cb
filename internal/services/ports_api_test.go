package services_test

import (
	"context"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
)

// TestPublishedPorts: create fills Endpoint.Ports (allocating a published
// port where none is given), a second service cannot take an ingress port
// another has, and an update keeps the allocated port.
func TestPublishedPorts(t *testing.T) {
	b, _, _ := newBackend(t)
	ctx := context.Background()
	sp := spec("web", 1)
	sp.EndpointSpec = &swarm.EndpointSpec{Ports: []swarm.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 8080}, {Protocol: "tcp", TargetPort: 443}}}
	if _, err := b.CreateService(ctx, sp, ""); err != nil {
		t.Fatal(err)
	}
	svc, err := b.Service(ctx, "web", false)
	if err != nil || len(svc.Endpoint.Ports) != 2 || svc.Endpoint.Ports[0].PublishedPort != 8080 || svc.Endpoint.Ports[1].PublishedPort != 30000 ||
		svc.Endpoint.Ports[1].PublishMode != swarm.PortConfigPublishModeIngress || svc.Endpoint.Spec.Mode != swarm.ResolutionModeVIP {
		t.Fatalf("endpoint %+v %v", svc.Endpoint, err)
	}
	other := spec("other", 1)
	other.EndpointSpec = &swarm.EndpointSpec{Ports: []swarm.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 8080}}}
	if _, err := b.CreateService(ctx, other, ""); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "port '8080' is already in use by service 'web' ("+svc.ID+") as an ingress port") {
		t.Errorf("a taken port: %v", err)
	}
	upd := svc.Spec
	upd.Labels = map[string]string{"x": "y"}
	if _, err := b.UpdateService(ctx, "web", backend.ServiceUpdate{Spec: upd, Version: svc.Version}); err != nil {
		t.Fatal(err)
	}
	if after, _ := b.Service(ctx, "web", false); len(after.Endpoint.Ports) != 2 || after.Endpoint.Ports[1].PublishedPort != 30000 {
		t.Errorf("after update: %+v", after.Endpoint)
	}
}
