package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/shoal-dev/shoal/internal/ca"
)

// What a manager's Docker API needs of the cluster to serve TLS with the
// cluster's own certificates (--tlsverify without certificate files).

// APICertificate is this node's current certificate, renewed in place: a
// manager's certificate names its advertise address, host name and
// loopback, so the docker CLI can verify it.
func (c *Cluster) APICertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.kp.Get(), nil
}

// APIClientCAs is the pool a client certificate must chain to now. It is
// read at each handshake, so that a rotated root applies at once.
func (c *Cluster) APIClientCAs() *x509.CertPool { return c.apiRoot().Pool() }

// VerifyAPIClient refuses the certificate of a node removed from the
// cluster (its certificate is revoked). User certificates, which carry no
// node identity, pass: the handshake has checked their chain.
func (c *Cluster) VerifyAPIClient(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	if _, err := c.apiRoot().VerifyNode(cs.PeerCertificates[0]); errors.Is(err, ca.ErrRevoked) {
		return err
	}
	return nil
}

// apiRoot is the root the API trusts: the one place to change when the
// root may be replaced under a running node.
func (c *Cluster) apiRoot() *ca.RootCA { return c.root }

// ErrNoCAKey is a data directory without the cluster's CA key: a worker's,
// since only managers hold it.
var ErrNoCAKey = errors.New("cluster: this node holds no CA key; run this on a manager of the cluster")

// LocalCA reads, from a manager's data directory, the cluster's root CA
// with its key (to issue user certificates) and the manager's advertise
// address.
func LocalCA(dataDir string) (*ca.RootCA, string, error) {
	c := &Cluster{cfg: Config{DataDir: dataDir}}
	if err := c.loadState(); errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%w (--data-dir %s)", ErrNoCluster, dataDir)
	} else if err != nil {
		return nil, "", fmt.Errorf("cluster: read the node's state in %s: %w", dataDir, err)
	}
	root, err := readSigningRoot(c.certDir())
	if err != nil {
		return nil, "", err
	}
	return root, c.st.Addr, nil
}

// readSigningRoot reads the root CA and its key from a certificate
// directory; a root without its key is ErrNoCAKey.
func readSigningRoot(dir string) (*ca.RootCA, error) {
	root, err := ca.LoadRootCAFrom(dir)
	if err != nil {
		return nil, err
	}
	if !root.CanSign() {
		return nil, fmt.Errorf("%w (no %s)", ErrNoCAKey, filepath.Join(dir, ca.RootKeyFile))
	}
	return root, nil
}

// isDNSName says whether a host name can be a certificate's DNS SAN
// (letters, digits, '-' and '.'): a host name that cannot is left out
// rather than fail the node's certificate.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, r := range s {
		ok := r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !ok {
			return false
		}
	}
	return true
}
