package cluster

import (
	"reflect"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
)

// TestOverlayState checks what a node is told of the cluster networks. The
// manager is started but not run: its own agent would plumb the test
// machine's kernel.
func TestOverlayState(t *testing.T) {
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
	st, err := c.overlayState(ctx, self.Value)
	if err != nil || len(st.Networks) != 0 || len(st.Managers) != 1 {
		t.Fatalf("no networks: %+v %v", st, err)
	}
	nw := store.Network{ID: "abcdefghijklmnopqrstuvwxy", Name: "appnet", Subnet: "10.0.1.0/24", VNI: 4097, Slots: map[string]int{c.NodeID(): 1}}
	if err := store.NewNetworks(c.store).Create(ctx, nw); err != nil {
		t.Fatal(err)
	}
	st, err = c.overlayState(ctx, self.Value)
	if err != nil || len(st.Networks) != 1 {
		t.Fatalf("one network: %+v %v", st, err)
	}
	want := overlay.Network{ID: nw.ID, Name: "appnet", VNI: 4097, Bridge: "shvabcdefghij", VXLAN: "shxabcdefghij", MTU: overlay.MTU,
		Local: "127.0.0.1", Peers: []string{"127.0.0.1"}, Gateway: "10.0.1.17", Records: map[string][]string{}}
	if got := st.Networks[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("network\n%+v\nwant\n%+v", got, want)
	}
	other := self.Value
	other.ID = "someothernode"
	if st, _ := c.overlayState(ctx, other); st.Networks[0].Gateway != "" {
		t.Errorf("a node without a share has gateway %q", st.Networks[0].Gateway)
	}
}

func TestServiceAliases(t *testing.T) {
	var web, db store.Service
	web.Spec.Name = "web"
	web.Spec.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: "n1", Aliases: []string{"front", "www"}}, {Target: "other", Aliases: []string{"x"}}}
	db.Spec.Name = "db"
	db.Spec.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: "appnet", Aliases: []string{"database"}}}
	got := serviceAliases([]store.Service{web, db}, store.Network{ID: "n1", Name: "appnet"})
	want := map[string][]string{"web": {"front", "www"}, "db": {"database"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("aliases %v, want %v", got, want)
	}
}
