package services_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/services"
	"github.com/shoal-dev/shoal/internal/store"
)

// TestVirtualIPs: a service in vip mode (the default) on a cluster
// network gets one VIP there, shown as swarm mode shows it, kept across
// an update, freed when it leaves the network or is removed; a dnsrr
// service gets none; two services never share one.
func TestVirtualIPs(t *testing.T) {
	b, _, st := newBackend(t)
	ctx := context.Background()
	nets := store.NewNetworks(st)
	for _, n := range []store.Network{
		{ID: "net1aaaaaaaaaaaaaaaaaaaaa", Name: "appnet", Subnet: "10.0.1.0/24", Slots: map[string]int{"n1": 0}},
		{ID: "net2aaaaaaaaaaaaaaaaaaaaa", Name: "backnet", Subnet: "10.0.2.0/24"},
	} {
		if err := nets.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	web := spec("web", 2)
	web.EndpointSpec = &swarm.EndpointSpec{Mode: swarm.ResolutionModeVIP}
	web.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: "net1aaaaaaaaaaaaaaaaaaaaa"}}
	if _, err := b.CreateService(ctx, web, ""); err != nil {
		t.Fatal(err)
	}
	svc, err := b.Service(ctx, "web", false)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(svc.Endpoint)
	if want := `{"Spec":{"Mode":"vip"},"VirtualIPs":[{"NetworkID":"net1aaaaaaaaaaaaaaaaaaaaa","Addr":"10.0.1.240/24"}]}`; string(raw) != want {
		t.Fatalf("Endpoint %s, want %s", raw, want)
	}

	rr := spec("rr", 1)
	rr.EndpointSpec = &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR}
	rr.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: "appnet"}}
	if _, err := b.CreateService(ctx, rr, ""); err != nil {
		t.Fatal(err)
	}
	db := spec("db", 1) // no EndpointSpec: vip, swarm mode's default; the network by name
	db.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: "appnet"}}
	if _, err := b.CreateService(ctx, db, ""); err != nil {
		t.Fatal(err)
	}
	list, err := b.Services(ctx, backend.Filters{}, false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]swarm.EndpointVirtualIP{}
	for _, s := range list {
		got[s.Spec.Name] = s.Endpoint.VirtualIPs
	}
	if len(got["rr"]) != 0 || len(got["db"]) != 1 || got["db"][0].Addr.String() != "10.0.1.241/24" {
		t.Errorf("VIPs listed: %v", got)
	}

	// An update that adds a network keeps the first VIP.
	svc, _ = b.Service(ctx, "web", false)
	upd := svc.Spec
	upd.TaskTemplate.Networks = append(upd.TaskTemplate.Networks, swarm.NetworkAttachmentConfig{Target: "backnet"})
	if _, err := b.UpdateService(ctx, "web", backend.ServiceUpdate{Spec: upd, Version: svc.Version}); err != nil {
		t.Fatal(err)
	}
	svc, _ = b.Service(ctx, "web", false)
	if v := svc.Endpoint.VirtualIPs; len(v) != 2 || v[0].Addr.String() != "10.0.1.240/24" || v[1].NetworkID != "net2aaaaaaaaaaaaaaaaaaaaa" || v[1].Addr.String() != "10.0.2.240/24" {
		t.Errorf("after adding backnet: %v", v)
	}
	// Switching to dnsrr frees them; removing a service frees its own.
	upd = svc.Spec
	upd.EndpointSpec = &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR}
	if _, err := b.UpdateService(ctx, "web", backend.ServiceUpdate{Spec: upd, Version: svc.Version}); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveService(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"net1aaaaaaaaaaaaaaaaaaaaa", "net2aaaaaaaaaaaaaaaaaaaaa"} {
		if n, _ := nets.Get(ctx, id); len(n.VIPs) != 0 {
			t.Errorf("network %s keeps VIPs %v", n.Name, n.VIPs)
		}
	}
}

// TestSyncVIPs: the ingress network, made after the service, gets its
// VIP at the next sync, and a VIP of a service gone (a manager stopped
// between the service's removal and the free) is freed.
func TestSyncVIPs(t *testing.T) {
	b, _, st := newBackend(t)
	ctx := context.Background()
	web := spec("web", 1)
	web.EndpointSpec = &swarm.EndpointSpec{Ports: []swarm.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 8080}}}
	if _, err := b.CreateService(ctx, web, ""); err != nil {
		t.Fatal(err)
	}
	nets := store.NewNetworks(st)
	if err := nets.Create(ctx, store.Network{ID: "ingressaaaaaaaaaaaaaaaaaa", Name: "ingress", Ingress: true, Subnet: "10.0.0.0/24",
		VIPs: map[string]string{"gone": "10.0.0.240"}}); err != nil {
		t.Fatal(err)
	}
	if err := services.SyncVIPs(ctx, st); err != nil {
		t.Fatal(err)
	}
	svc, _ := b.Service(ctx, "web", false)
	n, _ := nets.Get(ctx, "ingressaaaaaaaaaaaaaaaaaa")
	if len(n.VIPs) != 1 || n.VIPs[svc.ID] != "10.0.0.240" || len(svc.Endpoint.VirtualIPs) != 1 || svc.Endpoint.VirtualIPs[0].Addr.String() != "10.0.0.240/24" {
		t.Errorf("ingress VIPs %v, Endpoint %+v", n.VIPs, svc.Endpoint)
	}
}

// TestVIPShareFull: a service on a network whose VIP share is a node's
// (made before VIPs) is created all the same, without a VIP there, and
// the sync says why.
func TestVIPShareFull(t *testing.T) {
	b, _, st := newBackend(t)
	ctx := context.Background()
	if err := store.NewNetworks(st).Create(ctx, store.Network{ID: "oldnetaaaaaaaaaaaaaaaaaaa", Name: "oldnet", Subnet: "10.0.1.0/24",
		Slots: map[string]int{"n16": 15}}); err != nil {
		t.Fatal(err)
	}
	web := spec("web", 1)
	web.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: "oldnet"}}
	if _, err := b.CreateService(ctx, web, ""); err != nil {
		t.Fatal(err)
	}
	if svc, err := b.Service(ctx, "web", false); err != nil || len(svc.Endpoint.VirtualIPs) != 0 {
		t.Errorf("VIPs %v (%v), want none", svc.Endpoint.VirtualIPs, err)
	}
	if err := services.SyncVIPs(ctx, st); !errors.Is(err, overlay.ErrNoVIP) {
		t.Errorf("sync: %v, want ErrNoVIP", err)
	}
}
