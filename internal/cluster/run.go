package cluster

import (
	"context"
	"encoding/json"
	"time"

	"github.com/shoal-dev/shoal/internal/store"
)

// Run serves until ctx ends: on every node the tunnels to the managers,
// on managers also the cluster port and the loop that turns node records
// into the engine pool.
func (c *Cluster) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	go func() { errc <- c.runAgents(ctx) }()
	if c.IsManager() {
		go func() { errc <- c.serve(ctx) }()
		go func() { errc <- c.syncLoop(ctx) }()
		go func() {
			select {
			case err := <-c.store.Err():
				// A demoted manager's member stops once removed; the role
				// change then restarts this node as a worker. Otherwise the
				// error ends the node.
				c.log.Warn("cluster: store stopped", "err", err)
				select {
				case <-time.After(3 * selfPeriod):
					errc <- err
				case <-ctx.Done():
				}
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
}

// syncLoop keeps the cache, the pool, availability and revocations in
// step with the store, and notices nodes whose tunnels are gone.
func (c *Cluster) syncLoop(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
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
		}
		c.syncOnce(ctx)
	}
}

func (c *Cluster) syncOnce(ctx context.Context) {
	now := time.Now()
	items, _, err := c.nodes.List(ctx)
	if err != nil {
		c.log.Warn("cluster: read nodes", "err", err)
		return
	}
	var revoked revokedRecord
	if kv, err := c.store.Get(ctx, store.PrefixCA+"revoked"); err == nil {
		_ = json.Unmarshal(kv.Value, &revoked)
	}
	c.root.Revocations().Replace(revoked.IDs)
	for _, id := range revoked.IDs {
		c.tunnels.Disconnect(id)
	}
	cache := make(map[string]Node, len(items))
	addrs := make([]string, 0, len(items))
	for _, it := range items {
		cache[it.ID] = it.Value
		addrs = append(addrs, "tunnel://"+it.ID)
	}
	c.mu.Lock()
	c.cache = cache
	for _, p := range c.tunnels.Connected() {
		c.lastSeen[p.Identity.NodeID] = now
	}
	c.revoked = map[string]bool{}
	for _, id := range revoked.IDs {
		c.revoked[id] = true
	}
	c.mu.Unlock()
	if p := c.cfg.Pool; p != nil {
		p.Update(addrs)
		for _, it := range items {
			p.SetAvailability("tunnel://"+it.ID, it.Value.Availability)
			c.engineName(it.ID) // remembered for when the engine is unreachable
		}
	}
}

// ready says whether a node's tunnel is up or was up within DownAfter
// (a manager that just started gives every node that long).
func (c *Cluster) ready(id string, now time.Time) bool {
	c.mu.Lock()
	seen, ok := c.lastSeen[id]
	c.mu.Unlock()
	for _, p := range c.tunnels.Connected() {
		if p.Identity.NodeID == id {
			return true
		}
	}
	if !ok {
		seen = c.started
		if id != c.st.NodeID {
			return false
		}
	}
	return now.Sub(seen) < c.cfg.DownAfter
}
