package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
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
