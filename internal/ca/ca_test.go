package ca

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustRoot(tb testing.TB, cluster string) *RootCA {
	tb.Helper()
	r, err := NewRootCA(cluster, t0)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func mustIssue(tb testing.TB, r *RootCA, req NodeRequest) NodeCert {
	tb.Helper()
	n, err := r.IssueNode(req)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestRootCA(t *testing.T) {
	r := mustRoot(t, "cluster1")
	c := r.Certificate()
	if !c.IsCA || c.Subject.CommonName != "swarm-ca" || r.ClusterID() != "cluster1" {
		t.Fatalf("root subject %v", c.Subject)
	}
	if life := c.NotAfter.Sub(c.NotBefore); life < 19*365*24*time.Hour {
		t.Fatalf("root lifetime %s", life)
	}
	if c.PublicKeyAlgorithm.String() != "ECDSA" {
		t.Fatalf("root key %s", c.PublicKeyAlgorithm)
	}
	verifyOnly, err := LoadRootCA(r.CertPEM(), nil)
	if err != nil || verifyOnly.CanSign() {
		t.Fatalf("verify-only root: %v, canSign %v", err, verifyOnly.CanSign())
	}
	if _, err := verifyOnly.IssueNode(NodeRequest{NodeID: "n", Role: RoleWorker}); !errors.Is(err, ErrCannotSign) {
		t.Fatalf("issue without key: %v", err)
	}
	other := mustRoot(t, "cluster1")
	if _, err := LoadRootCA(r.CertPEM(), other.KeyPEM()); !errors.Is(err, ErrInvalidCert) {
		t.Fatalf("mismatched key accepted: %v", err)
	}
}

func TestIssueAndVerify(t *testing.T) {
	r := mustRoot(t, "cluster1")
	n := mustIssue(t, r, NodeRequest{NodeID: "node1", Role: RoleManager, Hosts: []string{"127.0.0.1", "m1.example"}, Now: t0})
	leaf, err := n.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	if got := leaf.NotAfter.Sub(t0); got != DefaultNodeLifetime {
		t.Fatalf("lifetime %s", got)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Fatalf("IP SANs %v", leaf.IPAddresses)
	}
	if err := leaf.VerifyHostname("swarm-manager"); err != nil {
		t.Fatalf("role SAN: %v", err)
	}
	if err := leaf.VerifyHostname("m1.example"); err != nil {
		t.Fatalf("host SAN: %v", err)
	}
	id, err := r.VerifyNodeAt(leaf, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{NodeID: "node1", Role: RoleManager, ClusterID: "cluster1", NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		IssuerSubject: r.Certificate().RawSubject, IssuerPublicKey: r.Certificate().RawSubjectPublicKeyInfo}
	if !reflect.DeepEqual(id, want) {
		t.Fatalf("identity %+v, want %+v", id, want)
	}
	if _, err := r.VerifyNodeAt(leaf, t0.Add(DefaultNodeLifetime+time.Minute)); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("expired accepted: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	r := mustRoot(t, "cluster1")
	foreign := mustRoot(t, "cluster1")
	otherCluster := mustRoot(t, "cluster2")
	leafOf := func(root *RootCA, id string, role Role) NodeCert {
		return mustIssue(t, root, NodeRequest{NodeID: id, Role: role})
	}
	tests := []struct {
		name string
		cert NodeCert
		want error
	}{
		{"other CA same cluster name", leafOf(foreign, "n1", RoleWorker), ErrUntrusted},
		{"other cluster", leafOf(otherCluster, "n1", RoleWorker), ErrUntrusted},
		{"revoked", leafOf(r, "gone", RoleWorker), ErrRevoked},
	}
	r.Revocations().Revoke("gone")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf, _ := tt.cert.Leaf()
			if _, err := r.VerifyNode(leaf); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	worker, _ := leafOf(r, "w1", RoleWorker).Leaf()
	if _, err := r.VerifyNodeRole(worker, RoleManager); !errors.Is(err, ErrWrongRole) {
		t.Fatalf("worker passed as manager: %v", err)
	}
	if _, err := r.VerifyNodeRole(worker, RoleWorker, RoleManager); err != nil {
		t.Fatal(err)
	}
	r.Revocations().Replace(nil)
	leaf, _ := tests[2].cert.Leaf()
	if _, err := r.VerifyNode(leaf); err != nil {
		t.Fatalf("after Replace(nil): %v", err)
	}
}

func TestSignCSRTakesOnlyTheKey(t *testing.T) {
	r := mustRoot(t, "cluster1")
	csr, key, err := NewCSR()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := r.SignCSR(csr, NodeRequest{NodeID: "w9", Role: RoleWorker, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	nc := NodeCert{CertPEM: certPEM, KeyPEM: key}
	if _, err := nc.TLS(); err != nil {
		t.Fatalf("cert does not match CSR key: %v", err)
	}
	if _, err := r.SignCSR([]byte("junk"), NodeRequest{NodeID: "x", Role: RoleWorker}); !errors.Is(err, ErrInvalidCSR) {
		t.Fatalf("junk CSR: %v", err)
	}
	if _, err := r.SignCSR(csr, NodeRequest{NodeID: "x", Role: "swarm-ca"}); !errors.Is(err, ErrInvalidRole) {
		t.Fatalf("bad role: %v", err)
	}
	if _, err := r.SignCSR(csr, NodeRequest{NodeID: "x", Role: RoleWorker, Lifetime: time.Minute}); !errors.Is(err, ErrInvalidCert) {
		t.Fatalf("too short lifetime: %v", err)
	}
}

func TestFilesAndPermissions(t *testing.T) {
	dir := t.TempDir()
	r := mustRoot(t, "c")
	n := mustIssue(t, r, NodeRequest{NodeID: "n", Role: RoleManager})
	if err := SaveRootCA(dir, r); err != nil {
		t.Fatal(err)
	}
	if err := SaveNodeCert(dir, n); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{RootKeyFile: 0o600, NodeKeyFile: 0o600, RootCertFile: 0o644, NodeCertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	r2, err := LoadRootCAFrom(dir)
	if err != nil || !r2.CanSign() || r2.Digest() != r.Digest() {
		t.Fatalf("reload root: %v", err)
	}
	n2, err := LoadNodeCertFrom(dir)
	if err != nil || string(n2.CertPEM) != string(n.CertPEM) {
		t.Fatalf("reload node: %v", err)
	}
	os.Remove(filepath.Join(dir, RootKeyFile))
	r3, err := LoadRootCAFrom(dir)
	if err != nil || r3.CanSign() {
		t.Fatalf("verify-only reload: %v", err)
	}
}

func TestRenewal(t *testing.T) {
	nb := t0
	na := t0.Add(100 * time.Hour)
	tests := []struct {
		frac float64
		want time.Duration
	}{
		{0, 50 * time.Hour}, {1, 80 * time.Hour}, {0.5, 65 * time.Hour}, {-3, 50 * time.Hour}, {7, 80 * time.Hour},
	}
	for _, tt := range tests {
		if got := RenewAt(nb, na, tt.frac).Sub(nb); got != tt.want {
			t.Errorf("RenewAt(frac %v) = +%s, want +%s", tt.frac, got, tt.want)
		}
	}
	if got := RenewIn(nb, na, t0.Add(10*time.Hour), 0); got != 40*time.Hour {
		t.Errorf("RenewIn = %s", got)
	}
	if NeedsRenewal(nb, na, t0.Add(49*time.Hour), 0) || !NeedsRenewal(nb, na, t0.Add(81*time.Hour), 1) {
		t.Error("NeedsRenewal window wrong")
	}
	if RenewIn(nb, na, t0.Add(200*time.Hour), 0.3) != 0 {
		t.Error("expired cert not due")
	}
	for range 1000 {
		f := RenewFraction()
		if f < 0 || f >= 1 {
			t.Fatalf("fraction %v", f)
		}
	}
}

func TestMutualTLS(t *testing.T) {
	r := mustRoot(t, "c")
	kp := func(root *RootCA, id string, role Role) *Keypair {
		c, err := mustIssue(t, root, NodeRequest{NodeID: id, Role: role}).TLS()
		if err != nil {
			t.Fatal(err)
		}
		return NewKeypair(c)
	}
	server := kp(r, "m1", RoleManager)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.ServerTLSConfig(server))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	dial := func(client *Keypair) error {
		c, err := tls.Dial("tcp", ln.Addr().String(), r.ClientTLSConfig(client))
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3 reports a refused client certificate on the first read.
		_, err = c.Read(make([]byte, 1))
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	if err := dial(kp(r, "w1", RoleWorker)); err != nil {
		t.Fatalf("worker refused: %v", err)
	}
	if err := dial(kp(mustRoot(t, "c"), "w2", RoleWorker)); err == nil {
		t.Fatal("foreign CA admitted")
	}
	r.Revocations().Revoke("w3")
	if err := dial(kp(r, "w3", RoleWorker)); err == nil {
		t.Fatal("revoked node admitted")
	}
}

func TestShortLifetimeAndRenewInCert(t *testing.T) {
	r, err := NewRootCA("c1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.IssueNode(NodeRequest{NodeID: "n", Role: RoleWorker, Lifetime: 20 * time.Second}); !errors.Is(err, ErrInvalidCert) {
		t.Fatalf("20s without AllowShort: %v", err)
	}
	if _, err := r.IssueNode(NodeRequest{NodeID: "n", Role: RoleWorker, Lifetime: 5 * time.Second, AllowShort: true}); !errors.Is(err, ErrInvalidCert) {
		t.Fatalf("5s with AllowShort: %v", err)
	}
	now := time.Now()
	nc, err := r.IssueNode(NodeRequest{NodeID: "n", Role: RoleWorker, Lifetime: 20 * time.Second, AllowShort: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := nc.Leaf()
	near := func(a, b time.Duration) bool { return (a - b).Abs() <= time.Second } // certificates keep whole seconds
	if got := RenewInCert(leaf, now, 0); !near(got, 10*time.Second) {
		t.Errorf("renew in %s at 50%%, want 10s", got)
	}
	if got := RenewInCert(leaf, now, 1); !near(got, 16*time.Second) {
		t.Errorf("renew in %s at 80%%, want 16s", got)
	}
}
