package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

// rotationRoots are the roots a cluster goes through in a rotation, as
// the managers (with keys) and the nodes (verify only) hold them.
type rotationRoots struct {
	old      *RootCA // before: the old root signs
	rotating *RootCA // during: old and new trusted, the new key signs with the cross-signed chain
	after    *RootCA // after: the new root alone, still sending the chain
	oldOnly  *RootCA // a node that has not heard of the rotation yet
	newOnly  *RootCA // a node (or a restarted store member) that trusts only the new root
}

func mustRotation(t *testing.T) rotationRoots {
	t.Helper()
	old := mustRoot(t, "c1")
	rot, err := old.NewRotation(t0)
	if err != nil {
		t.Fatal(err)
	}
	load := func(m RootMaterial) *RootCA {
		r, err := LoadRoot(m)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	return rotationRoots{
		old:      old,
		rotating: load(RootMaterial{Cert: old.CertPEM(), Trusted: rot.Cert, Key: rot.Key, Chain: rot.CrossSigned}),
		after:    load(RootMaterial{Cert: rot.Cert, Key: rot.Key, Chain: rot.CrossSigned}),
		oldOnly:  load(RootMaterial{Cert: old.CertPEM()}),
		newOnly:  load(RootMaterial{Cert: rot.Cert}),
	}
}

// chainOf parses a node certificate with the chain sent after it.
func chainOf(t *testing.T, n NodeCert) []*x509.Certificate {
	t.Helper()
	certs, err := parseCertificatesPEM(n.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func TestCrossSignedChainVerifiesUnderBothRoots(t *testing.T) {
	rr := mustRotation(t)
	at := t0.Add(time.Hour)
	during := mustIssue(t, rr.rotating, NodeRequest{NodeID: "w1", Role: RoleWorker, Now: t0})
	chain := chainOf(t, during)
	if len(chain) != 2 {
		t.Fatalf("a certificate issued during the rotation comes with %d certificates, want leaf and cross-signed root", len(chain))
	}
	newRoot := rr.newOnly.Certificate()
	for name, verifier := range map[string]*RootCA{"old root only": rr.oldOnly, "new root only": rr.newOnly, "both": rr.rotating} {
		id, err := verifier.VerifyChainAt(chain, at)
		if err != nil {
			t.Fatalf("%s refuses a new certificate with its chain: %v", name, err)
		}
		if !bytes.Equal(id.IssuerPublicKey, newRoot.RawSubjectPublicKeyInfo) || !bytes.Equal(id.IssuerSubject, newRoot.RawSubject) {
			t.Fatalf("%s: issuer is not the new root", name)
		}
	}
	if _, err := rr.oldOnly.VerifyChainAt(chain[:1], at); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("old root accepts a new certificate without the cross-signed root: %v", err)
	}

	before := chainOf(t, mustIssue(t, rr.old, NodeRequest{NodeID: "w2", Role: RoleWorker, Now: t0}))
	if _, err := rr.rotating.VerifyChainAt(before, at); err != nil {
		t.Fatalf("an old certificate is refused during the rotation: %v", err)
	}
	if _, err := rr.newOnly.VerifyChainAt(before, at); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("an old certificate is accepted once the old root is dropped: %v", err)
	}

	// After the rotation, certificates still come with the cross-signed
	// root: a store member that loaded the old root at its start accepts them.
	later := chainOf(t, mustIssue(t, rr.after, NodeRequest{NodeID: "w3", Role: RoleWorker, Now: t0}))
	if _, err := rr.oldOnly.VerifyChainAt(later, at); err != nil {
		t.Fatalf("old root refuses a certificate issued after the rotation: %v", err)
	}
}

func TestRotatingRootShowsOldRootAndTrustsBoth(t *testing.T) {
	rr := mustRotation(t)
	if !bytes.Equal(rr.rotating.CertPEM(), rr.old.CertPEM()) {
		t.Fatal("the cluster's root changed before the rotation finished (join tokens pin it)")
	}
	want := append(rr.old.CertPEM(), rr.newOnly.CertPEM()...)
	if !bytes.Equal(rr.rotating.TrustPEM(), want) {
		t.Fatal("trust bundle is not old root then new root")
	}
	if !bytes.Equal(rr.rotating.Issuer().Raw, rr.newOnly.Certificate().Raw) {
		t.Fatal("the new root does not sign during the rotation")
	}
	if !bytes.Equal(rr.old.TrustPEM(), rr.old.CertPEM()) {
		t.Fatal("outside a rotation the trust bundle is not the root alone")
	}
	// A node told the bundle loads it as it would from its file.
	node, err := LoadRootCA(rr.rotating.TrustPEM(), nil)
	if err != nil || !bytes.Equal(node.TrustPEM(), want) || !bytes.Equal(node.CertPEM(), rr.old.CertPEM()) {
		t.Fatalf("bundle round trip: %v", err)
	}
}

func TestRotatingRootSurvivesFiles(t *testing.T) {
	rr := mustRotation(t)
	dir := t.TempDir()
	if err := SaveRootCA(dir, rr.rotating); err != nil {
		t.Fatal(err)
	}
	back, err := LoadRootCAFrom(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.TrustPEM(), rr.rotating.TrustPEM()) || !bytes.Equal(back.Issuer().Raw, rr.newOnly.Certificate().Raw) ||
		!bytes.Equal(back.ChainPEM(), rr.rotating.ChainPEM()) || len(back.ChainPEM()) == 0 {
		t.Fatal("a restarted manager lost the rotation's trust or signer")
	}
}

func TestReplaceAppliesToLiveTLS(t *testing.T) {
	rr := mustRotation(t)
	server, err := LoadRoot(RootMaterial{Cert: rr.old.CertPEM()})
	if err != nil {
		t.Fatal(err)
	}
	serverKP := tlsKeypair(t, rr.old, "m1", RoleManager)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server.ServerTLSConfig(serverKP))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go acceptAndHandshake(ln)
	dial := func(client *Keypair, trust *RootCA) error {
		c, err := tls.Dial("tcp", ln.Addr().String(), trust.ClientTLSConfig(client))
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err = c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	newWorker := tlsKeypair(t, rr.rotating, "w1", RoleWorker)
	oldWorker := tlsKeypair(t, rr.old, "w2", RoleWorker)
	if err := dial(newWorker, rr.newOnly); err == nil {
		t.Fatal("a node trusting only the new root accepted a manager certificate of the old root")
	}
	if err := dial(newWorker, rr.oldOnly); err != nil {
		t.Fatalf("new certificate refused by a listener trusting the old root: %v", err)
	}
	// The manager takes a new certificate and drops the old root: the same
	// listener now refuses old certificates and serves new ones.
	serverKP.Set(*tlsKeypair(t, rr.after, "m1", RoleManager).Get())
	if err := server.Replace(rr.newOnly); err != nil {
		t.Fatal(err)
	}
	if err := dial(oldWorker, rr.rotating); err == nil {
		t.Fatal("an old certificate is admitted after the old root was dropped")
	}
	if err := dial(newWorker, rr.oldOnly); err != nil {
		t.Fatalf("a node still trusting only the old root cannot reach the rotated manager: %v", err)
	}
	if err := server.Replace(mustRoot(t, "other")); !errors.Is(err, ErrWrongCluster) {
		t.Fatalf("replaced by another cluster's root: %v", err)
	}
}

func tlsKeypair(t *testing.T, root *RootCA, id string, role Role) *Keypair {
	t.Helper()
	c, err := mustIssue(t, root, NodeRequest{NodeID: id, Role: role}).TLS()
	if err != nil {
		t.Fatal(err)
	}
	return NewKeypair(c)
}

func acceptAndHandshake(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.(*tls.Conn).Handshake()
		c.Close()
	}
}

