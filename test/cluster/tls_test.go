package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/test/shoaltest"
)

const tlsAPIPort = 2386 // the TLS test's API, apart from the other tests' apiPort

// TestTLSAPI: `shoal init --tlsverify` on all interfaces needs no
// certificate files; a certificate from `shoal cert create` lets the real
// docker CLI in with DOCKER_TLS_VERIFY; plain HTTP, no client certificate
// and a certificate of another CA are refused while the manager keeps
// serving; and `shoal manage` refuses plain TCP beyond loopback.
func TestTLSAPI(t *testing.T) {
	e := bed.Engines[0]
	dir := filepath.Join(t.TempDir(), "m0")
	p := startShoal(t, 0, "tls-manager", "init", "--data-dir", dir, "--engine", e.UnixHost(), "--advertise-addr", e.IP,
		"--tlsverify", "-H", fmt.Sprintf("tcp://0.0.0.0:%d", tlsAPIPort), "--engine-refresh-interval", "500ms")
	host := fmt.Sprintf("tcp://%s:%d", e.IP, tlsAPIPort)

	certs := filepath.Join(t.TempDir(), "alice")
	var out string
	shoaltest.Eventually(t, 30*time.Second, "shoal cert create", func() error {
		var err error
		out, err = shoalCmd(t, "cert", "create", "--data-dir", dir, "--name", "alice", "--role", "admin", "--out", certs)
		return err
	})
	if !strings.Contains(out, "DOCKER_CERT_PATH="+certs) || !strings.Contains(out, "DOCKER_TLS_VERIFY=1") {
		t.Fatalf("cert create printed:\n%s", out)
	}
	shoaltest.Eventually(t, 30*time.Second, "docker --tlsverify info", func() error {
		_, err := dockerTLS(host, certs, "info", "--format", "{{.Name}}")
		return err
	})

	addr := fmt.Sprintf("%s:%d", e.IP, tlsAPIPort)
	if body, err := httpGet(&http.Client{Timeout: 5 * time.Second}, "http://"+addr+"/_ping"); !strings.Contains(body, "Client sent an HTTP request to an HTTPS server") {
		t.Errorf("plain HTTP to the TLS port: %q %v", body, err)
	}
	if _, err := httpGet(tlsClient(t, certs, nil), "https://"+addr+"/_ping"); err == nil {
		t.Error("no client certificate: accepted")
	}
	pair := foreignCert(t, "mallory")
	if _, err := httpGet(tlsClient(t, certs, &pair), "https://"+addr+"/_ping"); err == nil {
		t.Error("a certificate of another CA: accepted")
	}
	if out, err := dockerTLS(host, certs, "ps", "-a"); err != nil {
		t.Fatalf("docker ps after the refusals: %v\n%s", err, out)
	}
	shoaltest.Eventually(t, 5*time.Second, "the refusal in the log", func() error {
		if tail := p.LogTail(200); !strings.Contains(tail, "API TLS handshake refused") || !strings.Contains(tail, "level=WARN") {
			return fmt.Errorf("log:\n%s", p.LogTail(20))
		}
		return nil
	})

	t.Run("manage refuses plain TCP", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, shoaltest.Binary(t), "manage", "-H", "tcp://0.0.0.0:2387", "nodes://127.0.0.1:2375")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "refusing to serve the Docker API on tcp://0.0.0.0:2387 without --tlsverify") {
			t.Fatalf("err %v, output:\n%s", err, out)
		}
	})
}

// dockerTLS runs the docker CLI 28 as a user with the certificate in dir.
func dockerTLS(host, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH="+dir, "DOCKER_CONFIG="+dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// tlsClient trusts the cluster's CA (dir's ca.pem) and presents cert, if any.
func tlsClient(t *testing.T, dir string, cert *tls.Certificate) *http.Client {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	conf := &tls.Config{RootCAs: pool}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}}
}

func httpGet(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s", resp.Status)
	}
	return string(b), err
}

// foreignCert is an admin certificate for name from a CA of its own, not
// the cluster's.
func foreignCert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	other, err := ca.NewRootCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := other.IssueClient(ca.ClientRequest{Name: name, Role: ca.ClientAdmin})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := c.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return pair
}
