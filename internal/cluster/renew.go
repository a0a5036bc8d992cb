package cluster

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
)

// leaf is this node's current certificate.
func (c *Cluster) leaf() *x509.Certificate {
	cert := c.kp.Get()
	if cert.Leaf != nil {
		return cert.Leaf
	}
	l, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil
	}
	return l
}

// renewIn is how long until this node's certificate is due for renewal:
// now if a manager asked (a root rotation), else within the window of the
// shorter of its lifetime and the one certificates are issued for now.
func (c *Cluster) renewIn() time.Duration {
	l := c.leaf()
	if l == nil || c.renewNow.Load() {
		return 0
	}
	return ca.RenewInCertMax(l, time.Now(), c.renewFrac, time.Duration(c.maxLife.Load()))
}

// renew gets a new certificate from a manager (or, on a manager that
// cannot reach one, signs its own) and swaps it in: new tunnels and store
// connections present it, live ones stay up.
func (c *Cluster) renew(ctx context.Context, hc *http.Client) error {
	csr, key, err := ca.NewCSR()
	if err != nil {
		return err
	}
	resp, err := c.requestCert(ctx, hc, certRequest{CSR: csr, ClusterAddr: c.st.ClusterAddr})
	if err != nil && c.IsManager() && c.root.CanSign() {
		resp.Role = c.st.Role
		resp.Cert, err = c.sign(ctx, csr, c.st.NodeID, certRole(c.st.Role), c.st.Addr, c.cfg.Hostname)
	}
	if err != nil {
		return err
	}
	if resp.Role != c.st.Role {
		return fmt.Errorf("cluster: renewal gave a %s certificate to a %s; the role change comes next", resp.Role, c.st.Role)
	}
	if err := c.installCert(ca.NodeCert{CertPEM: resp.Cert, KeyPEM: key}); err != nil {
		return err
	}
	c.renewFrac = ca.RenewFraction()
	c.renewNow.Store(false)
	hc.CloseIdleConnections() // the next calls present the new certificate
	l := c.leaf()
	c.log.Info("certificate renewed", "serial", l.SerialNumber.Text(16), "not_after", l.NotAfter.Format(time.RFC3339), "renew_in", c.renewIn().Round(time.Second))
	return nil
}

// installCert writes the certificate (the store reads its files at each
// handshake) and makes it the one tunnels and the cluster port present.
func (c *Cluster) installCert(nc ca.NodeCert) error {
	cert, err := nc.TLS()
	if err != nil {
		return err
	}
	if err := c.saveNodeCert(nc); err != nil {
		return err
	}
	c.kp.Set(cert)
	return nil
}
