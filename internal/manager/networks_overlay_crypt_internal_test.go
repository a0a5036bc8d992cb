package manager

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// TestCreateEncryptedNetwork: --opt encrypted (any value) is taken, the
// network gets a key of its own that no API answer shows, its options
// show "encrypted" as swarm mode's do, and its containers get the
// tunnel's smaller MTU; a plain network has no key.
func TestCreateEncryptedNetwork(t *testing.T) {
	st := storetest.Open(t)
	m := New(Config{Cluster: storeCluster{st: st}, Pool: engine.NewPool(engine.Options{}, nil)})
	ctx := t.Context()
	create := func(name string, opts map[string]string) store.Network {
		t.Helper()
		body := backend.Object{"Name": mustJSON(name), "Driver": mustJSON("overlay"), "Options": mustJSON(opts)}
		obj, err := m.CreateNetwork(ctx, backend.ObjectCreateRequest{Name: name, Body: body})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		nw, err := store.NewNetworks(st).Get(ctx, obj.String("Id"))
		if err != nil {
			t.Fatal(err)
		}
		return nw
	}
	sec := create("secnet", map[string]string{"encrypted": ""})
	other := create("secnet2", map[string]string{"encrypted": "true"})
	plain := create("plain", nil)
	if len(sec.Key) != overlay.KeyLen || len(other.Key) != overlay.KeyLen || string(sec.Key) == string(other.Key) {
		t.Fatalf("keys %x, %x: want 32 bytes each, each network its own", sec.Key, other.Key)
	}
	if plain.Key != nil {
		t.Errorf("a plain network has a key")
	}
	obj, found, err := m.InspectClusterNetwork(ctx, "secnet")
	if err != nil || !found {
		t.Fatal(found, err)
	}
	raw, _ := json.Marshal(obj)
	var ins struct{ Options map[string]string }
	_ = json.Unmarshal(raw, &ins)
	if v, ok := ins.Options["encrypted"]; !ok || v != "" {
		t.Errorf("inspect's Options %v, want encrypted: \"\"", ins.Options)
	}
	list, _ := json.Marshal(m.clusterNetworkList(ctx, nil))
	for _, k := range [][]byte{sec.Key, other.Key} {
		for _, enc := range []string{string(mustJSON(k)), strings.Trim(string(mustJSON(k)), `"`)} {
			if strings.Contains(string(raw), enc) || strings.Contains(string(list), enc) {
				t.Errorf("the key is in an API answer")
			}
		}
	}
	gw, rng, _ := overlay.Slot(netip.MustParsePrefix(sec.Subnet), 1)
	opts := engineNetworkRequest(sec, gw, rng)["Options"].(map[string]string)
	if opts["com.docker.network.driver.mtu"] != "1420" {
		t.Errorf("engine network options %v, want the tunnel's MTU 1420", opts)
	}
}
