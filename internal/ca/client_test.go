package ca

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestIssueClient(t *testing.T) {
	r := mustRoot(t, "cluster1")
	c, err := r.IssueClient(ClientRequest{Name: "alice", Role: ClientOperator,
		Scopes: []string{"com.example.team=web", "env=prod"}, Lifetime: 48 * time.Hour, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := c.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	s := leaf.Subject
	if s.CommonName != "alice" || !slices.Equal(s.OrganizationalUnit, []string{"shoal-operator", "scope:com.example.team=web", "scope:env=prod"}) ||
		!slices.Equal(s.Organization, []string{"cluster1"}) {
		t.Fatalf("subject %+v", s)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) || len(leaf.DNSNames)+len(leaf.IPAddresses) != 0 {
		t.Fatalf("usage %v, SANs %v %v", leaf.ExtKeyUsage, leaf.DNSNames, leaf.IPAddresses)
	}
	if got := leaf.NotAfter.Sub(t0); got != 48*time.Hour {
		t.Fatalf("lifetime %s", got)
	}
	// It chains to the root for client authentication, and only for it.
	opts := x509.VerifyOptions{Roots: r.Pool(), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		t.Fatalf("client auth: %v", err)
	}
	opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if _, err := leaf.Verify(opts); err == nil {
		t.Fatal("a user certificate must not serve")
	}
	// It is not a node identity: the cluster port refuses it.
	if _, err := r.VerifyNodeAt(leaf, t0); err == nil {
		t.Fatal("user certificate accepted as a node")
	}
	if _, err := c.TLS(); err != nil {
		t.Fatalf("key pair: %v", err)
	}
}

func TestIssueClientDefaultsAndCap(t *testing.T) {
	r := mustRoot(t, "cluster1")
	c, err := r.IssueClient(ClientRequest{Name: "bob", Role: ClientAdmin, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := c.Leaf()
	if got := leaf.NotAfter.Sub(t0); got != DefaultClientLifetime {
		t.Fatalf("default lifetime %s", got)
	}
	c, err = r.IssueClient(ClientRequest{Name: "bob", Role: ClientAdmin, Now: t0, Lifetime: 2 * RootLifetime})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = c.Leaf()
	if !leaf.NotAfter.Equal(r.Certificate().NotAfter) {
		t.Fatalf("not capped at the root's expiry: %s vs %s", leaf.NotAfter, r.Certificate().NotAfter)
	}
}

func TestIssueClientRefuses(t *testing.T) {
	r := mustRoot(t, "cluster1")
	for name, req := range map[string]ClientRequest{
		"no name":       {Role: ClientAdmin},
		"control char":  {Name: "a\nb", Role: ClientAdmin},
		"node role":     {Name: "a", Role: ClientRole(RoleManager)},
		"short role":    {Name: "a", Role: "admin"},
		"scope no =":    {Name: "a", Role: ClientViewer, Scopes: []string{"team"}},
		"scope no key":  {Name: "a", Role: ClientViewer, Scopes: []string{"=web"}},
		"too short":     {Name: "a", Role: ClientViewer, Lifetime: time.Second},
		"negative life": {Name: "a", Role: ClientViewer, Lifetime: -time.Hour},
	} {
		if _, err := r.IssueClient(req); !errors.Is(err, ErrInvalidClient) {
			t.Errorf("%s: got %v, want ErrInvalidClient", name, err)
		}
	}
	verifyOnly, err := LoadRootCA(r.CertPEM(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyOnly.IssueClient(ClientRequest{Name: "a", Role: ClientAdmin}); !errors.Is(err, ErrCannotSign) {
		t.Fatalf("verify-only root: %v", err)
	}
}

func TestParseClientRole(t *testing.T) {
	for in, want := range map[string]ClientRole{"admin": ClientAdmin, "operator": ClientOperator, "viewer": ClientViewer, "shoal-viewer": ClientViewer} {
		if got, err := ParseClientRole(in); err != nil || got != want {
			t.Errorf("%s: %q %v", in, got, err)
		}
	}
	for _, in := range []string{"", "root", "swarm-manager", "shoal-root"} {
		if _, err := ParseClientRole(in); !errors.Is(err, ErrInvalidRole) {
			t.Errorf("%q accepted: %v", in, err)
		}
	}
}

func TestSaveClientCert(t *testing.T) {
	r := mustRoot(t, "cluster1")
	c, err := r.IssueClient(ClientRequest{Name: "alice", Role: ClientAdmin})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "alice")
	if err := SaveClientCert(dir, r.CertPEM(), c); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, ClientKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v %v", fi, err)
	}
	// The docker CLI's layout: a key pair and the CA that verifies the server.
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, ClientCertFile), filepath.Join(dir, ClientKeyFile)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ClientCAFile)); string(b) != string(r.CertPEM()) {
		t.Fatal("ca.pem is not the root")
	}
	if err := SaveClientCert(dir, r.CertPEM(), c); !errors.Is(err, ErrExists) {
		t.Fatalf("second write: %v, want ErrExists", err)
	}
}
