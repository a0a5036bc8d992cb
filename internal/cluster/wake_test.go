package cluster

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/overlay"
)

// What wakes which of a node's calls when its record changes.
func TestRecordWake(t *testing.T) {
	base := Node{ID: "a", Role: RoleWorker, Addr: "10.0.0.1", Availability: "active"}
	for _, tc := range []struct {
		name string
		edit func(*Node)
		want wakeWhat
	}{
		{"nothing", func(*Node) {}, 0},
		{"labels (the orchestrator's, not the node's)", func(n *Node) { n.Labels = map[string]string{"a": "b"} }, 0},
		{"availability", func(n *Node) { n.Availability = "drain" }, 0},
		{"promoted", func(n *Node) { n.Role = RoleManager }, wakeSelf | wakeOverlay},
		{"left", func(n *Node) { n.Left = true }, wakeSelf | wakeOverlay},
		{"address", func(n *Node) { n.Addr = "10.0.0.2" }, wakeOverlay},
	} {
		cur := base
		tc.edit(&cur)
		if got := recordWake(base, cur); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if w := parseWake(wakeSelf.String() + ",bogus," + wakeOverlay.String()); w != wakeSelf|wakeOverlay {
		t.Errorf("parseWake: %q", w)
	}

	w := newWakes()
	w.noteRecords(nil, map[string]Node{"a": base}) // a first pass knows no one yet
	if all, each := w.take(); all != 0 || len(each) != 0 {
		t.Errorf("first pass queued %q %v", all, each)
	}
	promoted := base
	promoted.Role = RoleManager
	w.noteRecords(map[string]Node{"a": base, "b": {ID: "b"}}, map[string]Node{"a": promoted, "b": {ID: "b"}, "c": {ID: "c"}})
	if all, each := w.take(); all != 0 || len(each) != 1 || each["a"] != wakeSelf|wakeOverlay {
		t.Errorf("after a promotion: %q %v, want a woken for both", all, each)
	}
	select {
	case <-w.signal:
	default:
		t.Error("the sender was not signalled")
	}
}

// The next poll: as before unless the managers wake the node.
func TestNextPoll(t *testing.T) {
	w := newWakes()
	if d := w.nextPoll(selfPeriod, true); d != selfPeriod {
		t.Errorf("managers that do not wake: %s, want %s", d, selfPeriod)
	}
	w.managerWakes.Store(true)
	for range 50 {
		if d := w.nextPoll(selfPeriod, true); d < pollPeriod*3/4 || d > pollPeriod*5/4 {
			t.Fatalf("managers that wake: %s, want about %s", d, pollPeriod)
		}
	}
	if d := w.nextPoll(selfPeriod, false); d != selfPeriod {
		t.Errorf("after a failed call: %s, want %s", d, selfPeriod)
	}
}

// A node's own endpoint: a wake leaves its signals; the rest goes to the
// task files.
func TestNodeLocalWake(t *testing.T) {
	w := newWakes()
	var files atomic.Int64
	h := nodeLocal{files: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { files.Add(1) }), w: w}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, wakePath+"?what=overlay", nil))
	if rec.Code != http.StatusNoContent || len(w.overlay) != 1 || len(w.self) != 0 {
		t.Errorf("wake overlay: %d, signals self %d overlay %d", rec.Code, len(w.self), len(w.overlay))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, wakePath+"?what=self,overlay", nil))
	if len(w.overlay) != 1 || len(w.self) != 1 {
		t.Errorf("wake both: signals self %d overlay %d, want one each", len(w.self), len(w.overlay))
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, wakePath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET wake: %d", rec.Code)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPut, "/_shoal/agent/v1/tasks/abc/files", nil))
	if files.Load() != 1 {
		t.Errorf("a task files call did not reach the files")
	}
}

