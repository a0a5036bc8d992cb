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
	// MinNodeLifetime is the shortest node certificate validity accepted.
	MinNodeLifetime = 30 * time.Minute
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
// workers hold only the certificate and can verify.
type RootCA struct {
	cert      *x509.Certificate
	certPEM   []byte
	key       crypto.Signer
	keyPEM    []byte
	pool      *x509.CertPool
	clusterID string
	revoked   *RevocationList
}

// NewRootCA creates a self-signed ECDSA P-256 root for clusterID, valid from now
// for RootLifetime.
func NewRootCA(clusterID string, now time.Time) (*RootCA, error) {
	if clusterID == "" {
		return nil, fmt.Errorf("%w: empty cluster ID", ErrInvalidCert)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: generate root key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: rootCN, Organization: []string{clusterID}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(RootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("ca: self-sign root: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return LoadRootCA(encodeCert(der), keyPEM)
}

// LoadRootCA builds a RootCA from PEM material. keyPEM may be nil, giving a
// verify-only root (what workers hold).
func LoadRootCA(certPEM, keyPEM []byte) (*RootCA, error) {
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA || len(cert.Subject.Organization) != 1 {
		return nil, fmt.Errorf("%w: not a cluster root", ErrInvalidCert)
	}
	r := &RootCA{
		cert:      cert,
		certPEM:   append([]byte(nil), certPEM...),
		pool:      x509.NewCertPool(),
		clusterID: cert.Subject.Organization[0],
		revoked:   NewRevocationList(),
	}
	r.pool.AddCert(cert)
	if keyPEM != nil {
		if err := r.setKey(keyPEM); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *RootCA) setKey(keyPEM []byte) error {
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return err
	}
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok || !pub.Equal(r.cert.PublicKey) {
		return fmt.Errorf("%w: key does not match root certificate", ErrInvalidCert)
	}
	r.key = key
	r.keyPEM = append([]byte(nil), keyPEM...)
	return nil
}

// ClusterID is the cluster this root belongs to (its O).
func (r *RootCA) ClusterID() string { return r.clusterID }

// Certificate returns the parsed root certificate.
func (r *RootCA) Certificate() *x509.Certificate { return r.cert }

// CertPEM returns the root certificate bundle, the bytes join tokens digest.
func (r *RootCA) CertPEM() []byte { return append([]byte(nil), r.certPEM...) }

// KeyPEM returns the root key, or nil on a verify-only root.
func (r *RootCA) KeyPEM() []byte { return append([]byte(nil), r.keyPEM...) }

// CanSign reports whether this root holds its private key.
func (r *RootCA) CanSign() bool { return r.key != nil }

// Pool returns a certificate pool holding only this root.
func (r *RootCA) Pool() *x509.CertPool { return r.pool.Clone() }

// Revocations is the set of node IDs VerifyNode refuses.
func (r *RootCA) Revocations() *RevocationList { return r.revoked }

// Digest is the SHA-256 of the root bundle in base36, zero-padded to 50
// characters: the middle part of a join token.
func (r *RootCA) Digest() string { return CADigest(r.certPEM) }

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
