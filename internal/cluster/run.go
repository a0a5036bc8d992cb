package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/agent"
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

// ---------------------------------------------------------------- node side

// runAgents keeps one tunnel to each manager, learning the manager list
// from the managers themselves.
func (c *Cluster) runAgents(ctx context.Context) error {
	running := map[string]context.CancelFunc{}
	defer func() {
		for _, cancel := range running {
			cancel()
		}
	}()
	tlsConf := c.root.ClientTLSConfig(c.kp)
	tlsConf.NextProtos = []string{protoTunnel}
	apply := func(managers []string) {
		for _, addr := range managers {
			if running[addr] != nil {
				continue
			}
			n, err := agent.NewNode(agent.NodeConfig{
				Managers: []string{addr}, TLS: tlsConf, DialEngine: c.engineDialer(),
				Timing: c.cfg.Timing, MaxBackoff: 2 * time.Second, Logger: c.log,
			})
			if err != nil {
				c.log.Error("cluster: agent", "manager", addr, "err", err)
				continue
			}
			actx, cancel := context.WithCancel(ctx)
			running[addr] = cancel
			go n.Run(actx)
		}
		for addr, cancel := range running {
			if !slices.Contains(managers, addr) {
				cancel()
				delete(running, addr)
			}
		}
	}
	apply(c.st.Managers)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c.httpTLS()}}
	defer hc.CloseIdleConnections()
	t := time.NewTicker(selfPeriod)
	defer t.Stop()
	renewT := time.NewTimer(c.renewIn())
	defer renewT.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-renewT.C:
			next := 2 * time.Second // retry soon after a failure
			if err := c.renew(ctx, hc); err != nil {
				c.log.Warn("cluster: certificate renewal", "err", err)
			} else {
				next = c.renewIn()
			}
			renewT.Reset(next)
			continue
		case <-t.C:
		}
		self, err := c.fetchSelf(ctx, hc)
		if err != nil {
			c.log.Debug("cluster: own record", "err", err)
			continue
		}
		if self.Role != c.st.Role && (self.Role == RoleManager || self.Role == RoleWorker) {
			c.log.Info("cluster: role change", "from", c.st.Role, "to", self.Role)
			if err := c.changeRole(ctx, hc, self.Role); err != nil {
				c.log.Warn("cluster: role change", "to", self.Role, "err", err)
				continue
			}
			return ErrRoleChanged
		}
		managers := self.Managers
		if len(managers) == 0 {
			continue
		}
		if !slices.Equal(managers, c.st.Managers) {
			c.log.Info("cluster: managers changed", "managers", managers)
			c.st.Managers = managers
			_ = c.saveState()
		}
		apply(managers)
	}
}

// httpTLS is the client side of the cluster port's HTTP calls with this
// node's certificate.
func (c *Cluster) httpTLS() *tls.Config {
	conf := c.root.ClientTLSConfig(c.kp)
	conf.NextProtos = []string{"http/1.1"}
	return conf
}

// engineDialer reaches the local engine: a unix socket or tcp address.
func (c *Cluster) engineDialer() func(ctx context.Context) (net.Conn, error) {
	network, address := "unix", strings.TrimPrefix(c.cfg.Engine, "unix://")
	if strings.HasPrefix(c.cfg.Engine, "tcp://") || !strings.Contains(c.cfg.Engine, "://") && !strings.HasPrefix(c.cfg.Engine, "/") {
		network, address = "tcp", strings.TrimPrefix(c.cfg.Engine, "tcp://")
	}
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
}
