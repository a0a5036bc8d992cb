package ca

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ErrCannotCrossSign is a root that may not have an intermediate below it
// (a path length of 0, as roots created before rotations existed): nodes
// trusting only it would refuse certificates of its successor.
var ErrCannotCrossSign = errors.New("ca: this root CA cannot cross-sign a new root (its path length is 0)")

// Rotation is the material of a root CA rotation, all PEM: the next root
// and its key, and the next root's certificate signed by the current
// root's key. Certificates the next root issues are sent with CrossSigned,
// so that a node still trusting only the current root accepts them.
type Rotation struct {
	Cert        []byte `json:"cert"`
	Key         []byte `json:"key"`
	CrossSigned []byte `json:"cross_signed"`
}

// NewRotation creates the next root of r's cluster and cross-signs it with r's key.
func (r *RootCA) NewRotation(now time.Time) (Rotation, error) {
	certPEM, keyPEM, err := newRootMaterial(r.clusterID, now)
	if err != nil {
		return Rotation{}, err
	}
	cross, err := r.CrossSign(certPEM, now)
	if err != nil {
		return Rotation{}, err
	}
	return Rotation{Cert: certPEM, Key: keyPEM, CrossSigned: cross}, nil
}

// CrossSign issues a CA certificate with the subject and public key of the
// root nextPEM, signed by r's signing key and valid while both are.
func (r *RootCA) CrossSign(nextPEM []byte, now time.Time) ([]byte, error) {
	st := r.state()
	if st.key == nil {
		return nil, ErrCannotSign
	}
	if st.issuer.MaxPathLen == 0 && st.issuer.BasicConstraintsValid {
		return nil, ErrCannotCrossSign
	}
	next, err := ParseCertificatePEM(nextPEM)
	if err != nil {
		return nil, err
	}
	if !isClusterRoot(next) {
		return nil, fmt.Errorf("%w: not a cluster root", ErrInvalidCert)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               next.Subject,
		SubjectKeyId:          next.SubjectKeyId,
		NotBefore:             now.Add(-backdate),
		NotAfter:              minTime(next.NotAfter, st.issuer.NotAfter),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // only node certificates below it
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, st.issuer, next.PublicKey, st.key)
	if err != nil {
		return nil, fmt.Errorf("ca: cross-sign root: %w", err)
	}
	return encodeCert(der), nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
