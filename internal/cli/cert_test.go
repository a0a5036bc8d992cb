package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/cluster"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/run"
	"github.com/shoal-dev/shoal/internal/testport"
)

// TestCertCreateWithTLSVerify: a built-in cluster serving its API with
// --tlsverify and no certificate files accepts, out of the box, a client
// certificate that `shoal cert create` issued from its data directory, and
// the server's certificate verifies as the docker CLI checks it.
func TestCertCreateWithTLSVerify(t *testing.T) {
	sim, err := enginesim.Start(enginesim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := t.TempDir()
	ports := testport.Get(t, 4) // the cluster port, the store's two, the API
	api := fmt.Sprintf("127.0.0.1:%d", ports+3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run.ClusterNode(ctx, run.ClusterConfig{
			Cluster: cluster.Config{Init: true, DataDir: dir, ListenAddr: fmt.Sprintf("127.0.0.1:%d", ports),
				AdvertiseAddr: "127.0.0.1", Engine: "tcp://" + sim.Addr()},
			Hosts: []string{"tcp://" + api}, TLS: run.TLSFiles{Verify: true},
			Strategy: "spread", Refresh: 100 * time.Millisecond, Version: "test",
			Log: slog.New(slog.DiscardHandler), Stdout: io.Discard,
		})
	}()
	defer func() { cancel(); <-done }()

	out := filepath.Join(t.TempDir(), "alice")
	var stdout string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		// Not execute: the cluster's store reads os.Stdout, which execute swaps.
		stdout, err = certCreate("--data-dir", dir, "--name", "alice", "--role", "admin", "--out", out)
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("cert create: %v", err)
	}
	for _, want := range []string{"DOCKER_HOST=tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=" + out, "shoal-admin"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	hc := dockerTLSClient(t, out)
	var resp *http.Response
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err = hc.Get("https://" + api + "/_ping"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("ping with the new certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ping: %s", resp.Status)
	}
	// shoal join-token reads the docker CLI's TLS environment.
	t.Setenv("DOCKER_TLS_VERIFY", "1")
	t.Setenv("DOCKER_CERT_PATH", out)
	var tok strings.Builder
	if err := runJoinToken(context.Background(), &joinTokenOpts{host: "tcp://" + api, quiet: true}, "worker", &tok); err != nil ||
		!strings.HasPrefix(tok.String(), "SWMTKN-1-") {
		t.Fatalf("join-token over TLS: %q %v", tok.String(), err)
	}
	// Without a certificate the handshake is refused.
	hc.Transport.(*http.Transport).TLSClientConfig.Certificates = nil
	if resp, err := hc.Get("https://" + api + "/_ping"); err == nil {
		resp.Body.Close()
		t.Fatal("no client certificate accepted")
	}
}

func certCreate(args ...string) (string, error) {
	var out strings.Builder
	cmd := newCertCmd()
	cmd.SetArgs(append([]string{"create"}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	return out.String(), err
}

// dockerTLSClient is a client configured from DOCKER_CERT_PATH as the
// docker CLI does with DOCKER_TLS_VERIFY=1 (server name = the host dialled).
func dockerTLSClient(t *testing.T, dir string) *http.Client {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	fi, err := os.Stat(filepath.Join(dir, "key.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem mode: %v %v", fi, err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}, DisableKeepAlives: true}
	return &http.Client{Timeout: 5 * time.Second, Transport: tr}
}

// cert create outside a cluster's data directory says what is missing.
func TestCertCreateRefuses(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := execute(t, "cert", "create", "--data-dir", dir, "--name", "alice", "--role", "admin", "--out", filepath.Join(dir, "out"))
	if code == 0 || !strings.Contains(stderr, "holds no cluster") {
		t.Fatalf("no cluster: %d %s", code, stderr)
	}
	code, _, stderr = execute(t, "cert", "create", "--data-dir", dir, "--name", "alice", "--role", "root")
	if code == 0 || !strings.Contains(stderr, "--role") {
		t.Fatalf("bad role: %d %s", code, stderr)
	}
}

// manage refuses an insecure listener with the message and a non-zero exit.
func TestManageRefusesInsecureTCP(t *testing.T) {
	code, _, stderr := execute(t, "manage", "-H", "tcp://0.0.0.0:0", "nodes://127.0.0.1:1")
	if code == 0 || !strings.Contains(stderr, "refusing to serve the Docker API on tcp://0.0.0.0:0") || !strings.Contains(stderr, "--insecure-no-tlsverify") {
		t.Fatalf("%d %s", code, stderr)
	}
	code, _, stderr = execute(t, "init", "--tlscacert", "ca.pem", "--data-dir", t.TempDir())
	if code == 0 || !strings.Contains(stderr, "--tlscacert") {
		t.Fatalf("files without --tls: %d %s", code, stderr)
	}
}
