package cluster

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/store"
)

// Run serves until ctx ends: on every node the tunnels to the managers,
// on managers also the cluster port and the loop that turns node records
// into the engine pool.
func (c *Cluster) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	// The loops are done when Run returns, so that Close does not stop
	// the store under one of their reads.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	errc := make(chan error, 7)             // one per goroutine: none blocks after Run returns
	managers := slices.Clone(c.st.Managers) // runAgents changes them
	tr := c.newNodeCalls(c.nodeTransport()) // tunnelcalls.go
	c.calls.Store(tr)
	defer tr.CloseIdleConnections()
	wg.Go(func() { errc <- c.runAgents(ctx, tr) })
	wg.Go(func() { errc <- c.runOverlay(ctx, managers, tr) })
	if c.IsManager() {
		wg.Go(func() { errc <- c.serve(ctx) })
		wg.Go(func() { errc <- c.syncLoop(ctx) })
		wg.Go(func() { c.watchStore(ctx, errc) })
		wg.Go(func() { errc <- c.watchOverlay(ctx) }) // wake.go
		wg.Go(func() { errc <- c.sendWakes(ctx) })
	}
	select {
	case <-ctx.Done():
		return nil
	case <-c.left:
		return ErrLeft
	case err := <-errc:
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
}

// watchStore reports a fatal error of the store member. A demoted
// manager's member stops once removed and the role change then restarts
// this node as a worker, so the error is reported only if that has not
// happened after a while.
func (c *Cluster) watchStore(ctx context.Context, errc chan<- error) {
	var err error
	select {
	case err = <-c.store.Err():
	case <-ctx.Done():
		return
	}
	c.log.Warn("cluster: store stopped", "err", err)
	select {
	case <-time.After(3 * selfPeriod):
		errc <- err
	case <-ctx.Done():
	}
}

// tunnelSyncGap is the least time between two sync passes that tunnels
// coming and going start: many nodes connecting at once (a cluster
// starting, nodes joining) make one pass per gap, not one each.
const tunnelSyncGap = 200 * time.Millisecond

// syncWait is how long a pass a tunnel change starts waits, the last pass
// having begun at last.
func syncWait(last, now time.Time) time.Duration {
	return max(0, tunnelSyncGap-now.Sub(last))
}

// syncLoop keeps the cache, the pool, availability and revocations in
// step with the store, and notices nodes whose tunnels are gone.
func (c *Cluster) syncLoop(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { c.watchNodes(wctx) }) // nodeswatch.go
	var last time.Time
	for {
		var changed <-chan struct{}
		if c.tunnels != nil {
			changed = c.tunnels.Changed()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-changed:
			if wait := syncWait(last, time.Now()); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		c.syncPass(ctx, true)
		c.lifetime.Store(int64(c.certLifetime(ctx)))
		c.followRoot(ctx)
		c.syncSecrets(ctx)
		c.noteSelfInputs() // wake.go
	}
}

// syncOnce reads the node records and the revoked list and applies them.
func (c *Cluster) syncOnce(ctx context.Context) { c.syncPass(ctx, false) }

// syncPass is syncOnce; with reuse it takes the node records as last
// listed if none changed since (listNodes).
func (c *Cluster) syncPass(ctx context.Context, reuse bool) {
	items, rev, err := c.listNodes(ctx, reuse)
	if err != nil {
		c.log.Warn("cluster: read nodes", "err", err)
		return
	}
	revoked := c.revokedIDs(ctx)
	c.root.Revocations().Replace(revoked)
	for _, id := range revoked {
		c.tunnels.Disconnect(id)
	}
	cache := make(map[string]Node, len(items))
	for _, it := range items {
		cache[it.ID] = it.Value
	}
	c.mu.Lock()
	if rev < c.cacheRev {
		// A pass that read the records before another pass (say the one a
		// node update makes before it answers) must not undo what that
		// pass applied: a label just added would vanish from placement.
		c.mu.Unlock()
		return
	}
	old := c.cache
	c.cache, c.cacheRev, c.cacheVersion = cache, rev, nodesVersion(items)
	c.wake.noteRecords(old, cache) // wake.go
	c.mgrAddrs, c.peerAddrList = c.managerAddrsLocked(), c.peerAddrsLocked()
	for _, p := range c.tunnels.Connected() {
		c.lastSeen[p.Identity.NodeID] = time.Now()
	}
	c.mu.Unlock()
	c.updatePool(items)
}

// updatePool makes the pool's engines the nodes' tunnels, with their availability.
func (c *Cluster) updatePool(items []store.Item[Node]) {
	p := c.cfg.Pool
	if p == nil {
		return
	}
	addrs := make([]string, 0, len(items))
	for _, it := range items {
		addrs = append(addrs, "tunnel://"+it.ID)
	}
	p.Update(addrs)
	engines := c.enginesByNode()
	for _, it := range items {
		p.SetAvailability("tunnel://"+it.ID, it.Value.Availability)
		c.nameOf(it.ID, engines[it.ID]) // remembered for when the engine is unreachable
	}
}

// ready says whether a node's tunnel is up or was up within DownAfter.
func (c *Cluster) ready(id string, now time.Time) bool {
	return c.connectedIDs()[id] || c.seenRecently(id, now)
}

// seenRecently says whether a node whose tunnel is down was up within DownAfter.
func (c *Cluster) seenRecently(id string, now time.Time) bool {
	c.mu.Lock()
	seen, ok := c.lastSeen[id]
	c.mu.Unlock()
	return recentlySeen(seen, ok, id == c.st.NodeID, c.started, now, c.cfg.DownAfter)
}

// recentlySeen says whether a node whose tunnel is down now still counts
// as Ready: seen within downAfter. A manager that just started has seen
// nobody yet; it counts itself as seen at its start (so it is Ready while
// its own agent connects), every other node as Down until its tunnel is up.
func recentlySeen(seen time.Time, ok, self bool, started, now time.Time, downAfter time.Duration) bool {
	if !ok {
		if !self {
			return false
		}
		seen = started
	}
	return now.Sub(seen) < downAfter
}
