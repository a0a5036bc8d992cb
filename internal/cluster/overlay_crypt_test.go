package cluster

import (
	"bytes"
	"testing"

	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
)

// TestOverlayStateEncrypted: a node is told an encrypted network's key,
// TAP device and smaller MTU, and no VXLAN device for it.
func TestOverlayStateEncrypted(t *testing.T) {
	c, ctx, self := startedManager(t)
	key := overlay.NewKey()
	nw := store.Network{ID: "abcdefghijklmnopqrstuvwxy", Name: "secnet", Subnet: "10.0.1.0/24", VNI: 4097, Key: key}
	if err := store.NewNetworks(c.store).Create(ctx, nw); err != nil {
		t.Fatal(err)
	}
	st, err := c.overlayState(ctx, self)
	if err != nil || len(st.Networks) != 1 {
		t.Fatalf("one network: %+v %v", st, err)
	}
	got := st.Networks[0]
	if !bytes.Equal(got.Key, key) || got.Tap != "shyabcdefghij" || got.VXLAN != "" || got.MTU != overlay.CryptMTU || got.Bridge != "shvabcdefghij" {
		t.Errorf("encrypted network as told to a node: %+v", got)
	}
}
