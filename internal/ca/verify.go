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
	// IssuerSubject and IssuerPublicKey are the raw subject and public key
	// of the root (or cross-signed root) that signed the certificate: what
	// swarm mode's TLSInfo shows, and how a rotation tells old from new.
	IssuerSubject   []byte
	IssuerPublicKey []byte
}

// VerifyNode checks cert against the root at the current time; see VerifyNodeAt.
func (r *RootCA) VerifyNode(cert *x509.Certificate) (Identity, error) {
	return r.VerifyNodeAt(cert, time.Now())
}

// VerifyNodeAt checks that cert chains to this root and is valid at now,
// names exactly one known role and this cluster, and belongs to a node that
// is not revoked.
func (r *RootCA) VerifyNodeAt(cert *x509.Certificate, now time.Time) (Identity, error) {
	return r.VerifyChainAt([]*x509.Certificate{cert}, now)
}

// VerifyChainAt is VerifyNodeAt for a certificate (certs[0]) sent with
// intermediates (the rest): a node's certificate issued during a rotation
// comes with the new root cross-signed by the old, so that it verifies
// against either.
func (r *RootCA) VerifyChainAt(certs []*x509.Certificate, now time.Time) (Identity, error) {
	if len(certs) == 0 || certs[0] == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrInvalidCert)
	}
	cert := certs[0]
	opts := x509.VerifyOptions{
		Roots:         r.state().pool,
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := cert.Verify(opts)
	if err != nil {
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
	if len(chains[0]) > 1 {
		id.IssuerSubject, id.IssuerPublicKey = cert.RawIssuer, chains[0][1].RawSubjectPublicKeyInfo
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
