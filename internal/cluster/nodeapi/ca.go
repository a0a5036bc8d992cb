package nodeapi

import (
	"bytes"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
)

// MinCertExpiry is swarm mode's shortest node certificate lifetime.
const MinCertExpiry = time.Hour

// Refusals of a swarm update's CA config; dockerd passes swarm mode's
// gRPC error through, so its words carry the gRPC prefix.
var (
	ErrCertExpiryTooShort = errdefs.ErrInvalidArgument.WithMessage("rpc error: code = InvalidArgument desc = minimum certificate expiry time is: 1h0m0s")
	ErrSigningCA          = errdefs.ErrInvalidArgument.WithMessage("shoal: rotating to a given root CA certificate and key is not supported; run docker swarm ca --rotate without --ca-cert and --ca-key")
	ErrExternalCA         = errdefs.ErrInvalidArgument.WithMessage("shoal: external CAs are not supported; the cluster's own CA signs every node certificate")
)

// CheckCAConfig refuses what swarm update may not set: a node certificate
// lifetime below the minimum (one already in force, as --test-cert-expiry
// sets at init, is kept as it is), a root CA of the caller's, external CAs.
func CheckCAConfig(cur time.Duration, spec swarm.CAConfig) error {
	if e := spec.NodeCertExpiry; e != 0 && e != cur && e < MinCertExpiry {
		return ErrCertExpiryTooShort
	}
	if spec.SigningCACert != "" || spec.SigningCAKey != "" {
		return ErrSigningCA
	}
	if len(spec.ExternalCAs) > 0 {
		return ErrExternalCA
	}
	return nil
}

// TLSInfo is a node's TLSInfo as swarm mode shows it: the roots it trusts
// (roots maps the digests the cluster knows to their PEM; a node that has
// not said is shown trusting fallback, the cluster's root) and its
// certificate's issuer.
func TLSInfo(t *NodeTLS, roots map[string]string, fallback string) swarm.TLSInfo {
	if t == nil {
		return swarm.TLSInfo{TrustRoot: fallback}
	}
	return swarm.TLSInfo{TrustRoot: roots[t.TrustDigest], CertIssuerSubject: t.IssuerSubject, CertIssuerPublicKey: t.IssuerPublicKey}
}

// Unconverged lists the nodes whose certificate is not yet issued by the
// key issuerKey (a root rotation waits for them); a node that left is not
// waited for, it cannot come back.
func Unconverged(nodes []Node, issuerKey []byte) []string {
	var out []string
	for _, n := range nodes {
		if n.Left {
			continue
		}
		if n.TLS == nil || !bytes.Equal(n.TLS.IssuerPublicKey, issuerKey) {
			out = append(out, n.ID)
		}
	}
	return out
}
