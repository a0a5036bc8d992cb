package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/internal/store"
)

// The sync loop's pass (syncLoop: every second, and on tunnel changes)
// listed every node record from the store, and so did every read of the
// node list (the orchestrator's passes, `docker node ls`): at 1,000 nodes
// ~7 MB decoded a second when nothing had changed, most of what an idle
// manager allocated. They now reuse the last list while a watch on the
// records has seen no change since it was read; the passes that follow
// this manager's own writes (syncOnce) always list.

// relistEvery bounds how long the loop reuses a list with no change seen,
// should the watch ever miss one.
const relistEvery = 30 * time.Second

// nodesList is the node records as last listed.
type nodesList struct {
	mu    sync.Mutex
	items []store.Item[Node] // read-only once listed
	rev   int64              // the store revision of items
	at    time.Time
	// current says no record changed since items were read: set as a
	// list starts, cleared by the watch's events and while it does not run.
	current atomic.Bool
	// watching says the watch runs (on a manager, from the last list).
	watching atomic.Bool
}

// listNodes lists the node records. With reuse it returns the last list
// instead when no record changed since it was read, and it reflects what
// this manager has cached (cacheJoined), for at most relistEvery.
func (c *Cluster) listNodes(ctx context.Context, reuse bool) ([]store.Item[Node], int64, error) {
	l := &c.listed
	if reuse {
		c.mu.Lock()
		cacheRev := c.cacheRev
		c.mu.Unlock()
		l.mu.Lock()
		items, rev, at := l.items, l.rev, l.at
		l.mu.Unlock()
		if items != nil && l.watching.Load() && l.current.Load() && rev >= cacheRev && time.Since(at) < relistEvery {
			return items, rev, nil
		}
	}
	// Set before the read: a change the read misses comes after it, and
	// its watch event clears it again.
	l.current.Store(true)
	items, rev, err := c.nodes.List(ctx)
	if err != nil {
		l.current.Store(false)
		return nil, 0, err
	}
	l.mu.Lock()
	if rev >= l.rev {
		l.items, l.rev, l.at = items, rev, time.Now()
	}
	l.mu.Unlock()
	return items, rev, nil
}

// watchNodes marks the listed records changed whenever the store says one
// changed after the last list, until ctx ends.
func (c *Cluster) watchNodes(ctx context.Context) {
	l := &c.listed
	for ctx.Err() == nil {
		l.mu.Lock()
		from := l.rev
		l.mu.Unlock()
		if from > 0 { // else nothing listed yet: wait for the first list
			wctx, cancel := context.WithCancel(ctx)
			l.watching.Store(true)
			for ch := range c.nodes.Watch(wctx, from+1) {
				l.current.Store(false)
				if ch.Err != nil {
					break
				}
			}
			cancel()
			l.watching.Store(false)
			// The watch ended (no leader, a compacted revision): passes
			// list until it runs again, from the list they read.
			l.current.Store(false)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
