package ca

import (
	"crypto/tls"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// Keypair holds a node's current certificate so renewal can swap it under
// live listeners and dialers without rebuilding their tls.Config.
type Keypair struct {
	cur atomic.Pointer[tls.Certificate]
}

// NewKeypair returns a holder for cert.
func NewKeypair(cert tls.Certificate) *Keypair {
	k := &Keypair{}
	k.Set(cert)
	return k
}

// Set replaces the certificate; new handshakes use it.
func (k *Keypair) Set(cert tls.Certificate) { k.cur.Store(&cert) }

// Get returns the current certificate.
func (k *Keypair) Get() *tls.Certificate { return k.cur.Load() }

// ServerTLSConfig is the cluster port's configuration: it presents kp and
// admits only clients whose certificate VerifyNode accepts with one of the
// allowed roles (any role when none is given). The chain is checked in
// VerifyConnection, against the roots trusted at the handshake, so that a
// rotation applies to a live listener.
func (r *RootCA) ServerTLSConfig(kp *Keypair, allowed ...Role) *tls.Config {
	if len(allowed) == 0 {
		allowed = []Role{RoleManager, RoleWorker}
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return kp.Get(), nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := r.verifyPeer(cs, allowed)
			return err
		},
	}
}

// ClientTLSConfig is how a node dials a manager: it presents kp and accepts
// only a server whose certificate is a non-revoked manager of this cluster.
// The server name is the manager role, which every manager certificate
// carries as a DNS name, so the address dialled does not matter. The
// standard verification is replaced by VerifyConnection's, which reads the
// roots trusted at the handshake, so that a rotation applies to a live dialer.
func (r *RootCA) ClientTLSConfig(kp *Keypair) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verified in VerifyConnection below, against the current roots.
		InsecureSkipVerify: true,
		ServerName:         string(RoleManager),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return kp.Get(), nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if _, err := r.verifyPeer(cs, []Role{RoleManager}); err != nil {
				return err
			}
			if err := cs.PeerCertificates[0].VerifyHostname(string(RoleManager)); err != nil {
				return fmt.Errorf("%w: %w", ErrUntrusted, err)
			}
			return nil
		},
	}
}

// PeerIdentity verifies the peer of an established TLS connection.
func (r *RootCA) PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	return r.verifyPeer(cs, []Role{RoleManager, RoleWorker})
}

func (r *RootCA) verifyPeer(cs tls.ConnectionState, allowed []Role) (Identity, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, fmt.Errorf("%w: peer sent no certificate", ErrUntrusted)
	}
	id, err := r.VerifyChainAt(cs.PeerCertificates, time.Now())
	if err != nil {
		return Identity{}, err
	}
	if !slices.Contains(allowed, id.Role) {
		return Identity{}, fmt.Errorf("%w: %s is %s", ErrWrongRole, id.NodeID, id.Role)
	}
	return id, nil
}
