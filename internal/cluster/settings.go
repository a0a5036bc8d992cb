package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/store"
)

// The cluster-wide records besides the nodes: join tokens, the CA's
// settings and the revoked node IDs, each one key of the store.
const (
	keyTokens  = store.PrefixTokens + "current"
	keyRoot    = store.PrefixCA + "root"
	keyConfig  = store.PrefixCA + "config"
	keyRevoked = store.PrefixCA + "revoked"
)

// tokens reads the current join tokens from this manager's copy.
func (c *Cluster) tokens(ctx context.Context) (tokensRecord, error) {
	var tr tokensRecord
	kv, err := c.store.Get(ctx, keyTokens)
	if err != nil {
		return tr, err
	}
	err = json.Unmarshal(kv.Value, &tr)
	return tr, err
}

// certLifetime is the validity of the certificates this cluster issues.
func (c *Cluster) certLifetime(ctx context.Context) time.Duration {
	return c.settings(ctx).NodeCertExpiry
}

// cachedLifetime is certLifetime as the sync loop last read it (every
// node's /self call tells it).
func (c *Cluster) cachedLifetime(ctx context.Context) time.Duration {
	if d := time.Duration(c.lifetime.Load()); d > 0 {
		return d
	}
	return c.certLifetime(ctx)
}

// settings reads the cluster's settings; a missing or unreadable record
// gives the defaults.
func (c *Cluster) settings(ctx context.Context) configRecord {
	var cr configRecord
	if kv, err := c.store.Get(ctx, keyConfig); err == nil {
		_ = json.Unmarshal(kv.Value, &cr)
	}
	if cr.NodeCertExpiry <= 0 {
		cr.NodeCertExpiry = ca.DefaultNodeLifetime
	}
	return cr
}

// updateSettings applies a swarm update's CA config to the settings: a
// zero expiry keeps the current one (as dockerd merges a spec).
func (c *Cluster) updateSettings(ctx context.Context, spec swarm.CAConfig) error {
	return c.store.Update(ctx, keyConfig, func(cur []byte, exists bool) ([]byte, error) {
		var cr configRecord
		if exists {
			if err := json.Unmarshal(cur, &cr); err != nil {
				return nil, err
			}
		}
		if spec.NodeCertExpiry != 0 {
			cr.NodeCertExpiry = spec.NodeCertExpiry
		}
		cr.ForceRotate = spec.ForceRotate
		return json.Marshal(cr)
	})
}

// readRoot reads the CA material managers share. Every read of the root
// key from the store goes through here.
// The revision tells whether it changed since the last read.
func (c *Cluster) readRoot(ctx context.Context) (rootRecord, int64, error) {
	var rr rootRecord
	kv, err := c.store.Get(ctx, keyRoot)
	if err != nil {
		return rr, 0, fmt.Errorf("cluster: read root CA: %w", err)
	}
	if err := json.Unmarshal(kv.Value, &rr); err != nil {
		return rr, 0, fmt.Errorf("cluster: read root CA: %w", err)
	}
	return rr, kv.Revision, nil
}

// updateRoot changes the CA material managers share with f (a rotation
// started or finished). Every write of the root key to the store goes
// through here or seed.
func (c *Cluster) updateRoot(ctx context.Context, f func(rootRecord) (rootRecord, error)) error {
	return c.store.Update(ctx, keyRoot, func(cur []byte, exists bool) ([]byte, error) {
		var rr rootRecord
		if !exists {
			return nil, fmt.Errorf("cluster: no root CA in the store: %w", store.ErrNotFound)
		}
		if err := json.Unmarshal(cur, &rr); err != nil {
			return nil, err
		}
		next, err := f(rr)
		if err != nil {
			return nil, err
		}
		return json.Marshal(next)
	})
}

// revoke adds a node to the revoked list; the sync loop of every manager
// applies the list to its CA and tunnels.
func (c *Cluster) revoke(ctx context.Context, id string) error {
	return c.store.Update(ctx, keyRevoked, func(cur []byte, exists bool) ([]byte, error) {
		var r revokedRecord
		if exists {
			_ = json.Unmarshal(cur, &r)
		}
		if slices.Contains(r.IDs, id) {
			return cur, nil
		}
		r.IDs = append(r.IDs, id)
		return json.Marshal(r)
	})
}

// revokedIDs reads the revoked list (empty when there is none).
func (c *Cluster) revokedIDs(ctx context.Context) []string {
	var r revokedRecord
	if kv, err := c.store.Get(ctx, keyRevoked); err == nil {
		_ = json.Unmarshal(kv.Value, &r)
	}
	return r.IDs
}
