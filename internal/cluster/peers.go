package cluster

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
)

// peerTTL bounds how long a verified node certificate is taken on trust
// without verifying its chain again.
const peerTTL = time.Minute

// peerCache remembers the node certificates the cluster port verified.
// Every node calls it every second or two (its own record, its overlay
// networks); verifying each call's chain (an ECDSA signature check) was
// the largest cost of those answers at 300 nodes. A remembered identity
// is used only while the roots are those it was verified against, its
// certificate valid and its node not revoked, and for peerTTL at most.
type peerCache struct {
	mu  sync.Mutex
	ids map[[sha256.Size]byte]peerEntry // by the SHA-256 of the leaf certificate's DER
}

type peerEntry struct {
	id       ca.Identity
	root     *x509.Certificate // the roots it was verified against
	issuer   *x509.Certificate
	until    time.Time
	verified time.Time
}

// maxPeers bounds the cache: past it, entries are dropped before a new one
// is kept (a new one is verified either way).
const maxPeers = 100_000

// peerIdentity is c.root.PeerIdentity, remembered.
func (c *Cluster) peerIdentity(cs tls.ConnectionState) (ca.Identity, error) {
	if len(cs.PeerCertificates) == 0 {
		return c.root.PeerIdentity(cs)
	}
	leaf := cs.PeerCertificates[0]
	key := sha256.Sum256(leaf.Raw) // not the DER itself: ~700 bytes a node
	now := time.Now()
	root, issuer := c.root.Certificate(), c.root.Issuer()
	pc := &c.peers
	pc.mu.Lock()
	e, ok := pc.ids[key]
	pc.mu.Unlock()
	if ok && e.root == root && e.issuer == issuer && now.Before(e.until) && now.Sub(e.verified) < peerTTL {
		if c.root.Revocations().IsRevoked(e.id.NodeID) {
			return ca.Identity{}, fmt.Errorf("%w: %s", ca.ErrRevoked, e.id.NodeID)
		}
		return e.id, nil
	}
	id, err := c.root.PeerIdentity(cs)
	if err != nil {
		return id, err
	}
	pc.mu.Lock()
	if pc.ids == nil || len(pc.ids) >= maxPeers {
		pc.ids = map[[sha256.Size]byte]peerEntry{}
	}
	pc.ids[key] = peerEntry{id: id, root: root, issuer: issuer, until: leaf.NotAfter, verified: now}
	pc.mu.Unlock()
	return id, nil
}
