package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/test/shoaltest"
)

// tlsUser is the files of one docker CLI client certificate.
type tlsUser struct{ dir string }

func (u tlsUser) args(host string) []string {
	return []string{"--tlsverify", "--tlscacert", filepath.Join(u.dir, "ca.pem"), "--tlscert", filepath.Join(u.dir, "cert.pem"),
		"--tlskey", filepath.Join(u.dir, "key.pem"), "-H", host}
}

// writeUser issues a user certificate as 'shoal cert create' does into a
// directory as the docker CLI reads it.
func writeUser(t *testing.T, root *ca.RootCA, cn string, role ca.ClientRole, scopes ...string) tlsUser {
	t.Helper()
	nc, err := root.IssueClient(ca.ClientRequest{Name: cn, Role: role, Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	u := tlsUser{dir: filepath.Join(t.TempDir(), cn)}
	if err := ca.SaveClientCert(u.dir, root.CertPEM(), nc); err != nil {
		t.Fatal(err)
	}
	return u
}

func writePEMs(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRolesThroughDockerCLI: roles from client certificates, as the docker
// CLI shows a refusal.
func TestRolesThroughDockerCLI(t *testing.T) {
	root, err := ca.NewRootCA("e2e-authz", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := root.IssueNode(ca.NodeRequest{NodeID: "api", Role: ca.RoleManager, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writePEMs(t, dir, map[string][]byte{"ca.pem": root.CertPEM(), "cert.pem": nc.CertPEM, "key.pem": nc.KeyPEM})
	host := "tcp://" + shoaltest.FreeAddr(t)
	e := bed.Engines
	startShoalNoWait(t, fmt.Sprintf("nodes://%s,%s", e[0].TCPAddr, e[1].TCPAddr), "-H", host,
		"--tlsverify", "--tlscacert", filepath.Join(dir, "ca.pem"), "--tlscert", filepath.Join(dir, "cert.pem"), "--tlskey", filepath.Join(dir, "key.pem"))
	admin := writeUser(t, root, "ada", ca.ClientAdmin)
	viewer := writeUser(t, root, "vera", ca.ClientViewer)
	op := writeUser(t, root, "otto", ca.ClientOperator)
	ctx := ctxT(t, 60*time.Second)
	as := func(u tlsUser, args ...string) (string, string, error) {
		return runDocker2(ctx, dockerCmd{args: append(u.args(host), args...)})
	}
	if err := waitFor(ctx, 20*time.Second, func() error { _, _, err := as(admin, "info"); return err }); err != nil {
		t.Fatal(err)
	}

	name := uniq("authz")
	if _, _, err := as(admin, "run", "-d", "--name", name, "busybox", "sleep", "60"); err != nil {
		t.Fatal(err)
	}
	defer as(admin, "rm", "-f", name)
	if out, _, err := as(viewer, "ps", "--format", "{{.Names}}"); err != nil || !strings.Contains(out, name) {
		t.Errorf("viewer ps: %v %q", err, out)
	}
	if _, stderr, err := as(viewer, "exec", name, "true"); err == nil || !strings.Contains(stderr, "authorization denied: vera (viewer) may not exec into containers") {
		t.Errorf("viewer exec: %v %q", err, stderr)
	}
	if _, stderr, err := as(op, "run", "--rm", "--privileged", "busybox", "true"); err == nil || !strings.Contains(stderr, "authorization denied: otto (operator) may not run privileged containers") {
		t.Errorf("operator --privileged: %v %q", err, stderr)
	}
	if out, _, err := as(op, "run", "--rm", "busybox", "echo", "op-ok"); err != nil || strings.TrimSpace(out) != "op-ok" {
		t.Errorf("operator run: %v %q", err, out)
	}
	if out, _, err := as(op, "exec", name, "echo", "exec-ok"); err != nil || strings.TrimSpace(out) != "exec-ok" {
		t.Errorf("operator exec: %v %q", err, out)
	}
	t.Run("metrics", func(t *testing.T) { checkMetricsOverTLS(ctx, t, host, viewer) })
}

// startShoalNoWait starts `shoal manage` without waiting for a plain-HTTP
// /_ping (its API is TLS only).
func startShoalNoWait(t *testing.T, discovery string, extra ...string) *shoaltest.Shoal {
	t.Helper()
	args := append(append(append([]string{"manage"}, e2eFlags...), extra...), discovery)
	return shoaltest.Start(t, shoaltest.Options{Args: args, NoWait: true})
}
