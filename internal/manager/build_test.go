package manager_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/manager"
)

// A build goes where its inputs are (issue 10 #4): to a node holding a
// --cache-from image, to the node holding its --network (named or given
// as node/network, which the engine gets without the node), and a network
// no node has is refused with dockerd's 404. Without inputs it goes where
// spread puts it among equal nodes: node-a, the first name.
func TestPlaceBuildByInputs(t *testing.T) {
	c := startSimCluster(t, manager.Config{})
	ctx := context.Background()
	b := c.engineOf(c.b)
	resp, err := http.Post("http://"+c.b.Addr()+"/images/create?fromImage=cachesrc&tag=v1", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	body, _ := json.Marshal(map[string]string{"Name": "buildnet"})
	if _, err := b.CreateNetwork(ctx, "", body); err != nil {
		t.Fatal(err)
	}
	if err := b.RefreshImages(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.RefreshNetworksVolumes(ctx); err != nil {
		t.Fatal(err)
	}
	place := func(req backend.BuildPlacement) (string, backend.BuildPlacement, error) {
		tg, send, err := c.mgr.PlaceBuild(ctx, req)
		if err != nil {
			return "", send, err
		}
		return tg.(*engine.Engine).Name(), send, nil
	}
	for _, tt := range []struct {
		name     string
		req      backend.BuildPlacement
		node     string
		sendMode string
	}{
		{"no inputs", backend.BuildPlacement{}, "node-a", ""},
		{"cache-from", backend.BuildPlacement{CacheFrom: []string{"nowhere:1", "cachesrc:v1"}}, "node-b", ""},
		{"cache-from nowhere", backend.BuildPlacement{CacheFrom: []string{"nowhere:1"}}, "node-a", ""},
		{"network", backend.BuildPlacement{NetworkMode: "buildnet"}, "node-b", "buildnet"},
		{"node/network", backend.BuildPlacement{NetworkMode: "node-b/buildnet"}, "node-b", "buildnet"},
		{"host network", backend.BuildPlacement{NetworkMode: "host"}, "node-a", "host"},
	} {
		node, send, err := place(tt.req)
		if err != nil || node != tt.node || send.NetworkMode != tt.sendMode {
			t.Errorf("%s: placed on %q, network mode sent %q, err %v; want %s, %q", tt.name, node, send.NetworkMode, err, tt.node, tt.sendMode)
		}
	}
	for _, mode := range []string{"nosuchnet", "node-a/buildnet"} {
		_, _, err := place(backend.BuildPlacement{NetworkMode: mode})
		if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "network") || !strings.Contains(err.Error(), "not found") {
			t.Errorf("network %s: %v, want a 404 saying the network is not found", mode, err)
		}
	}
	if _, _, err := place(backend.BuildPlacement{NetworkMode: "nosuchnet"}); err == nil || err.Error() != "network nosuchnet not found" {
		t.Errorf("unknown network: %v, want dockerd's words", err)
	}
}
