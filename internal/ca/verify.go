package ca

import (
	"crypto/x509"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// Identity is what a verified node certificate says about its holder.
type Identity struct {
	NodeID    string
	Role      Role
	ClusterID string
	NotBefore time.Time
	NotAfter  time.Time
}

// VerifyNode checks cert against the root at the current time; see VerifyNodeAt.
func (r *RootCA) VerifyNode(cert *x509.Certificate) (Identity, error) {
	return r.VerifyNodeAt(cert, time.Now())
}

// VerifyNodeAt checks that cert chains to this root and is valid at now,
// names exactly one known role and this cluster, and belongs to a node that
// is not revoked.
func (r *RootCA) VerifyNodeAt(cert *x509.Certificate, now time.Time) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrInvalidCert)
	}
	opts := x509.VerifyOptions{
		Roots:       r.pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	if _, err := cert.Verify(opts); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	id, err := identityOf(cert)
	if err != nil {
		return Identity{}, err
	}
	if id.ClusterID != r.clusterID {
		return Identity{}, fmt.Errorf("%w: %q", ErrWrongCluster, id.ClusterID)
	}
	if r.revoked.IsRevoked(id.NodeID) {
		return Identity{}, fmt.Errorf("%w: %s", ErrRevoked, id.NodeID)
	}
	return id, nil
}

// VerifyNodeRole is VerifyNode plus a check that the role is one of allowed.
func (r *RootCA) VerifyNodeRole(cert *x509.Certificate, allowed ...Role) (Identity, error) {
	id, err := r.VerifyNode(cert)
	if err != nil {
		return Identity{}, err
	}
	if !slices.Contains(allowed, id.Role) {
		return Identity{}, fmt.Errorf("%w: %s is %s", ErrWrongRole, id.NodeID, id.Role)
	}
	return id, nil
}

func identityOf(cert *x509.Certificate) (Identity, error) {
	s := cert.Subject
	if s.CommonName == "" || len(s.OrganizationalUnit) != 1 || len(s.Organization) != 1 {
		return Identity{}, fmt.Errorf("%w: subject is not a node identity", ErrInvalidCert)
	}
	role := Role(s.OrganizationalUnit[0])
	if !role.Valid() {
		return Identity{}, fmt.Errorf("%w: %q", ErrInvalidRole, role)
	}
	return Identity{
		NodeID:    s.CommonName,
		Role:      role,
		ClusterID: s.Organization[0],
		NotBefore: cert.NotBefore,
		NotAfter:  cert.NotAfter,
	}, nil
}

// RevocationList is a concurrency-safe set of revoked node IDs. Revoking a
// node ID refuses every certificate issued to it, old or renewed.
type RevocationList struct {
	mu  sync.RWMutex
	ids map[string]struct{}
}

// NewRevocationList returns an empty list.
func NewRevocationList() *RevocationList {
	return &RevocationList{ids: make(map[string]struct{})}
}

// Revoke adds nodeID to the list.
func (l *RevocationList) Revoke(nodeID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids[nodeID] = struct{}{}
}

// IsRevoked reports whether nodeID is on the list.
func (l *RevocationList) IsRevoked(nodeID string) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.ids[nodeID]
	return ok
}

// Replace sets the list to exactly ids, e.g. after reading it from the store.
func (l *RevocationList) Replace(ids []string) {
	next := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		next[id] = struct{}{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids = next
}

// List returns the revoked node IDs, sorted.
func (l *RevocationList) List() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]string, 0, len(l.ids))
	for id := range l.ids {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
