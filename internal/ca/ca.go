// Package ca is the built-in cluster's certificate authority: a self-signed
// root, node certificates that carry a node's identity (CN node ID, OU role,
// O cluster ID), swarm-format join tokens, and the checks every cluster port
// applies to a peer's certificate.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync/atomic"
	"time"
)

// Role is a node's role as written in its certificate's OU, spelled as in
// Docker's swarm mode so tools that read certificates recognise it.
type Role string

// The two roles a node certificate can carry.
const (
	RoleManager Role = "swarm-manager"
	RoleWorker  Role = "swarm-worker"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool { return r == RoleManager || r == RoleWorker }

const (
	rootCN = "swarm-ca"
	// RootLifetime is how long a root CA certificate is valid (20 years, as swarm mode).
	RootLifetime = 20 * 365 * 24 * time.Hour
	// DefaultNodeLifetime is a node certificate's default validity.
	DefaultNodeLifetime = 90 * 24 * time.Hour
	// MinNodeLifetime is the shortest node certificate validity accepted
	// (swarm mode's minimum).
	MinNodeLifetime = time.Hour
	// MinTestLifetime is the shortest validity NodeRequest.AllowShort permits.
	MinTestLifetime = 10 * time.Second
	// backdate absorbs clock skew between the signer and the verifier.
	backdate = 5 * time.Minute
)

// Errors returned by this package; test with errors.Is.
var (
	ErrCannotSign   = errors.New("ca: root CA has no private key")
	ErrInvalidRole  = errors.New("ca: invalid node role")
	ErrInvalidCert  = errors.New("ca: invalid certificate")
	ErrUntrusted    = errors.New("ca: certificate not signed by the cluster root CA")
	ErrWrongCluster = errors.New("ca: certificate belongs to another cluster")
	ErrRevoked      = errors.New("ca: node certificate revoked")
	ErrWrongRole    = errors.New("ca: node role not allowed here")
	ErrInvalidCSR   = errors.New("ca: invalid certificate request")
	ErrInvalidPEM   = errors.New("ca: invalid PEM")
)

// RootCA is the cluster's trust anchor. Managers hold its key and can sign;
// workers hold only the certificate and can verify. A root CA rotation
// swaps what it holds (Replace) under live listeners and dialers: every
// method reads the current material.
type RootCA struct {
	clusterID string
	revoked   *RevocationList
	cur       atomic.Pointer[rootState]
}

// rootState is the material of a RootCA at one moment; it never changes once built.
type rootState struct {
	cert     *x509.Certificate // the cluster's root: join tokens pin it
	certPEM  []byte
	trustPEM []byte // every trusted root, cert first
	pool     *x509.CertPool
	// The signer (nil key on a verify-only root): the certificate issued
	// certificates name as issuer, its key, and the certificates sent after
	// each issued one (a cross-signed root, so that nodes trusting only the
	// previous root accept it).
	issuer   *x509.Certificate
	key      crypto.Signer
	keyPEM   []byte
	chainPEM []byte
}

// NewRootCA creates a self-signed ECDSA P-256 root for clusterID, valid from now
// for RootLifetime.
func NewRootCA(clusterID string, now time.Time) (*RootCA, error) {
	certPEM, keyPEM, err := newRootMaterial(clusterID, now)
	if err != nil {
		return nil, err
	}
	return LoadRootCA(certPEM, keyPEM)
}

func newRootMaterial(clusterID string, now time.Time) (certPEM, keyPEM []byte, err error) {
	if clusterID == "" {
		return nil, nil, fmt.Errorf("%w: empty cluster ID", ErrInvalidCert)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: generate root key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: rootCN, Organization: []string{clusterID}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(RootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// One intermediate: the next root, cross-signed by this one
		// during a rotation.
		MaxPathLen: 1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: self-sign root: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// LoadRootCA builds a RootCA from PEM material. certPEM is the cluster's
// root, optionally followed by further roots trusted as well (the next
// root during a rotation). keyPEM may be nil, giving a verify-only root
// (what workers hold); else it is the key of one of those roots, which
// then signs.
func LoadRootCA(certPEM, keyPEM []byte) (*RootCA, error) {
	return loadRootBundle(certPEM, keyPEM, nil)
}

func loadRootBundle(certPEM, keyPEM, chainPEM []byte) (*RootCA, error) {
	certs, err := parseCertificatesPEM(certPEM)
	if err != nil {
		return nil, err
	}
	return LoadRoot(RootMaterial{Cert: encodeCert(certs[0].Raw), Trusted: encodeCerts(certs[1:]), Key: keyPEM, Chain: chainPEM})
}

// RootMaterial is what a RootCA is built from, all PEM.
type RootMaterial struct {
	Cert    []byte // the cluster's root
	Trusted []byte // further roots trusted (the next root while rotating)
	Key     []byte // the signing key: Cert's or a Trusted root's; nil: verify only
	Chain   []byte // certificates sent after each issued one (a cross-signed root)
}

// LoadRoot builds a RootCA from m.
func LoadRoot(m RootMaterial) (*RootCA, error) {
	st, err := newRootState(m)
	if err != nil {
		return nil, err
	}
	r := &RootCA{clusterID: st.cert.Subject.Organization[0], revoked: NewRevocationList()}
	r.cur.Store(st)
	return r, nil
}

func newRootState(m RootMaterial) (*rootState, error) {
	cert, err := ParseCertificatePEM(m.Cert)
	if err != nil {
		return nil, err
	}
	if !isClusterRoot(cert) {
		return nil, fmt.Errorf("%w: not a cluster root", ErrInvalidCert)
	}
	roots := []*x509.Certificate{cert}
	if len(m.Trusted) > 0 {
		extra, err := parseCertificatesPEM(m.Trusted)
		if err != nil {
			return nil, err
		}
		roots = append(roots, extra...)
	}
	st := &rootState{cert: cert, certPEM: encodeCert(cert.Raw), trustPEM: encodeCerts(roots), pool: x509.NewCertPool(), issuer: cert}
	for _, c := range roots {
		if !c.IsCA {
			return nil, fmt.Errorf("%w: a trusted root is not a CA", ErrInvalidCert)
		}
		st.pool.AddCert(c)
	}
	if m.Key != nil {
		if err := st.setKey(m.Key, roots); err != nil {
			return nil, err
		}
	}
	if len(m.Chain) > 0 {
		chain, err := parseCertificatesPEM(m.Chain)
		if err != nil {
			return nil, err
		}
		st.chainPEM = encodeCerts(chain)
	}
	return st, nil
}

func isClusterRoot(c *x509.Certificate) bool { return c.IsCA && len(c.Subject.Organization) == 1 }

// setKey makes the root whose public key is keyPEM's the signer.
func (st *rootState) setKey(keyPEM []byte, roots []*x509.Certificate) error {
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return err
	}
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: root key must be ECDSA", ErrInvalidCert)
	}
	for _, c := range roots {
		if pub.Equal(c.PublicKey) {
			st.issuer, st.key, st.keyPEM = c, key, append([]byte(nil), keyPEM...)
			return nil
		}
	}
	return fmt.Errorf("%w: key does not match root certificate", ErrInvalidCert)
}

// Replace makes next's material this root's: new handshakes, verifications
// and signatures use it (a root CA rotation). The cluster must be the same.
func (r *RootCA) Replace(next *RootCA) error {
	if next.clusterID != r.clusterID {
		return fmt.Errorf("%w: %q", ErrWrongCluster, next.clusterID)
	}
	r.cur.Store(next.cur.Load())
	return nil
}

func (r *RootCA) state() *rootState { return r.cur.Load() }

// ClusterID is the cluster this root belongs to (its O).
func (r *RootCA) ClusterID() string { return r.clusterID }

// Certificate returns the parsed root certificate.
func (r *RootCA) Certificate() *x509.Certificate { return r.state().cert }

// CertPEM returns the cluster's root certificate, the bytes join tokens digest.
func (r *RootCA) CertPEM() []byte { return append([]byte(nil), r.state().certPEM...) }

// TrustPEM returns every root this one trusts, the cluster's root first:
// CertPEM alone except during a rotation.
func (r *RootCA) TrustPEM() []byte { return append([]byte(nil), r.state().trustPEM...) }

// KeyPEM returns the signing key, or nil on a verify-only root.
func (r *RootCA) KeyPEM() []byte { return append([]byte(nil), r.state().keyPEM...) }

// ChainPEM returns the certificates sent after each issued one.
func (r *RootCA) ChainPEM() []byte { return append([]byte(nil), r.state().chainPEM...) }

// CanSign reports whether this root holds a signing key.
func (r *RootCA) CanSign() bool { return r.state().key != nil }

// Pool returns a certificate pool holding the trusted roots.
func (r *RootCA) Pool() *x509.CertPool { return r.state().pool.Clone() }

// Issuer is the certificate issued certificates name as their issuer: its
// raw subject and public key are what swarm mode's TLSInfo shows.
func (r *RootCA) Issuer() *x509.Certificate { return r.state().issuer }

// Revocations is the set of node IDs VerifyNode refuses.
func (r *RootCA) Revocations() *RevocationList { return r.revoked }

// Digest is the SHA-256 of the root bundle in base36, zero-padded to 50
// characters: the middle part of a join token.
func (r *RootCA) Digest() string { return CADigest(r.state().certPEM) }

// CADigest computes the join-token digest of a root CA PEM bundle.
func CADigest(rootPEM []byte) string {
	sum := sha256.Sum256(rootPEM)
	return base36Pad(new(big.Int).SetBytes(sum[:]), digestLen)
}

func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("ca: serial number: %w", err)
	}
	return n, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("ca: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func encodeCerts(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, encodeCert(c.Raw)...)
	}
	return out
}

// parseCertificatesPEM parses every certificate of a PEM bundle (at least one).
func parseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: %s block in a certificate bundle", ErrInvalidPEM, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCert, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no certificate block", ErrInvalidPEM)
	}
	return out, nil
}

// ParseCertificatePEM parses the first certificate of a PEM bundle.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: no certificate block", ErrInvalidPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCert, err)
	}
	return cert, nil
}

func parseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no key block", ErrInvalidPEM)
	}
	if key, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return key, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPEM, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: key cannot sign", ErrInvalidPEM)
	}
	return signer, nil
}
