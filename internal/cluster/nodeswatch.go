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
	seen  uint64 // changes as the list of items began
	// changes counts what may have changed a record: the watch's events,
	// its ends, this manager's writes (wroteNodes). A list is current
	// while changes is still what it was as the list began: a flag set as
	// a list began would let a list that read the records before a change
	// pass for current once a later list had set it again.
	changes atomic.Uint64
	// watching says the watch runs (on a manager, from the last list).
	watching atomic.Bool
}

// reusable is the last list if no record changed since it was read and
// it is not behind what the cache holds (cacheRev), for at most relistEvery.
func (l *nodesList) reusable(cacheRev int64) ([]store.Item[Node], int64, bool) {
	l.mu.Lock()
	items, rev, at, seen := l.items, l.rev, l.at, l.seen
	l.mu.Unlock()
	ok := items != nil && l.watching.Load() && seen == l.changes.Load() && rev >= cacheRev && time.Since(at) < relistEvery
	return items, rev, ok
}

// keep makes items, listed at rev from changes seen, the last list unless
// a list of a later revision was kept meanwhile.
func (l *nodesList) keep(items []store.Item[Node], rev int64, seen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if rev >= l.rev {
		l.items, l.rev, l.at, l.seen = items, rev, time.Now(), seen
	}
}

// wroteNodes says this manager wrote (or tried to write) a node record:
// the next read lists, not waiting for the watch's event to say so.
func (c *Cluster) wroteNodes() { c.listed.changes.Add(1) }

// listNodes lists the node records. With reuse it returns the last list
// instead when no record changed since it was read, and it reflects what
// this manager has cached (cacheJoined), for at most relistEvery.
func (c *Cluster) listNodes(ctx context.Context, reuse bool) ([]store.Item[Node], int64, error) {
	l := &c.listed
	if reuse {
		c.mu.Lock()
		cacheRev := c.cacheRev
		c.mu.Unlock()
		if items, rev, ok := l.reusable(cacheRev); ok {
			return items, rev, nil
		}
	}
	// Read before the list: a change the list misses comes after it, and
	// its watch event counts it.
	seen := l.changes.Load()
	items, rev, err := c.nodes.List(ctx)
	if err != nil {
		return nil, 0, err
	}
	l.keep(items, rev, seen)
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
				l.changes.Add(1)
				if ch.Err != nil {
					break
				}
			}
			cancel()
			l.watching.Store(false)
			// The watch ended (no leader, a compacted revision): passes
			// list until it runs again, from the list they read.
			l.changes.Add(1)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
