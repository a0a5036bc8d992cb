package ca

import (
	"crypto/x509"
	"math/rand/v2"
	"time"
)

// A certificate is renewed at a random point between 50% and 80% of its
// lifetime (as swarm mode does), so a fleet issued together does not renew together.
const (
	renewLow  = 0.5
	renewHigh = 0.8
)

// RenewAt is when a certificate valid from notBefore to notAfter should be
// renewed. frac in [0,1) picks the point inside the 50%–80% window; pass
// RenewFraction() in production and fixed values in tests.
func RenewAt(notBefore, notAfter time.Time, frac float64) time.Time {
	frac = min(max(frac, 0), 1)
	life := notAfter.Sub(notBefore)
	at := renewLow + (renewHigh-renewLow)*frac
	return notBefore.Add(time.Duration(float64(life) * at))
}

// RenewIn is how long from now until renewal is due; zero when it is due
// already (including an expired certificate).
func RenewIn(notBefore, notAfter, now time.Time, frac float64) time.Duration {
	return max(RenewAt(notBefore, notAfter, frac).Sub(now), 0)
}

// NeedsRenewal reports whether renewal is due at now.
func NeedsRenewal(notBefore, notAfter, now time.Time, frac float64) bool {
	return RenewIn(notBefore, notAfter, now, frac) == 0
}

// RenewFraction draws the random point used by RenewAt.
func RenewFraction() float64 { return rand.Float64() }

// RenewInCert is RenewIn for a node certificate issued by this package,
// whose NotBefore is backdated to absorb clock skew: the window is counted
// from the issue time, so a short-lived certificate is not renewed at once.
func RenewInCert(cert *x509.Certificate, now time.Time, frac float64) time.Duration {
	return RenewInCertMax(cert, now, frac, 0)
}

// RenewInCertMax is RenewInCert in a cluster whose certificates are now
// issued for maxLife (swarm update --cert-expiry): a certificate issued for
// longer is renewed as if it had been issued for maxLife, so a shorter
// expiry takes effect within it rather than at the old renewal point.
// maxLife <= 0 means no cap.
func RenewInCertMax(cert *x509.Certificate, now time.Time, frac float64, maxLife time.Duration) time.Duration {
	issued := cert.NotBefore.Add(backdate)
	if !issued.Before(cert.NotAfter) {
		issued = cert.NotBefore
	}
	end := cert.NotAfter
	if maxLife > 0 && issued.Add(maxLife).Before(end) {
		end = issued.Add(maxLife)
	}
	return RenewIn(issued, end, now, frac)
}
