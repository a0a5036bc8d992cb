package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/internal/store"
)

// TestNodeCallsHeld checks that a manager holds a node's /overlay call
// whose answer the node already has until the answer changes, and that
// the node's transport carries its other calls meanwhile on the same
// connection (HTTP/2): the nodes' polls then cost a call per change or
// per holdMax, not one a second each.
func TestNodeCallsHeld(t *testing.T) {
	defer func(d time.Duration) { holdMax = d }(holdMax)
	holdMax = time.Minute // longer than the test: a call answered was not held to its end
	c, ctx, _ := startedManager(t)
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- c.serve(sctx) }()
	t.Cleanup(func() { stop(); <-served })
	waitDial(t, c.ClusterAddr())

	tr := c.nodeTransport()
	t.Cleanup(tr.close)
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	base := "https://" + c.ClusterAddr()
	call := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %s %v", path, resp.Status, b, err)
		}
		return resp, b
	}
	resp, _ := call("/overlay")
	if resp.ProtoMajor != 2 {
		t.Fatalf("the node's calls use %s, want HTTP/2 (held calls share the connection)", resp.Proto)
	}
	tag := etag(resp)
	if tag == "" {
		t.Fatal("no ETag on /overlay")
	}
	if again, _ := call("/overlay?wait=other"); etag(again) != tag {
		t.Fatalf("a call waiting on another digest: ETag %q, want %q at once", etag(again), tag)
	}

	type answer struct {
		tag string
		st  overlay.State
	}
	held := make(chan answer, 1)
	go func() {
		resp, b := call("/overlay?wait=" + tag)
		var st overlay.State
		json.Unmarshal(b, &st)
		held <- answer{etag(resp), st}
	}()
	eventually(t, 10*time.Second, "the call held", func() error {
		if n := c.held.Load(); n != 1 {
			return fmt.Errorf("%d calls held", n)
		}
		return nil
	})
	// The node's other calls go on meanwhile, over the same connection.
	self, _ := call("/self")
	if self.ProtoMajor != 2 || etag(self) == "" {
		t.Fatalf("/self while /overlay is held: %s, ETag %q", self.Proto, etag(self))
	}
	select {
	case a := <-held:
		t.Fatalf("the held call was answered before anything changed: %+v", a)
	default:
	}

	nw := store.Network{ID: "abcdefghijklmnopqrstuvwxy", Name: "appnet", Subnet: "10.0.1.0/24", VNI: 4097, Slots: map[string]int{c.NodeID(): 1}}
	if err := store.NewNetworks(c.store).Create(ctx, nw); err != nil {
		t.Fatal(err)
	}
	a := <-held
	if len(a.st.Networks) != 1 || a.tag == tag || a.tag == "" {
		t.Fatalf("held call answered %+v with ETag %q (was %q), want the new network", a.st, a.tag, tag)
	}
	if n := c.held.Load(); n != 0 {
		t.Fatalf("%d calls still held", n)
	}
}
