package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-dev/shoal/internal/ca"
)

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
		return c.store.Update(ctx, keyTokens, func(cur []byte, exists bool) ([]byte, error) {
			var tr tokensRecord
			if err := json.Unmarshal(cur, &tr); err != nil {
				return nil, err
			}
			tr, err := rotateTokens(tr, version, rotateWorker, rotateManager, c.root.CertPEM(), time.Now())
			if err != nil {
				return nil, err
			}
			return json.Marshal(tr)
		})
	})
}

// rotateTokens gives the named tokens fresh secrets, if version is tr's.
func rotateTokens(tr tokensRecord, version uint64, worker, manager bool, rootPEM []byte, now time.Time) (tokensRecord, error) {
	if tr.Version != version {
		return tr, fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, ErrOutOfSequence)
	}
	var err error
	if worker {
		if tr.Tokens, err = tr.Tokens.Rotate(ca.RoleWorker, rootPEM); err != nil {
			return tr, err
		}
	}
	if manager {
		if tr.Tokens, err = tr.Tokens.Rotate(ca.RoleManager, rootPEM); err != nil {
			return tr, err
		}
	}
	tr.Version++
	tr.Created = now.UTC()
	return tr, nil
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
