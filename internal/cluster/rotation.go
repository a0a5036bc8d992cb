package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/cluster/nodeapi"
)

// A root CA rotation (docker swarm ca --rotate), as swarm mode does it:
//
//  1. startRotation creates the next root and has the current root
//     cross-sign it; the store's root record holds both. Each manager
//     applies the record (applyRoot): it trusts both roots and issues
//     certificates with the next root's key, each sent with the
//     cross-signed root so that nodes trusting only the current one accept it.
//  2. Every node learns from its managers (GET /self) the roots to trust
//     and that its certificate is not from the signer, and renews over its
//     existing mutual-TLS channel; the managers record the issuer each node
//     presents.
//  3. Once every node presents a certificate of the next root, the leader
//     finishes (finishRotation): the next root becomes the cluster's root,
//     the old one is no longer trusted, and the join tokens are issued
//     again for the new root, as swarm mode does.

// errRotationChanged is a rotation finished or replaced by another manager meanwhile.
var errRotationChanged = errors.New("cluster: the root rotation changed meanwhile")

// rootMaterial is what a manager's RootCA is built from a root record.
func rootMaterial(rr rootRecord) ca.RootMaterial {
	if rr.Rotation == nil {
		return ca.RootMaterial{Cert: rr.Cert, Key: rr.Key, Chain: rr.Chain}
	}
	return ca.RootMaterial{Cert: rr.Cert, Trusted: rr.Rotation.Cert, Key: rr.Rotation.Key, Chain: rr.Rotation.CrossSigned}
}

// followRoot applies the store's root record and, on the leader, moves a
// root rotation on.
func (c *Cluster) followRoot(ctx context.Context) {
	if err := c.applyRoot(ctx); err != nil {
		c.log.Warn("cluster: apply the root CA", "err", err)
		return
	}
	if c.IsLeader() {
		c.reconcileRotation(ctx)
	}
}

// applyRoot makes this manager's root CA the store's, when it changed
// since the last time: the trusted roots and the signer of every listener,
// dialer and signature, and the files in the certificate directory.
func (c *Cluster) applyRoot(ctx context.Context) error {
	rr, rev, err := c.readRoot(ctx)
	if err != nil {
		return err
	}
	c.rootMu.Lock()
	defer c.rootMu.Unlock()
	if rev == c.rootRev {
		return nil
	}
	if err := c.useRootRecord(rr); err != nil {
		return err
	}
	c.rootRev = rev
	return nil
}

// useRootRecord builds the root CA of rr, makes it this node's and saves it.
func (c *Cluster) useRootRecord(rr rootRecord) error {
	next, err := ca.LoadRoot(rootMaterial(rr))
	if err != nil {
		return err
	}
	if err := c.useRoot(next); err != nil {
		return err
	}
	return c.saveRoot(c.root)
}

// useRoot makes next this node's root CA, in place when there is one
// already, so that every TLS configuration built on it follows.
func (c *Cluster) useRoot(next *ca.RootCA) error {
	if c.root == nil {
		c.root = next
		return nil
	}
	if bytes.Equal(c.root.TrustPEM(), next.TrustPEM()) && bytes.Equal(c.root.KeyPEM(), next.KeyPEM()) && bytes.Equal(c.root.ChainPEM(), next.ChainPEM()) {
		return nil
	}
	if err := c.root.Replace(next); err != nil {
		return err
	}
	c.log.Info("root CA changed", "trusted_roots_digest", trustDigest(next.TrustPEM()), "rotating", !bytes.Equal(next.TrustPEM(), next.CertPEM()))
	return nil
}

// trustDigest names a bundle of trusted roots: what a node reports to its
// managers (GET /self?trust=).
func trustDigest(bundle []byte) string {
	sum := sha256.Sum256(bundle)
	return hex.EncodeToString(sum[:])
}

// knownRoots maps the digests of the root bundles nodes may trust now to
// their PEM: the cluster's root alone, and during a rotation both roots.
func (c *Cluster) knownRoots() map[string]string {
	out := map[string]string{}
	for _, b := range [][]byte{c.root.CertPEM(), c.root.TrustPEM()} {
		out[trustDigest(b)] = string(b)
	}
	return out
}

