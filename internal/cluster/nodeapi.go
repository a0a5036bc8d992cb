package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/store"
)

// ErrOutOfSequence is a node or swarm update whose version is not the
// current one (swarm mode's words).
var ErrOutOfSequence = errors.New("update out of sequence")

// records returns the node records from this manager's copy.
func (c *Cluster) records(ctx context.Context) ([]store.Item[Node], error) {
	items, _, err := c.nodes.List(ctx)
	return items, err
}

// Nodes lists every node as swarm mode does.
func (c *Cluster) Nodes(ctx context.Context) ([]swarm.Node, error) {
	items, err := c.records(ctx)
	if err != nil {
		return nil, err
	}
	members := c.members(ctx)
	now := time.Now()
	out := make([]swarm.Node, 0, len(items))
	for _, it := range items {
		out = append(out, c.swarmNode(it.Value, members, now))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Description.Hostname != out[j].Description.Hostname {
			return out[i].Description.Hostname < out[j].Description.Hostname
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Node finds a node by ID, unique ID prefix or hostname.
func (c *Cluster) Node(ctx context.Context, ref string) (*swarm.Node, error) {
	it, err := c.find(ctx, ref)
	if err != nil {
		return nil, err
	}
	n := c.swarmNode(it.Value, c.members(ctx), time.Now())
	return &n, nil
}

func (c *Cluster) find(ctx context.Context, ref string) (store.Item[Node], error) {
	items, err := c.records(ctx)
	if err != nil {
		return store.Item[Node]{}, err
	}
	var byPrefix, byName []store.Item[Node]
	for _, it := range items {
		if it.ID == ref {
			return it, nil
		}
		if strings.HasPrefix(it.ID, ref) {
			byPrefix = append(byPrefix, it)
		}
		if it.Value.Hostname == ref || c.engineName(it.ID) == ref {
			byName = append(byName, it)
		}
	}
	switch {
	case len(byName) == 1:
		return byName[0], nil
	case len(byPrefix) == 1:
		return byPrefix[0], nil
	case len(byName) > 1 || len(byPrefix) > 1:
		return store.Item[Node]{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("node %s is ambiguous (%d matches found)", ref, max(len(byName), len(byPrefix))))
	}
	return store.Item[Node]{}, errdefs.ErrNotFound.WithMessage("node " + ref + " not found")
}

// members maps store member names (node IDs) to their status.
func (c *Cluster) members(ctx context.Context) map[string]store.Member {
	ms, err := c.store.Members(ctx)
	out := map[string]store.Member{}
	if err != nil {
		return out
	}
	for _, m := range ms {
		out[m.Name] = m
	}
	return out
}

func (c *Cluster) engineOf(id string) *engine.Engine {
	if c.cfg.Pool == nil {
		return nil
	}
	for _, e := range c.cfg.Pool.Engines() {
		if e.Addr == "tunnel://"+id {
			return e
		}
	}
	return nil
}

// engineName is the hostname the node's engine reports, if known: the
// last one it reported while it is unreachable.
func (c *Cluster) engineName(id string) string {
	if e := c.engineOf(id); e != nil {
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

func (c *Cluster) swarmNode(r Node, members map[string]store.Member, now time.Time) swarm.Node {
	n := swarm.Node{
		ID:   r.ID,
		Meta: swarm.Meta{Version: swarm.Version{Index: r.Version}, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt},
		Spec: swarm.NodeSpec{
			Role:         swarm.NodeRole(r.Role),
			Availability: swarm.NodeAvailability(r.Availability),
		},
		Description: swarm.NodeDescription{Hostname: r.Hostname},
		Status:      swarm.NodeStatus{State: swarm.NodeStateDown, Addr: r.Addr},
	}
	n.Spec.Labels = map[string]string{}
	for k, v := range r.Labels {
		n.Spec.Labels[k] = v
	}
	if c.ready(r.ID, now) {
		n.Status.State = swarm.NodeStateReady
	} else {
		n.Status.Message = "heartbeat failure"
	}
	if e := c.engineOf(r.ID); e != nil {
		if info := e.Info(); info != nil {
			ver, _ := e.Version()
			n.Description.Platform = swarm.Platform{Architecture: info.Architecture, OS: info.OSType}
			n.Description.Resources = swarm.Resources{NanoCPUs: int64(info.NCPU) * 1e9, MemoryBytes: info.MemTotal}
			labels := map[string]string{}
			for _, l := range info.Labels {
				k, v, _ := strings.Cut(l, "=")
				labels[k] = v
			}
			n.Description.Engine = swarm.EngineDescription{EngineVersion: ver, Labels: labels}
		}
	}
	if name := c.engineName(r.ID); name != "" {
		n.Description.Hostname = name // the engine's host, not shoal's view of it
	}
	n.Description.TLSInfo = swarm.TLSInfo{TrustRoot: string(c.root.CertPEM())}
	if r.Role == RoleManager {
		ms := &swarm.ManagerStatus{Addr: r.ClusterAddr, Reachability: swarm.ReachabilityUnreachable}
		if m, ok := members[r.ID]; ok {
			ms.Leader = m.Leader
			if m.Reachable {
				ms.Reachability = swarm.ReachabilityReachable
			}
		}
		n.ManagerStatus = ms
	}
	return n
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
	it, err := c.find(ctx, ref)
	if err != nil {
		return err
	}
	switch spec.Availability {
	case "", swarm.NodeAvailabilityActive, swarm.NodeAvailabilityPause, swarm.NodeAvailabilityDrain:
	default:
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid availability %q", spec.Availability))
	}
	switch spec.Role {
	case "", swarm.NodeRoleWorker, swarm.NodeRoleManager:
	default:
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid role %q", spec.Role))
	}
	demote := spec.Role == swarm.NodeRoleWorker && it.Value.Role == RoleManager
	if demote {
		if err := c.canDemote(ctx, it.ID); err != nil {
			return err
		}
	}
	err = c.write(ctx, func(ctx context.Context) error {
		return c.nodes.Modify(ctx, it.ID, func(cur Node, exists bool) (Node, error) {
			if !exists {
				return cur, errdefs.ErrNotFound.WithMessage("node " + ref + " not found")
			}
			if cur.Version != version {
				return cur, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, ErrOutOfSequence)
			}
			if spec.Role != "" {
				cur.Role = string(spec.Role)
			}
			if cur.Role == RoleWorker {
				cur.ClusterAddr = ""
			}
			if spec.Availability != "" {
				cur.Availability = string(spec.Availability)
			}
			cur.Labels = spec.Labels
			cur.Version++
			cur.UpdatedAt = time.Now().UTC()
			return cur, nil
		})
	})
	if err != nil {
		return err
	}
	if demote {
		// The node leaves the store now (a leader hands leadership over
		// first); should that fail, the node itself retries when it sees
		// its record, then takes a worker certificate.
		if err := c.store.RemoveMember(ctx, it.ID); err != nil && !errors.Is(err, store.ErrNoMember) {
			c.log.Warn("demote: remove store member", "node", it.ID, "err", err)
		} else {
			c.log.Info("node demoted", "node", it.ID, "hostname", it.Value.Hostname)
		}
	} else if spec.Role == swarm.NodeRoleManager && it.Value.Role == RoleWorker {
		c.log.Info("node promoted", "node", it.ID, "hostname", it.Value.Hostname)
	}
	c.syncOnce(ctx)
	return nil
}

// canDemote refuses, as swarm mode does, to demote the last manager or a
// manager whose leaving would cost the store its quorum.
func (c *Cluster) canDemote(ctx context.Context, id string) error {
	items, err := c.records(ctx)
	if err != nil {
		return err
	}
	managers := 0
	for _, x := range items {
		if x.Value.Role == RoleManager {
			managers++
		}
	}
	if managers <= 1 {
		return errdefs.ErrFailedPrecondition.WithMessage("attempting to demote the last manager of the swarm")
	}
	members := c.members(ctx)
	if m, ok := members[id]; !ok || m.Learner {
		return nil
	}
	voters, reachable := 0, 0
	for name, m := range members {
		if m.Learner || name == id {
			continue
		}
		voters++
		if m.Reachable {
			reachable++
		}
	}
	if reachable < voters/2+1 {
		return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("can't remove member from the raft: this would result in a loss of quorum (%d of the %d remaining managers reachable)", reachable, voters))
	}
	return nil
}

// RemoveNode removes a node and revokes its certificate, so its agent
// cannot connect again. A Ready node needs force; a manager must be
// demoted first.
func (c *Cluster) RemoveNode(ctx context.Context, ref string, force bool) error {
	it, err := c.find(ctx, ref)
	if err != nil {
		return err
	}
	if it.ID == c.st.NodeID {
		return errdefs.ErrFailedPrecondition.WithMessage("node " + ref + " is the manager you are talking to and cannot be removed")
	}
	if it.Value.Role == RoleManager {
		return errdefs.ErrFailedPrecondition.WithMessage("node " + ref + " is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal")
	}
	if !force && c.ready(it.ID, time.Now()) {
		return errdefs.ErrFailedPrecondition.WithMessage("node " + ref + " is not down and can't be removed")
	}
	err = c.write(ctx, func(ctx context.Context) error {
		return c.store.Update(ctx, store.PrefixCA+"revoked", func(cur []byte, exists bool) ([]byte, error) {
			var r revokedRecord
			if exists {
				_ = json.Unmarshal(cur, &r)
			}
			for _, id := range r.IDs {
				if id == it.ID {
					return cur, nil
				}
			}
			r.IDs = append(r.IDs, it.ID)
			return json.Marshal(r)
		})
	})
	if err != nil {
		return err
	}
	if err := c.write(ctx, func(ctx context.Context) error { return c.nodes.Delete(ctx, it.ID) }); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	c.root.Revocations().Revoke(it.ID)
	c.tunnels.Disconnect(it.ID)
	c.syncOnce(ctx)
	c.log.Info("node removed", "node", it.ID, "hostname", it.Value.Hostname)
	return nil
}

// Swarm describes the cluster with its join tokens.
func (c *Cluster) Swarm(ctx context.Context) (*swarm.Swarm, error) {
	tr, err := c.tokens(ctx)
	if err != nil {
		return nil, err
	}
	sw := &swarm.Swarm{ClusterInfo: c.clusterInfo(ctx, tr), JoinTokens: swarm.JoinTokens{Worker: tr.Tokens.Worker.String(), Manager: tr.Tokens.Manager.String()}}
	return sw, nil
}

func (c *Cluster) clusterInfo(ctx context.Context, tr tokensRecord) swarm.ClusterInfo {
	ci := swarm.ClusterInfo{ID: c.st.ClusterID, Meta: swarm.Meta{Version: swarm.Version{Index: tr.Version}, CreatedAt: c.root.Certificate().NotBefore, UpdatedAt: tr.Created}}
	ci.Spec.Name = "default"
	ci.Spec.Dispatcher.HeartbeatPeriod = 5 * time.Second
	ci.Spec.CAConfig.NodeCertExpiry = c.certLifetime(ctx)
	ci.TLSInfo = swarm.TLSInfo{TrustRoot: string(c.root.CertPEM())}
	return ci
}

// UpdateSwarm rotates join tokens; the spec itself is not editable yet.
func (c *Cluster) UpdateSwarm(ctx context.Context, version uint64, rotateWorker, rotateManager bool) error {
	return c.write(ctx, func(ctx context.Context) error {
		return c.store.Update(ctx, store.PrefixTokens+"current", func(cur []byte, exists bool) ([]byte, error) {
			var tr tokensRecord
			if err := json.Unmarshal(cur, &tr); err != nil {
				return nil, err
			}
			if tr.Version != version {
				return nil, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, ErrOutOfSequence)
			}
			var err error
			if rotateWorker {
				if tr.Tokens, err = tr.Tokens.Rotate(ca.RoleWorker, c.root.CertPEM()); err != nil {
					return nil, err
				}
			}
			if rotateManager {
				if tr.Tokens, err = tr.Tokens.Rotate(ca.RoleManager, c.root.CertPEM()); err != nil {
					return nil, err
				}
			}
			tr.Version++
			tr.Created = time.Now().UTC()
			return json.Marshal(tr)
		})
	})
}

// SwarmInfo is the Swarm section of docker info.
func (c *Cluster) SwarmInfo(ctx context.Context) swarm.Info {
	info := swarm.Info{NodeID: c.st.NodeID, NodeAddr: c.st.Addr, LocalNodeState: swarm.LocalNodeStateActive, ControlAvailable: true}
	c.mu.Lock()
	for _, n := range c.cache {
		info.Nodes++
		if n.Role == RoleManager {
			info.Managers++
			info.RemoteManagers = append(info.RemoteManagers, swarm.Peer{NodeID: n.ID, Addr: n.ClusterAddr})
		}
	}
	c.mu.Unlock()
	sort.Slice(info.RemoteManagers, func(i, j int) bool { return info.RemoteManagers[i].NodeID < info.RemoteManagers[j].NodeID })
	if tr, err := c.tokens(ctx); err == nil {
		ci := c.clusterInfo(ctx, tr)
		info.Cluster = &ci
	}
	return info
}

// Write attempts: a proposal forwarded to a leader that just died is lost
// and would wait out the store's whole write timeout, so a write is tried
// for writeAttempt at a time until writeTimeout: it goes through as soon
// as a new leader is elected.
const (
	writeAttempt = 800 * time.Millisecond
	writeTimeout = 5 * time.Second
)

func (c *Cluster) write(ctx context.Context, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(writeTimeout)
	for {
		actx, cancel := context.WithTimeout(ctx, writeAttempt)
		err := f(actx)
		cancel()
		retry := errors.Is(err, store.ErrNoQuorum) || errors.Is(err, context.DeadlineExceeded)
		if !retry || ctx.Err() != nil || time.Now().After(deadline) {
			if retry && !errors.Is(err, store.ErrNoQuorum) {
				err = fmt.Errorf("%w: %w", store.ErrNoQuorum, err)
			}
			return err
		}
		time.Sleep(50 * time.Millisecond) // "no leader" may come back at once
	}
}
