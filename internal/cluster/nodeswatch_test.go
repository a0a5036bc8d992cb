package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-dev/shoal/internal/cluster/nodeapi"
	"github.com/shoal-dev/shoal/internal/store"
)

// The sync loop reuses its list of the node records while none changes,
// and a record changed by another manager's write (straight to the
// store, no pass of this manager after it) reaches the cache through the
// watch within a pass or two, long before relistEvery.
func TestSyncLoopListsOnlyChangedRecords(t *testing.T) {
	m := initManager(t, "mgr")
	ctx := ctxT(t, 90*time.Second)
	listedAt := func() time.Time {
		m.listed.mu.Lock()
		defer m.listed.mu.Unlock()
		return m.listed.at
	}
	// The loop passes every second: three passes with no list between.
	eventually(t, 40*time.Second, "three loop passes reusing the list", func() error {
		at := listedAt()
		time.Sleep(3200 * time.Millisecond)
		if now := listedAt(); at.IsZero() || !now.Equal(at) {
			return fmt.Errorf("listed at %v, then at %v", at, now)
		}
		return nil
	})

	id := m.NodeID()
	if err := m.nodes.Modify(ctx, id, func(cur Node, exists bool) (Node, error) {
		if !exists {
			return cur, errors.New("no record")
		}
		cur.Labels = map[string]string{"written": "elsewhere"}
		return cur, nil
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, 10*time.Second, "the change in the cache", func() error {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.cache[id].Labels["written"] != "elsewhere" {
			return errors.New("not yet")
		}
		return nil
	})
	t.Logf("a record written elsewhere reached the cache after %v", time.Since(start).Round(time.Millisecond))

	// A pass that reuses never goes back behind what this manager cached
	// of a join (cacheJoined's revision): it lists.
	m.listed.mu.Lock()
	rev := m.listed.rev
	m.listed.mu.Unlock()
	m.cacheJoined(Node{ID: "joined"}, rev+1000)
	m.syncPass(context.Background(), true)
	m.listed.mu.Lock()
	defer m.listed.mu.Unlock()
	if !m.listed.at.After(start) {
		t.Error("a pass behind the cache's revision reused the old list")
	}
}

// A list that read the records before a change is not reused once kept,
// even when a list begun after the change is still reading (it set a
// "current" flag again that the change's event had cleared); nor is a
// list while the watch does not run.
func TestNodesListReadBeforeChangeNotReused(t *testing.T) {
	var l nodesList
	l.watching.Store(true)
	l.keep([]store.Item[Node]{{ID: "a", Revision: 5}}, 10, l.changes.Load())
	if _, rev, ok := l.reusable(0); !ok || rev != 10 {
		t.Fatalf("a list with no change since: reused %v at %d", ok, rev)
	}

	seenA := l.changes.Load() // list A begins: it reads revision 11
	l.changes.Add(1)          // the event of a change at 12
	seenB := l.changes.Load() // list B begins: it reads revision 12
	l.keep([]store.Item[Node]{{ID: "a", Revision: 11}}, 11, seenA)
	if _, rev, ok := l.reusable(0); ok {
		t.Fatalf("the list read before the change (revision %d) is reused", rev)
	}
	l.keep([]store.Item[Node]{{ID: "a", Revision: 12}}, 12, seenB)
	if _, rev, ok := l.reusable(0); !ok || rev != 12 {
		t.Fatalf("the list read after the change: reused %v at %d", ok, rev)
	}
	l.keep([]store.Item[Node]{{ID: "a", Revision: 11}}, 11, seenB) // an older list, kept late
	if _, rev, ok := l.reusable(0); !ok || rev != 12 {
		t.Fatalf("an older list replaced the newer: reused %v at %d", ok, rev)
	}
	if _, _, ok := l.reusable(13); ok {
		t.Error("a list behind the cache's revision is reused")
	}
	l.watching.Store(false)
	if _, _, ok := l.reusable(0); ok {
		t.Error("a list is reused while the watch does not run")
	}
}

// A read of the node list right after this manager wrote a record (here
// recordTLS, which no sync pass follows) shows the write, before the
// watch's event for it comes: the watch is made to run and say nothing.
func TestNodeReadAfterOwnWrite(t *testing.T) {
	cfg := config(t, "mgr")
	cfg.Init = true
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 60*time.Second)
	if err := c.Start(ctx); err != nil { // no Run: no watch, no sync loop
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.listed.watching.Store(true) // a watch yet to deliver anything
	a, _, err := c.listNodes(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := c.listNodes(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) == 0 || &a[0] != &b[0] {
		t.Fatal("the list was not reused with no change: the test shows nothing")
	}

	id := c.NodeID()
	c.recordTLS(ctx, id, &nodeapi.NodeTLS{TrustDigest: "written"})
	recs, err := c.records(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ID == id && (r.TLS == nil || r.TLS.TrustDigest != "written") {
			t.Errorf("node ls after this manager's write shows TLS %+v", r.TLS)
		}
	}

	// The sync loop's next pass does not take the cache back to before it.
	c.syncPass(ctx, true)
	c.mu.Lock()
	got := c.cache[id].TLS
	c.mu.Unlock()
	if got == nil || got.TrustDigest != "written" {
		t.Errorf("the cache after a pass: TLS %+v", got)
	}
}

// A label a second manager writes (docker node update there) reaches the
// first manager's node ls and node inspect, whose reads reuse their list
// while the watch sees no change; and an update there with the version
// that inspect gave is not out of sequence.
func TestNodeUpdateOnOtherManagerSeen(t *testing.T) {
	m1 := initManager(t, "m1")
	ctx := ctxT(t, 90*time.Second)
	sw, err := m1.Swarm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m2 := mustStart(t, joinCfg(t, m1, "m2", sw.JoinTokens.Manager))
	id := m1.NodeID()
	var version uint64
	eventually(t, 30*time.Second, "m2 sees m1's record and m1 reuses its list", func() error {
		if _, err := m2.Node(ctx, id); err != nil {
			return err
		}
		n, err := m1.Node(ctx, id)
		if err != nil {
			return err
		}
		version = n.Version.Index
		if _, _, ok := m1.listed.reusable(0); !ok {
			return errors.New("m1 lists every read")
		}
		return nil
	})

	spec := swarm.NodeSpec{Role: swarm.NodeRoleManager, Availability: swarm.NodeAvailabilityActive, Annotations: swarm.Annotations{Labels: map[string]string{"from": "m2"}}}
	if err := m2.UpdateNode(ctx, id, version, spec); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, 10*time.Second, "m1's node ls shows m2's update", func() error {
		nodes, err := m1.Nodes(ctx)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.ID == id && n.Spec.Labels["from"] == "m2" {
				version = n.Version.Index
				return nil
			}
		}
		return errors.New("not yet")
	})
	t.Logf("m1's node ls showed m2's update after %v", time.Since(start).Round(time.Millisecond))
	spec.Labels["from"] = "m1"
	if err := m1.UpdateNode(ctx, id, version, spec); err != nil {
		t.Fatalf("update on m1 with the version its node ls gave: %v", err)
	}
	n, err := m1.Node(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.Labels["from"] != "m1" || n.Version.Index <= version {
		t.Errorf("m1's node inspect after its own update: labels %v, version %d (was %d)", n.Spec.Labels, n.Version.Index, version)
	}
}