// startRotation begins a rotation to a new root, cross-signed by the
// cluster's current root; a rotation under way is replaced by the new one
// (its nodes renew once more), as in swarm mode.
func (c *Cluster) startRotation(ctx context.Context, forced uint64) error {
	return c.updateRoot(ctx, func(rr rootRecord) (rootRecord, error) {
		cur, err := ca.LoadRootCA(rr.Cert, rr.Key)
		if err != nil {
			return rr, err
		}
		rot, err := cur.NewRotation(time.Now())
		if err != nil {
			return rr, err
		}
		rr.Rotation, rr.LastForced = &rot, forced
		return rr, nil
	})
}

// reconcileRotation finishes the rotation under way once every node
// presents a certificate of the new root (the leader's job).
func (c *Cluster) reconcileRotation(ctx context.Context) {
	rr, _, err := c.readRoot(ctx)
	if err != nil || rr.Rotation == nil {
		return
	}
	next, err := ca.ParseCertificatePEM(rr.Rotation.Cert)
	if err != nil {
		return
	}
	recs, err := c.records(ctx)
	if err != nil {
		return
	}
	if pending := nodeapi.Unconverged(recs, next.RawSubjectPublicKeyInfo); len(pending) > 0 {
		c.log.Debug("root rotation: waiting for nodes", "nodes", pending)
		return
	}
	err = c.write(ctx, func(ctx context.Context) error { return c.finishRotation(ctx, rr.Rotation.Cert) })
	if err != nil {
		c.log.Warn("root rotation: finish", "err", err)
		return
	}
	c.log.Info("root rotation finished: every node has a certificate of the new root; the old root is no longer trusted")
	if err := c.applyRoot(ctx); err != nil {
		c.log.Warn("root rotation: apply", "err", err)
	}
}

// finishRotation makes the next root the cluster's, if the rotation under
// way is still the one to nextCert, and issues new join tokens for it.
func (c *Cluster) finishRotation(ctx context.Context, nextCert []byte) error {
	err := c.updateRoot(ctx, func(rr rootRecord) (rootRecord, error) {
		if rr.Rotation == nil || !bytes.Equal(rr.Rotation.Cert, nextCert) {
			return rr, errRotationChanged
		}
		return rootRecord{Cert: rr.Rotation.Cert, Key: rr.Rotation.Key, Chain: rr.Rotation.CrossSigned, LastForced: rr.LastForced, Created: rr.created()}, nil
	})
	if err != nil {
		return err
	}
	return c.store.Update(ctx, keyTokens, func(cur []byte, exists bool) ([]byte, error) {
		var tr tokensRecord
		if err := json.Unmarshal(cur, &tr); err != nil {
			return nil, err
		}
		tr, err := rotateTokens(tr, tr.Version, true, true, nextCert, time.Now())
		if err != nil {
			return nil, fmt.Errorf("cluster: join tokens for the new root: %w", err)
		}
		return json.Marshal(tr)
	})
}

// followCA acts on what a manager says of the CA: the lifetime
// certificates are issued for, whether to renew now, and (on a worker;
// managers follow the store) the roots to trust. The roots come over the
// mutual-TLS channel the current roots authenticate.
func (c *Cluster) followCA(self selfResponse) {
	c.maxLife.Store(int64(self.CertExpiry))
	if self.Renew && !c.renewNow.Load() {
		c.log.Info("cluster: a manager asks for a certificate of the cluster's new root")
		c.renewNow.Store(true)
	}
	if c.IsManager() || len(self.Roots) == 0 || bytes.Equal(self.Roots, c.root.TrustPEM()) {
		return
	}
	next, err := ca.LoadRootCA(self.Roots, nil)
	if err == nil {
		err = c.useRoot(next)
	}
	if err == nil {
		err = c.saveRoot(c.root)
	}
	if err != nil {
		c.log.Warn("cluster: trusted roots from the managers", "err", err)
	}
}

// created is when the cluster was created: the first root's issue time
// (as swarm mode's cluster object, it does not change with a rotation).
func (rr rootRecord) created() time.Time {
	if !rr.Created.IsZero() {
		return rr.Created
	}
	if cert, err := ca.ParseCertificatePEM(rr.Cert); err == nil {
		return cert.NotBefore
	}
	return time.Time{}
}
