package cluster

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
)

// startedManager is a one-manager cluster, started but not run (its own
// agent would plumb the test machine's kernel), closed when t ends, and
// its own node's record.
func startedManager(t *testing.T) (*Cluster, context.Context, Node) {
	t.Helper()
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
	t.Cleanup(func() { c.Close() })
	self, err := c.nodes.Get(ctx, c.NodeID())
	if err != nil {
		t.Fatal(err)
	}
	return c, ctx, self.Value
}

// TestOverlayState checks what a node is told of the cluster networks.
func TestOverlayState(t *testing.T) {
	c, ctx, self := startedManager(t)
	st, err := c.overlayState(ctx, self)
	if err != nil || len(st.Networks) != 0 || len(st.Managers) != 1 {
		t.Fatalf("no networks: %+v %v", st, err)
	}
	nw := store.Network{ID: "abcdefghijklmnopqrstuvwxy", Name: "appnet", Subnet: "10.0.1.0/24", VNI: 4097, Slots: map[string]int{c.NodeID(): 1}}
	if err := store.NewNetworks(c.store).Create(ctx, nw); err != nil {
		t.Fatal(err)
	}
	// The nodes' calls are answered from networks read at most networksTTL ago.
	eventually(t, 10*time.Second, "the new network in the overlay state", func() error {
		st, err = c.overlayState(ctx, self)
		if err != nil || len(st.Networks) != 1 {
			return fmt.Errorf("one network: %+v %v", st, err)
		}
		return nil
	})
	want := overlay.Network{ID: nw.ID, Name: "appnet", VNI: 4097, Bridge: "shvabcdefghij", VXLAN: "shxabcdefghij", MTU: overlay.MTU,
		Local: "127.0.0.1", Peers: []string{"127.0.0.1"}, Gateway: "10.0.1.17", Records: map[string][]string{}}
	if got := st.Networks[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("network\n%+v\nwant\n%+v", got, want)
	}
	other := self
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

// TestOverlayPruner removes, through the local engine, the network behind
// a cluster network that is gone, and nothing else.
func TestOverlayPruner(t *testing.T) {
	old := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	var deleted []string
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/networks":
			if !strings.Contains(r.URL.Query().Get("filters"), overlay.LabelNetwork) {
				t.Errorf("list without the label filter: %s", r.URL.RawQuery)
			}
			fmt.Fprintf(w, `[{"Id":"e1","Name":"appnet","Created":%q,"Labels":{%q:"n1"}},{"Id":"e2","Name":"gone","Created":%q,"Labels":{%q:"n2"}}]`,
				old, overlay.LabelNetwork, old, overlay.LabelNetwork)
		case r.Method == http.MethodDelete:
			deleted = append(deleted, r.URL.Path)
			w.WriteHeader(http.StatusNoContent)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
		}
	}))
	defer engine.Close()
	cfg := config(t, "w1")
	cfg.Engine = "tcp://" + engine.Listener.Addr().String()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	prune := c.overlayPruner()
	prune(t.Context(), []overlay.Network{{ID: "n1"}})
	if !reflect.DeepEqual(deleted, []string{"/networks/e2"}) {
		t.Errorf("deleted %v, want the network of n2 only", deleted)
	}
	prune(t.Context(), nil) // within prunePeriod: nothing asked
	if len(deleted) != 1 {
		t.Errorf("pruned again at once: %v", deleted)
	}
}
