package discovery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// pki writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir.
type pki struct{ ca, srvCert, srvKey, cliCert, cliKey string }

func makePKI(t *testing.T, dir string) pki {
	t.Helper()
	now := time.Now().Add(-time.Hour)
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now, NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name string, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issue := func(serial int64, name string, usage x509.ExtKeyUsage) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now, NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalECPrivateKey(k)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kd)
	}
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.srvCert, p.srvKey = issue(2, "server", x509.ExtKeyUsageServerAuth)
	p.cliCert, p.cliKey = issue(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

// TestEtcdTLS: join, list and manage reach an etcd that requires client
// certificates with --discovery-opt kv.cacertfile/kv.certfile/kv.keyfile.
func TestEtcdTLS(t *testing.T) {
	dir := t.TempDir()
	p := makePKI(t, dir)
	client := fmt.Sprintf("127.0.0.1:%d", shoaltest.FreePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", shoaltest.FreePort(t))
	etcd := shoaltest.StartProc(t, "etcd", nil, "etcd", "--name", "t", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "https://"+client, "--advertise-client-urls", "https://"+client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "t="+peer,
		"--cert-file", p.srvCert, "--key-file", p.srvKey, "--client-cert-auth", "--trusted-ca-file", p.ca)
	uri := "etcd://" + client + "/tls"
	opts := []string{"--discovery-opt", "kv.cacertfile=" + p.ca, "--discovery-opt", "kv.certfile=" + p.cliCert, "--discovery-opt", "kv.keyfile=" + p.cliKey}
	shoaltest.Eventually(t, 20*time.Second, "etcd with TLS answers shoal list", func() error {
		if !etcd.Alive() {
			t.Fatalf("etcd exited:\n%s", etcd.Tail(20))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := shoal(t, ctx, append(append([]string{"list", "--timeout", "2s"}, opts...), uri)...)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	join(t, uri, engineAddr(0), opts...)
	m := startManager(t, "manager", uri, opts...)
	wantPool(t, m, 15*time.Second, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := shoal(t, ctx, append(append([]string{"list"}, opts...), uri)...)
	if err != nil || !slices.Equal(lines(out), []string{engineAddr(0)}) {
		t.Fatalf("shoal list with TLS: %q %v", out, err)
	}
	// Without the client certificate the store refuses.
	cmd := exec.CommandContext(ctx, shoaltest.Binary(t), "list", "--timeout", "3s", "--discovery-opt", "kv.cacertfile="+p.ca, uri)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("list without a client certificate succeeded: %q", out)
	}
}
