package manager

import (
	"context"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
)

// Cluster is the built-in cluster (internal/cluster) as the manager uses
// it: the node records behind swarm mode's node API. It is nil in classic
// `shoal manage` mode, where every engine of the pool is shown as a node.
type Cluster interface {
	Nodes(ctx context.Context) ([]swarm.Node, error)
	Node(ctx context.Context, ref string) (*swarm.Node, error)
	UpdateNode(ctx context.Context, ref string, version uint64, spec swarm.NodeSpec) error
	RemoveNode(ctx context.Context, ref string, force bool) error
	Swarm(ctx context.Context) (*swarm.Swarm, error)
	UpdateSwarm(ctx context.Context, u backend.SwarmUpdate) error
	SwarmInfo(ctx context.Context) swarm.Info
	LeaveSwarm(ctx context.Context, force bool) error
	// NodeLabels are the node labels of the engine at addr; the scheduler
	// sees them as "node.labels.<key>".
	NodeLabels(addr string) map[string]string
}

// errNotSwarm is dockerd's answer to node and swarm calls outside a swarm.
var errNotSwarm = errdefs.ErrUnavailable.WithMessage(`This node is not a swarm manager. Use "shoal init" or "shoal join" to connect this node to a cluster and try again.`)

// Swarm describes the built-in cluster.
func (m *Manager) Swarm(ctx context.Context) (*swarm.Swarm, error) {
	if m.cfg.Cluster == nil {
		return nil, errNotSwarm
	}
	return m.cfg.Cluster.Swarm(ctx)
}

// UpdateSwarm applies swarm update: the CA settings, join token and CA rotations.
func (m *Manager) UpdateSwarm(ctx context.Context, u backend.SwarmUpdate) error {
	if m.cfg.Cluster == nil {
		return errNotSwarm
	}
	return m.cfg.Cluster.UpdateSwarm(ctx, u)
}

// UpdateNode changes a node's role, availability or labels.
func (m *Manager) UpdateNode(ctx context.Context, ref string, version uint64, spec swarm.NodeSpec) error {
	if m.cfg.Cluster == nil {
		return errNotSwarm
	}
	return m.cfg.Cluster.UpdateNode(ctx, ref, version, spec)
}

// RemoveNode removes a node from the cluster and revokes its certificate.
func (m *Manager) RemoveNode(ctx context.Context, ref string, force bool) error {
	if m.cfg.Cluster == nil {
		return errNotSwarm
	}
	return m.cfg.Cluster.RemoveNode(ctx, ref, force)
}

// LeaveSwarm makes this manager leave the built-in cluster.
func (m *Manager) LeaveSwarm(ctx context.Context, force bool) error {
	if m.cfg.Cluster == nil {
		return errNotSwarm
	}
	return m.cfg.Cluster.LeaveSwarm(ctx, force)
}

// SwarmStatus is what /_ping says of the cluster: ("active", true) on a
// manager of the built-in cluster, ("inactive", false) otherwise.
func (m *Manager) SwarmStatus() (state string, manager bool) {
	if m.cfg.Cluster == nil {
		return string(swarm.LocalNodeStateInactive), false
	}
	return string(swarm.LocalNodeStateActive), true
}

// withNodeLabels adds the cluster's node labels of the engine at addr to
// labels, prefixed "node.labels.", without touching the cached map.
func (m *Manager) withNodeLabels(addr string, labels map[string]string) map[string]string {
	if m.cfg.Cluster == nil {
		return labels
	}
	return withNodeLabels(m.cfg.Cluster.NodeLabels(addr), labels)
}

// withNodeLabels adds node labels nl to labels, prefixed "node.labels.",
// in a new map (labels itself when nl is empty).
func withNodeLabels(nl, labels map[string]string) map[string]string {
	if len(nl) == 0 {
		return labels
	}
	out := make(map[string]string, len(labels)+len(nl))
	for k, v := range labels {
		out[k] = v
	}
	for k, v := range nl {
		out["node.labels."+k] = v
	}
	return out
}
