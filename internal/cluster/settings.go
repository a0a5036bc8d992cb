package cluster

import (
	"context"
	"encoding/json"
	"slices"
	"time"

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
	kv, err := c.store.Get(ctx, keyConfig)
	if err != nil {
		return ca.DefaultNodeLifetime
	}
	var cr configRecord
	if json.Unmarshal(kv.Value, &cr) != nil || cr.NodeCertExpiry <= 0 {
		return ca.DefaultNodeLifetime
	}
	return cr.NodeCertExpiry
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
