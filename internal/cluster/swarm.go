package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/cluster/nodeapi"
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
	cfg := c.settings(ctx)
	ci.Spec.CAConfig.NodeCertExpiry, ci.Spec.CAConfig.ForceRotate = cfg.NodeCertExpiry, cfg.ForceRotate
	ci.Spec.EncryptionConfig.AutoLockManagers = c.autoLocked(ctx)
	if rr, _, err := c.readRoot(ctx); err == nil {
		ci.CreatedAt = rr.created()
		ci.TLSInfo, ci.RootRotationInProgress = clusterTLS(rr)
	} else {
		ci.TLSInfo = swarm.TLSInfo{TrustRoot: string(c.root.CertPEM())}
	}
	return ci
}

// clusterTLS is the swarm's TLSInfo as swarm mode shows it: the cluster's
// root, and the issuer of the certificates issued now (the next root
// while a rotation is under way, which docker swarm ca --rotate waits
// for every node to show).
func clusterTLS(rr rootRecord) (swarm.TLSInfo, bool) {
	issuerPEM := rr.Cert
	if rr.Rotation != nil {
		issuerPEM = rr.Rotation.Cert
	}
	info := swarm.TLSInfo{TrustRoot: string(rr.Cert)}
	if issuer, err := ca.ParseCertificatePEM(issuerPEM); err == nil {
		info.CertIssuerSubject, info.CertIssuerPublicKey = issuer.RawSubject, issuer.RawSubjectPublicKeyInfo
	}
	return info, rr.Rotation != nil
}

// UpdateSwarm applies swarm update: join token rotations, the node
// certificate lifetime and a root CA rotation (ForceRotate changed), if
// u.Version is the swarm's current one.
func (c *Cluster) UpdateSwarm(ctx context.Context, u backend.SwarmUpdate) error {
	cfg := c.settings(ctx)
	if u.Spec != nil {
		if err := nodeapi.CheckCAConfig(cfg.NodeCertExpiry, u.Spec.CAConfig); err != nil {
			return err
		}
	}
	err := c.write(ctx, func(ctx context.Context) error {
		return c.store.Update(ctx, keyTokens, func(cur []byte, exists bool) ([]byte, error) {
			var tr tokensRecord
			if err := json.Unmarshal(cur, &tr); err != nil {
				return nil, err
			}
			tr, err := rotateTokens(tr, u.Version, u.RotateWorkerToken, u.RotateManagerToken, c.root.CertPEM(), time.Now())
			if err != nil {
				return nil, err
			}
			return json.Marshal(tr)
		})
	})
	if err != nil {
		return err
	}
	if err := c.updateLock(ctx, u); err != nil {
		return err
	}
	if u.Spec == nil {
		return nil
	}
	return c.updateCA(ctx, u.Spec.CAConfig)
}

// updateCA stores the CA settings and starts a root rotation when
// ForceRotate is not the one that started the last.
func (c *Cluster) updateCA(ctx context.Context, spec swarm.CAConfig) error {
	if err := c.write(ctx, func(ctx context.Context) error { return c.updateSettings(ctx, spec) }); err != nil {
		return err
	}
	c.lifetime.Store(int64(c.certLifetime(ctx))) // what this manager's next /self answers tell
	rr, _, err := c.readRoot(ctx)
	if err != nil || rr.LastForced == spec.ForceRotate {
		return err
	}
	err = c.write(ctx, func(ctx context.Context) error { return c.startRotation(ctx, spec.ForceRotate) })
	if errors.Is(err, ca.ErrCannotCrossSign) {
		return fmt.Errorf("%w: %w", errdefs.ErrFailedPrecondition, err)
	}
	if err != nil {
		return err
	}
	c.log.Info("root CA rotation started", "force_rotate", spec.ForceRotate)
	return c.applyRoot(ctx)
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
