package audit

import (
	"net"
	"net/http"
)

// DefaultWho names the caller by what the connection proves: the common
// name of a verified client certificate (its role the certificate's first
// OU, as shoal's certificates carry it), "unix" on the unix socket, or
// else the client's IP address. A certificate that was not verified
// proves nothing and is not read.
func DefaultWho(r *http.Request) (name, role string) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		subj := r.TLS.PeerCertificates[0].Subject
		if len(subj.OrganizationalUnit) > 0 {
			role = subj.OrganizationalUnit[0]
		}
		return subj.CommonName, role
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && a.Network() == "unix" {
		return "unix", ""
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host, ""
	}
	return r.RemoteAddr, ""
}
