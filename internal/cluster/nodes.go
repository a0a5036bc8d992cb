package cluster

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-dev/shoal/internal/cluster/nodeapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/store"
)

// ErrOutOfSequence is a node or swarm update whose version is not the
// current one (swarm mode's words).
var ErrOutOfSequence = nodeapi.ErrOutOfSequence

// records returns the node records from this manager's copy: the last
// list read, while the watch on the records has seen no change since.
func (c *Cluster) records(ctx context.Context) ([]Node, error) {
	items, _, err := c.listNodes(ctx, true) // nodeswatch.go
	if err != nil {
		return nil, err
	}
	out := make([]Node, len(items))
	for i, it := range items {
		out[i] = it.Value
	}
	return out, nil
}

// Nodes lists every node as swarm mode does. It is called every second
// (the orchestrator's node digest), so it looks at the tunnels, the pool
// and the roots once for all nodes, not once per node.
func (c *Cluster) Nodes(ctx context.Context) ([]swarm.Node, error) {
	recs, err := c.records(ctx)
	if err != nil {
		return nil, err
	}
	v := c.observe(ctx, time.Now())
	out := make([]swarm.Node, 0, len(recs))
	for _, r := range recs {
		out = append(out, c.swarmNode(r, v))
	}
	nodeapi.Sort(out)
	return out, nil
}

// Node finds a node by ID, unique ID prefix or hostname.
func (c *Cluster) Node(ctx context.Context, ref string) (*swarm.Node, error) {
	r, err := c.find(ctx, ref)
	if err != nil {
		return nil, err
	}
	n := c.swarmNode(r, c.observe(ctx, time.Now()))
	return &n, nil
}

func (c *Cluster) find(ctx context.Context, ref string) (Node, error) {
	recs, err := c.records(ctx)
	if err != nil {
		return Node{}, err
	}
	engines := c.enginesByNode()
	return nodeapi.Find(recs, ref, func(id string) string { return c.nameOf(id, engines[id]) })
}

// members maps store member names (node IDs) to their status.
func (c *Cluster) members(ctx context.Context) map[string]nodeapi.Member {
	ms, err := c.store.Members(ctx)
	out := map[string]nodeapi.Member{}
	if err != nil {
		return out
	}
	for _, m := range ms {
		out[m.Name] = nodeapi.Member{Learner: m.Learner, Leader: m.Leader, Reachable: m.Reachable}
	}
	return out
}

// observation is what a manager sees of all nodes at one instant: the
// store members, the connected tunnels, the pool's engines by node ID and
// the roots, each gathered once.
type observation struct {
	now       time.Time
	members   map[string]nodeapi.Member
	connected map[string]bool
	engines   map[string]*engine.Engine
	roots     map[string]string
	rootPEM   string
}

func (c *Cluster) observe(ctx context.Context, now time.Time) observation {
	return observation{now: now, members: c.members(ctx), connected: c.connectedIDs(), engines: c.enginesByNode(),
		roots: c.knownRoots(), rootPEM: string(c.root.CertPEM())}
}

// connectedIDs are the nodes whose tunnel to this manager is up.
func (c *Cluster) connectedIDs() map[string]bool {
	peers := c.tunnels.Connected()
	out := make(map[string]bool, len(peers))
	for _, p := range peers {
		out[p.Identity.NodeID] = true
	}
	return out
}

// enginesByNode are the pool's engines by node ID (tunnel://<ID>).
func (c *Cluster) enginesByNode() map[string]*engine.Engine {
	if c.cfg.Pool == nil {
		return nil
	}
	engines := c.cfg.Pool.Engines()
	out := make(map[string]*engine.Engine, len(engines))
	for _, e := range engines {
		if id, ok := strings.CutPrefix(e.Addr, "tunnel://"); ok {
			out[id] = e
		}
	}
	return out
}

