package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
)

func TestAPITLS(t *testing.T) {
	m := initManager(t, "mgr-host")

	// The API's certificate is the node's, named as the docker CLI dials it.
	cert, err := m.APICertificate(nil)
	if err != nil || cert.Leaf == nil {
		t.Fatalf("certificate %v %v", cert, err)
	}
	for _, host := range []string{"127.0.0.1", "localhost", "mgr-host"} {
		if err := cert.Leaf.VerifyHostname(host); err != nil {
			t.Errorf("manager certificate does not name %s: %v", host, err)
		}
	}

	// A user certificate issued from the data directory's CA chains to
	// the pool the API checks clients against.
	root, addr, err := LocalCA(m.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if addr != "127.0.0.1" {
		t.Fatalf("advertise address %q", addr)
	}
	user, err := root.IssueClient(ca.ClientRequest{Name: "alice", Role: ca.ClientAdmin})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := user.Leaf()
	opts := x509.VerifyOptions{Roots: m.APIClientCAs(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		t.Fatalf("user certificate: %v", err)
	}
	if err := m.VerifyAPIClient(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}); err != nil {
		t.Fatalf("user certificate refused: %v", err)
	}

	// A removed node's certificate is refused on the API as on the port.
	gone, err := m.root.IssueNode(ca.NodeRequest{NodeID: "gone", Role: ca.RoleWorker, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	goneLeaf, _ := gone.Leaf()
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{goneLeaf}}
	if err := m.VerifyAPIClient(cs); err != nil {
		t.Fatalf("worker certificate refused before removal: %v", err)
	}
	m.root.Revocations().Revoke("gone")
	if err := m.VerifyAPIClient(cs); !errors.Is(err, ca.ErrRevoked) {
		t.Fatalf("revoked node: %v", err)
	}
}

func TestLocalCARefuses(t *testing.T) {
	if _, _, err := LocalCA(t.TempDir()); !errors.Is(err, ErrNoCluster) {
		t.Fatalf("empty data dir: %v", err)
	}
	// A worker holds the root certificate only.
	root, err := ca.NewRootCA("c1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	verifyOnly, err := ca.LoadRootCA(root.CertPEM(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ca.SaveRootCA(dir, verifyOnly); err != nil {
		t.Fatal(err)
	}
	if _, err := readSigningRoot(dir); !errors.Is(err, ErrNoCAKey) {
		t.Fatalf("worker: %v", err)
	}
}

func TestCertHosts(t *testing.T) {
	got := certHosts(ca.RoleManager, "10.0.0.1", "node-1.example")
	if !slices.Equal(got, []string{"10.0.0.1", "127.0.0.1", "localhost", "node-1.example"}) {
		t.Fatalf("manager hosts %v", got)
	}
	if got := certHosts(ca.RoleManager, "10.0.0.1", "bad host/name"); slices.Contains(got, "bad host/name") {
		t.Fatalf("invalid host name kept: %v", got)
	}
	if got := certHosts(ca.RoleWorker, "10.0.0.2", "w1"); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Fatalf("worker hosts %v", got)
	}
}
