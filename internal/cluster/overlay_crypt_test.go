package cluster

import (
	"bytes"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
)

// TestOverlayStateEncrypted: a node is told an encrypted network's key,
// TAP device and smaller MTU, and no VXLAN device for it.
func TestOverlayStateEncrypted(t *testing.T) {
	cfg := config(t, "m1")
	cfg.Init = true
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 30*time.Second)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	self, err := c.nodes.Get(ctx, c.NodeID())
	if err != nil {
		t.Fatal(err)
	}
	key := overlay.NewKey()
	nw := store.Network{ID: "abcdefghijklmnopqrstuvwxy", Name: "secnet", Subnet: "10.0.1.0/24", VNI: 4097, Key: key}
	if err := store.NewNetworks(c.store).Create(ctx, nw); err != nil {
		t.Fatal(err)
	}
	st, err := c.overlayState(ctx, self.Value)
	if err != nil || len(st.Networks) != 1 {
		t.Fatalf("one network: %+v %v", st, err)
	}
	got := st.Networks[0]
	if !bytes.Equal(got.Key, key) || got.Tap != "shyabcdefghij" || got.VXLAN != "" || got.MTU != overlay.CryptMTU || got.Bridge != "shvabcdefghij" {
		t.Errorf("encrypted network as told to a node: %+v", got)
	}
}