// nameOf is the hostname node id's engine e (nil if none) reports, if
// known: the last one it reported while it is unreachable.
func (c *Cluster) nameOf(id string, e *engine.Engine) string {
	if e != nil {
		if info := e.Info(); info != nil && info.Name != "" {
			c.mu.Lock()
			c.names[id] = info.Name
			c.mu.Unlock()
			return info.Name
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.names[id]
}

// swarmNode is a record with what this manager observes of the node.
func (c *Cluster) swarmNode(r Node, v observation) swarm.Node {
	e := v.engines[r.ID]
	ready := !r.Left && (v.connected[r.ID] || c.seenRecently(r.ID, v.now))
	o := nodeapi.Observed{Ready: ready, EngineName: c.nameOf(r.ID, e), TLS: nodeapi.TLSInfo(r.TLS, v.roots, v.rootPEM)}
	// A node that just joined (or reconnected to a manager that just
	// started) is up before the pool has reached its engine, which takes
	// no task until then: Ready would have a `service create` made right
	// after `node ls` showed it place every task on the other nodes.
	o.Contacting = ready && c.cfg.Pool != nil && (e == nil || engineState(e) == engine.Pending)
	if e != nil {
		if o.Info = e.Info(); o.Info != nil {
			o.EngineVersion, _ = e.Version()
		}
	}
	if m, ok := v.members[r.ID]; ok {
		o.Member = &m
	}
	return nodeapi.ToSwarm(r, o)
}

// NodeLabels returns the node labels of the engine at addr ("tunnel://<ID>").
func (c *Cluster) NodeLabels(addr string) map[string]string {
	id, ok := strings.CutPrefix(addr, "tunnel://")
	if !ok {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cache[id].Labels
}

// UpdateNode applies a node spec (role, availability, labels) if version
// is the node's current one.
func (c *Cluster) UpdateNode(ctx context.Context, ref string, version uint64, spec swarm.NodeSpec) error {
	n, err := c.find(ctx, ref)
	if err != nil {
		return err
	}
	if err := nodeapi.CheckSpec(spec); err != nil {
		return err
	}
	demote := nodeapi.IsDemotion(n, spec)
	if demote {
		if err := c.canDemote(ctx, n.ID); err != nil {
			return err
		}
	}
	if err := c.writeSpec(ctx, n.ID, ref, version, spec); err != nil {
		return err
	}
	switch {
	case demote:
		c.leaveStore(ctx, n)
	case nodeapi.IsPromotion(n, spec):
		c.log.Info("node promoted", "node", n.ID, "hostname", n.Hostname)
	}
	c.syncOnce(ctx)
	return nil
}

func (c *Cluster) writeSpec(ctx context.Context, id, ref string, version uint64, spec swarm.NodeSpec) error {
	return c.write(ctx, func(ctx context.Context) error {
		return c.nodes.Modify(ctx, id, func(cur Node, exists bool) (Node, error) {
			if !exists {
				return cur, nodeapi.NotFound(ref)
			}
			return nodeapi.Apply(cur, version, spec, time.Now())
		})
	})
}

// leaveStore removes a demoted manager's store member now (a leader hands
// leadership over first); should that fail, the node itself retries when
// it sees its record, then takes a worker certificate.
func (c *Cluster) leaveStore(ctx context.Context, n Node) {
	if err := c.store.RemoveMember(ctx, n.ID); err != nil && !errors.Is(err, store.ErrNoMember) {
		c.log.Warn("demote: remove store member", "node", n.ID, "err", err)
		return
	}
	c.log.Info("node demoted", "node", n.ID, "hostname", n.Hostname)
}

// canDemote refuses, as swarm mode does, to demote the last manager or a
// manager whose leaving would cost the store its quorum.
func (c *Cluster) canDemote(ctx context.Context, id string) error {
	recs, err := c.records(ctx)
	if err != nil {
		return err
	}
	return nodeapi.CanDemote(recs, c.members(ctx), id)
}

// RemoveNode removes a node and revokes its certificate, so its agent
// cannot connect again. A Ready node needs force; a manager must be
// demoted first.
func (c *Cluster) RemoveNode(ctx context.Context, ref string, force bool) error {
	n, err := c.find(ctx, ref)
	if err != nil {
		return err
	}
	if err := nodeapi.CanRemove(n, ref, c.st.NodeID, !n.Left && c.ready(n.ID, time.Now()), force); err != nil {
		return err
	}
	if err := c.write(ctx, func(ctx context.Context) error { return c.revoke(ctx, n.ID) }); err != nil {
		return err
	}
	if err := c.write(ctx, func(ctx context.Context) error { return c.nodes.Delete(ctx, n.ID) }); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	c.root.Revocations().Revoke(n.ID)
	c.tunnels.Disconnect(n.ID)
	c.syncOnce(ctx)
	c.log.Info("node removed", "node", n.ID, "hostname", n.Hostname)
	return nil
}

func engineState(e *engine.Engine) engine.State {
	st, _ := e.State()
	return st
}
