package ca

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParseJoinToken checks that a token either parses and round-trips
// through String (modulo surrounding space), or is refused with
// ErrInvalidToken; and that Admit never grants a role to a token that is
// not exactly one of the cluster's.
func FuzzParseJoinToken(f *testing.F) {
	w := JoinToken{Digest: strings.Repeat("a", digestLen), Secret: strings.Repeat("0", secretLen)}
	m := JoinToken{Digest: w.Digest, Secret: strings.Repeat("z", secretLen)}
	tokens := JoinTokens{Worker: w, Manager: m}
	for _, s := range []string{
		w.String(), m.String(), " " + w.String() + "\n", "SWMTKN-1--", "SWMTKN-2-" + w.Digest + "-" + w.Secret,
		"SWMTKN-1-" + strings.ToUpper(w.Digest) + "-" + w.Secret, "SWMTKN-1-" + w.Digest + "-" + w.Secret + "-x",
		"", "-", "SWMTKN", "SWMTKN-1-" + strings.Repeat("é", digestLen/2) + "-" + w.Secret,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseJoinToken(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("ParseJoinToken(%q): error %v does not match ErrInvalidToken", s, err)
			}
		} else if tok.String() != strings.TrimSpace(s) {
			t.Fatalf("ParseJoinToken(%q).String() = %q", s, tok.String())
		}
		role, err := tokens.Admit(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrTokenCAMismatch) {
				t.Fatalf("Admit(%q): error %v is not a token error", s, err)
			}
			return
		}
		want := map[Role]JoinToken{RoleWorker: w, RoleManager: m}[role]
		if strings.TrimSpace(s) != want.String() {
			t.Fatalf("Admit(%q) granted %q, whose token is %q", s, role, want.String())
		}
	})
}

// FuzzSignCSR feeds the certificate request a joining or renewing node
// sends to the cluster port: it is refused with ErrInvalidCSR, or signed
// into a certificate whose identity is the signer's (node ID, role,
// cluster), whatever the request asked for.
func FuzzSignCSR(f *testing.F) {
	r, err := NewRootCA("c1", time.Now().Add(-time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	csr, _, err := NewCSR()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(csr)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add(r.CertPEM()) // a certificate, not a request
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		certPEM, err := r.SignCSR(in, NodeRequest{NodeID: "n1", Role: RoleWorker})
		if err != nil {
			if !errors.Is(err, ErrInvalidCSR) {
				t.Fatalf("SignCSR: error %v is not ErrInvalidCSR", err)
			}
			return
		}
		leaf, err := ParseCertificatePEM(certPEM)
		if err != nil {
			t.Fatalf("SignCSR signed what does not parse: %v", err)
		}
		id, err := r.VerifyNode(leaf)
		if err != nil {
			t.Fatalf("SignCSR signed a certificate its root refuses: %v", err)
		}
		if id.NodeID != "n1" || id.Role != RoleWorker || id.ClusterID != "c1" {
			t.Fatalf("signed identity %+v, want node n1, %s, cluster c1", id, RoleWorker)
		}
	})
}
