package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"time"
)

// NodeRequest says what a node certificate asserts. Only the public key is
// ever taken from a CSR; identity comes from the signer, never the requester.
type NodeRequest struct {
	NodeID string
	Role   Role
	// Hosts are extra SANs (IP addresses or DNS names): a manager's peer and
	// client addresses, so etcd and the cluster port can check them.
	Hosts []string
	// Lifetime defaults to DefaultNodeLifetime; shorter than MinNodeLifetime is refused.
	Lifetime time.Duration
	// AllowShort lowers the shortest lifetime accepted to MinTestLifetime
	// (tests of renewal).
	AllowShort bool
	// Now is the issue time; zero means time.Now().
	Now time.Time
}

// NodeCert is a node's certificate and private key in PEM.
type NodeCert struct {
	CertPEM []byte
	KeyPEM  []byte
}

// TLS returns the pair as a tls.Certificate with its leaf parsed.
func (n NodeCert) TLS() (tls.Certificate, error) {
	c, err := tls.X509KeyPair(n.CertPEM, n.KeyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: %w", ErrInvalidCert, err)
	}
	return c, nil
}

// Leaf parses the node certificate.
func (n NodeCert) Leaf() (*x509.Certificate, error) { return ParseCertificatePEM(n.CertPEM) }

// IssueNode creates a key pair and a certificate for it: how a manager
// issues its own certificate, which needs no CSR round trip.
func (r *RootCA) IssueNode(req NodeRequest) (NodeCert, error) {
	csrPEM, keyPEM, err := NewCSR()
	if err != nil {
		return NodeCert{}, err
	}
	certPEM, err := r.SignCSR(csrPEM, req)
	if err != nil {
		return NodeCert{}, err
	}
	return NodeCert{CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// NewCSR generates a fresh P-256 key and a certificate request carrying
// only its public key: what a joining node sends with its token.
func NewCSR() (csrPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: generate node key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: create CSR: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	csrPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	return csrPEM, keyPEM, nil
}

// SignCSR checks the CSR's self-signature and issues a certificate for its
// public key with the identity in req, followed by the signer's chain.
func (r *RootCA) SignCSR(csrPEM []byte, req NodeRequest) ([]byte, error) {
	st := r.state()
	if st.key == nil {
		return nil, ErrCannotSign
	}
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	tmpl, err := r.nodeTemplate(req)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, st.issuer, csr.PublicKey, st.key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign node certificate: %w", err)
	}
	return append(encodeCert(der), st.chainPEM...), nil
}

func parseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: no request block", ErrInvalidCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	if _, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("%w: key must be ECDSA", ErrInvalidCSR)
	}
	return csr, nil
}

func (r *RootCA) nodeTemplate(req NodeRequest) (*x509.Certificate, error) {
	if !req.Role.Valid() {
		return nil, fmt.Errorf("%w: %q", ErrInvalidRole, req.Role)
	}
	if req.NodeID == "" {
		return nil, fmt.Errorf("%w: empty node ID", ErrInvalidCert)
	}
	life := req.Lifetime
	if life == 0 {
		life = DefaultNodeLifetime
	}
	if floor := MinNodeLifetime; life < floor && (!req.AllowShort || life < MinTestLifetime) {
		if req.AllowShort {
			floor = MinTestLifetime
		}
		return nil, fmt.Errorf("%w: lifetime %s below %s", ErrInvalidCert, life, floor)
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         req.NodeID,
			OrganizationalUnit: []string{string(req.Role)},
			Organization:       []string{r.clusterID},
		},
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(life),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		// The role and node ID as DNS names let a peer pin "swarm-manager"
		// as the server name (or an etcd allowed hostname) whatever the address.
		DNSNames: []string{string(req.Role), req.NodeID},
	}
	addHosts(tmpl, req.Hosts)
	return tmpl, nil
}

func addHosts(tmpl *x509.Certificate, hosts []string) {
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
}