func TestLegacyRootCannotCrossSign(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: rootCN, Organization: []string{"c1"}},
		NotBefore: t0, NotAfter: t0.Add(RootLifetime), KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := encodeKey(key)
	legacy, err := LoadRootCA(encodeCert(der), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := legacy.NewRotation(t0); !errors.Is(err, ErrCannotCrossSign) {
		t.Fatalf("a path-length-0 root cross-signed: %v", err)
	}
}

func TestRenewInCertMax(t *testing.T) {
	r := mustRoot(t, "c1")
	leaf, err := mustIssue(t, r, NodeRequest{NodeID: "n", Role: RoleWorker, Now: t0}).Leaf()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := RenewInCertMax(leaf, t0, 0, 0), DefaultNodeLifetime/2; got != want {
		t.Fatalf("uncapped: renew in %s, want %s", got, want)
	}
	if got, want := RenewInCertMax(leaf, t0, 0, 2*time.Hour), time.Hour; got != want {
		t.Fatalf("capped at 2h: renew in %s, want %s", got, want)
	}
	if got := RenewInCertMax(leaf, t0.Add(3*time.Hour), 1, 2*time.Hour); got != 0 {
		t.Fatalf("a 90-day certificate 3h old in a 2h cluster: renew in %s, want now", got)
	}
	if got, want := RenewInCertMax(leaf, t0, 0, 365*24*time.Hour), DefaultNodeLifetime/2; got != want {
		t.Fatalf("a cap above the lifetime changes nothing: %s, want %s", got, want)
	}
}

func TestClientCertificateDuringRotation(t *testing.T) {
	rr := mustRotation(t)
	c, err := rr.rotating.IssueClient(ClientRequest{Name: "alice", Role: ClientAdmin, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	chain := chainOf(t, c)
	inter := x509.NewCertPool()
	inter.AddCert(chain[1])
	for name, trust := range map[string]*RootCA{"old root only": rr.oldOnly, "new root only": rr.newOnly} {
		opts := x509.VerifyOptions{Roots: trust.Pool(), Intermediates: inter, CurrentTime: t0.Add(time.Hour), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if _, err := chain[0].Verify(opts); err != nil {
			t.Fatalf("%s refuses a user certificate issued during the rotation: %v", name, err)
		}
	}
	if _, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil {
		t.Fatalf("the docker CLI could not load it: %v", err)
	}
}