// The overlay fetcher asks again only when woken or after pollPeriod
// while its managers wake it, and every time while they do not.
func TestOverlayFetcherAsksWhenWoken(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		json.NewEncoder(w).Encode(overlay.State{Networks: []overlay.Network{}})
	}))
	defer srv.Close()
	w := newWakes()
	f := &overlayFetcher{hc: srv.Client(), managers: []string{strings.TrimPrefix(srv.URL, "https://")}, w: w}
	ctx := t.Context()
	fetch := func() {
		t.Helper()
		if _, err := f.fetch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	fetch()
	fetch()
	if n := calls.Load(); n != 2 {
		t.Fatalf("managers that do not wake: %d calls for 2 passes", n)
	}
	w.managerWakes.Store(true)
	f.due = time.Now().Add(-time.Second) // the last answer's overlay.Period passed
	fetch()                              // this answer is used until pollPeriod
	fetch()
	fetch()
	if n := calls.Load(); n != 3 {
		t.Fatalf("managers that wake: %d calls, want 3 (the two passes after an answer use it)", n)
	}
	w.woken(wakeOverlay)
	fetch()
	fetch()
	if n := calls.Load(); n != 4 {
		t.Fatalf("woken once: %d calls, want 4", n)
	}
	f.due = time.Now().Add(-time.Second) // pollPeriod passed
	fetch()
	if n := calls.Load(); n != 5 {
		t.Fatalf("pollPeriod passed: %d calls, want 5", n)
	}
}

// End to end: a worker learns that its manager wakes it, the manager's
// wakes reach it through its tunnel (a record change: that node; a change
// of every answer: all), and the orchestrator's fingerprint of the
// records moves with a record.
func TestManagerWakesNodes(t *testing.T) {
	m := initManager(t, "mgr")
	ctx := ctxT(t, 90*time.Second)
	w := joinWorker(t, ctx, m, "worker1")
	eventually(t, 30*time.Second, "the worker told that its manager wakes it", func() error {
		if !w.wake.managerWakes.Load() {
			return errors.New("not yet")
		}
		return nil
	})
	eventually(t, 30*time.Second, "the worker's tunnel", func() error {
		if !m.connectedIDs()[w.NodeID()] {
			return errors.New("not connected")
		}
		return nil
	})
	// The worker's loops take the signals; what reached its endpoint is counted.
	w.wake.received.Store(0)
	m.sendWakesOnce(ctx, wakeOverlay, nil)
	if g := wakeWhat(w.wake.received.Load()); g != wakeOverlay {
		t.Fatalf("the worker was woken for %q, want overlay", g)
	}

	// A record change that concerns the worker wakes it (and moves the
	// records' fingerprint); a label does not wake it.
	v0 := m.NodesVersion()
	n, err := m.Node(ctx, w.NodeID())
	if err != nil {
		t.Fatal(err)
	}
	spec := n.Spec
	spec.Labels = map[string]string{"zone": "a"}
	if err := m.UpdateNode(ctx, w.NodeID(), n.Version.Index, spec); err != nil {
		t.Fatal(err)
	}
	v1 := m.NodesVersion()
	if v1 == v0 {
		t.Error("a label added left the records' fingerprint as it was")
	}
	m.syncOnce(ctx)
	if v := m.NodesVersion(); v != v1 {
		t.Error("a sync pass that read the same records changed the fingerprint")
	}
	if all, each := m.wake.take(); all != 0 || each[w.NodeID()] != 0 {
		t.Errorf("a label change queued %q %v", all, each)
	}
	// A role change as another manager's write would be seen (the
	// records of two passes): the worker is woken for both calls.
	w.wake.received.Store(0)
	m.wake.noteRecords(map[string]Node{w.NodeID(): {ID: w.NodeID(), Role: RoleWorker}}, map[string]Node{w.NodeID(): {ID: w.NodeID(), Role: RoleManager}})
	all, each := m.wake.take()
	m.sendWakesOnce(ctx, all, each)
	if g := wakeWhat(w.wake.received.Load()); g != wakeSelf|wakeOverlay {
		t.Fatalf("the worker was woken for %q after a role change, want self,overlay", g)
	}
}

// A wake that could not be sent is queued again (a partition that left
// the tunnel up loses it otherwise until the node's next poll).
func TestWakeRetried(t *testing.T) {
	w := newWakes()
	w.retry(t.Context(), "a", wakeOverlay)
	select {
	case <-w.signal:
	case <-time.After(30 * time.Second):
		t.Fatal("a failed wake was not queued again")
	}
	if all, each := w.take(); all != 0 || each["a"] != wakeOverlay {
		t.Errorf("queued again: %q %v, want a's overlay", all, each)
	}
}
