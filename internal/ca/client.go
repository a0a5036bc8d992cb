package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
)

// ClientRole is what a user certificate lets its holder do on the Docker
// API, written as the certificate's first OU.
type ClientRole string

// The roles of user certificates (see the authorization of the API).
const (
	ClientAdmin    ClientRole = "shoal-admin"
	ClientOperator ClientRole = "shoal-operator"
	ClientViewer   ClientRole = "shoal-viewer"
)

// ParseClientRole accepts a role by its short name (admin, operator,
// viewer) or as written in certificates (shoal-admin, ...).
func ParseClientRole(s string) (ClientRole, error) {
	r := ClientRole(s)
	if !strings.HasPrefix(s, "shoal-") {
		r = ClientRole("shoal-" + s)
	}
	switch r {
	case ClientAdmin, ClientOperator, ClientViewer:
		return r, nil
	}
	return "", fmt.Errorf("%w: %q (want admin, operator or viewer)", ErrInvalidRole, s)
}

// ScopePrefix starts the OU entries that limit a user certificate to the
// objects carrying a label: "scope:com.example.team=web".
const ScopePrefix = "scope:"

// DefaultClientLifetime is a user certificate's validity unless asked
// otherwise: short enough that a lost laptop's certificate dies on its own.
const DefaultClientLifetime = 30 * 24 * time.Hour

// MinClientLifetime is the shortest user certificate validity accepted.
const MinClientLifetime = time.Minute

// ErrInvalidClient is a user certificate request that cannot be issued.
var ErrInvalidClient = errors.New("ca: invalid client certificate request")

// ClientRequest says what a user certificate asserts.
type ClientRequest struct {
	Name string     // the user, Subject CN
	Role ClientRole // first OU
	// Scopes are label scopes "key=value", each written as a further OU
	// "scope:key=value".
	Scopes []string
	// Lifetime defaults to DefaultClientLifetime; it is cut to the root's
	// own expiry, which no client would accept past.
	Lifetime time.Duration
	Now      time.Time // issue time; zero means time.Now()
}

// IssueClient creates a key and a certificate for a user of the Docker
// API: CN the name, OU the role then the scopes, O the cluster ID, usable
// only to authenticate a client (ExtKeyUsage ClientAuth).
func (r *RootCA) IssueClient(req ClientRequest) (NodeCert, error) {
	st := r.state() // one root throughout, should a rotation replace it meanwhile
	if st.key == nil {
		return NodeCert{}, ErrCannotSign
	}
	tmpl, err := r.clientTemplate(req, st.issuer)
	if err != nil {
		return NodeCert{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return NodeCert{}, fmt.Errorf("ca: generate client key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, st.issuer, key.Public(), st.key)
	if err != nil {
		return NodeCert{}, fmt.Errorf("ca: sign client certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return NodeCert{}, err
	}
	// Sent with the signer's chain, as node certificates, so that it
	// verifies against the old root during and after a rotation.
	return NodeCert{CertPEM: append(encodeCert(der), st.chainPEM...), KeyPEM: keyPEM}, nil
}

func (r *RootCA) clientTemplate(req ClientRequest, issuer *x509.Certificate) (*x509.Certificate, error) {
	if err := checkClientRequest(req); err != nil {
		return nil, err
	}
	ous := []string{string(req.Role)}
	for _, s := range req.Scopes {
		ous = append(ous, ScopePrefix+s)
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	life := req.Lifetime
	if life == 0 {
		life = DefaultClientLifetime
	}
	notAfter := now.Add(life)
	if notAfter.After(issuer.NotAfter) {
		notAfter = issuer.NotAfter
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      clientSubject(req.Name, r.clusterID, ous),
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, nil
}

// clientSubject writes each OU as its own RDN, in order. Go puts the
// OrganizationalUnit values of a pkix.Name in one multi-valued RDN, a DER
// SET whose members are sorted by encoding: "scope:..." would then read
// back before the role.
func clientSubject(name, clusterID string, ous []string) pkix.Name {
	n := pkix.Name{CommonName: name, Organization: []string{clusterID}}
	for _, ou := range ous {
		n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{Type: oidOrganizationalUnit, Value: ou})
	}
	return n
}

// oidOrganizationalUnit is X.520's OU attribute (2.5.4.11).
var oidOrganizationalUnit = asn1.ObjectIdentifier{2, 5, 4, 11}

// checkClientRequest refuses names and scopes that would be ambiguous when
// read back (empty, control characters) and unknown roles.
func checkClientRequest(req ClientRequest) error {
	if req.Name == "" || strings.IndexFunc(req.Name, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: name %q", ErrInvalidClient, req.Name)
	}
	switch req.Role {
	case ClientAdmin, ClientOperator, ClientViewer:
	default:
		return fmt.Errorf("%w: role %q", ErrInvalidClient, req.Role)
	}
	for _, s := range req.Scopes {
		k, _, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			return fmt.Errorf("%w: scope %q (want label=value)", ErrInvalidClient, s)
		}
	}
	if req.Lifetime != 0 && req.Lifetime < MinClientLifetime {
		return fmt.Errorf("%w: lifetime %s below %s", ErrInvalidClient, req.Lifetime, MinClientLifetime)
	}
	return nil
}

// Names of the files a client certificate is written to: the layout the
// docker CLI reads from DOCKER_CERT_PATH.
const (
	ClientCAFile   = "ca.pem"
	ClientCertFile = "cert.pem"
	ClientKeyFile  = "key.pem"
)

// ErrExists is an output that would overwrite an existing key.
var ErrExists = errors.New("ca: file exists")

// SaveClientCert writes the root bundle, the certificate and its key (0600)
// into dir, creating it. It never overwrites a key or certificate already
// there: that could be someone else's identity.
func SaveClientCert(dir string, rootPEM []byte, c NodeCert) error {
	for _, name := range []string{ClientCertFile, ClientKeyFile} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, filepath.Join(dir, name))
		}
	}
	if err := writeFile(filepath.Join(dir, ClientKeyFile), c.KeyPEM, keyPerm); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, ClientCertFile), c.CertPEM, certPerm); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, ClientCAFile), rootPEM, certPerm)
}
