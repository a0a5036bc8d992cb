package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

const attackAPIPort = 2388 // the attack test's API, apart from the other tests'

// TestAttack is the attack script of issue 11: a manager started as the
// docs say (`shoal init --tlsverify` on all interfaces) is hit with no
// certificate, a certificate of another CA, a viewer trying exec, an
// operator trying to take the host, a body over the limit, 500 slow
// connections and a removed node coming back. Each is refused or
// survived, and the manager keeps serving its admin throughout.
func TestAttack(t *testing.T) {
	top := t
	e := bed.Engines[0]
	base := t.TempDir()
	dir := filepath.Join(base, "m0")
	mgr := startShoal(t, 0, "attack-manager", "init", "--data-dir", dir, "--engine", e.UnixHost(), "--advertise-addr", e.IP,
		"--tlsverify", "-H", fmt.Sprintf("tcp://0.0.0.0:%d", attackAPIPort), "--engine-refresh-interval", "500ms", "--engine-failure-retry", "2")
	host := fmt.Sprintf("tcp://%s:%d", e.IP, attackAPIPort)
	addr := fmt.Sprintf("%s:%d", e.IP, attackAPIPort)

	certs := map[string]string{}
	for _, role := range []string{"admin", "operator", "viewer"} {
		certs[role] = filepath.Join(base, role)
		shoaltest.Eventually(t, 30*time.Second, "shoal cert create --role "+role, func() error {
			_, err := shoalCmd(t, "cert", "create", "--data-dir", dir, "--name", role+"-user", "--role", role, "--out", certs[role])
			return err
		})
	}
	admin := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := dockerTLS(host, certs["admin"], args...)
		if err != nil {
			t.Fatalf("admin: docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	shoaltest.Eventually(t, 30*time.Second, "the admin's docker info", func() error {
		_, err := dockerTLS(host, certs["admin"], "info")
		return err
	})
	admin(t, "run", "-d", "--name", "target", "busybox", "sleep", "300")

	t.Run("no certificate", func(t *testing.T) {
		if _, err := httpGet(tlsClient(t, certs["admin"], nil), "https://"+addr+"/_ping"); err == nil {
			t.Error("accepted")
		}
	})
	t.Run("a certificate of another CA", func(t *testing.T) {
		pair := foreignCert(t, "admin-user") // the admin's name, another CA
		if _, err := httpGet(tlsClient(t, certs["admin"], &pair), "https://"+addr+"/containers/json"); err == nil {
			t.Error("accepted")
		}
	})
	t.Run("a viewer tries exec", func(t *testing.T) {
		if out, err := dockerTLS(host, certs["viewer"], "ps"); err != nil || !strings.Contains(out, "target") {
			t.Fatalf("the viewer cannot list: %v\n%s", err, out)
		}
		out, err := dockerTLS(host, certs["viewer"], "exec", "target", "hostname")
		if err == nil || !strings.Contains(out, "authorization denied") {
			t.Fatalf("viewer exec: %v\n%s", err, out)
		}
	})
	t.Run("an operator tries to take the host", func(t *testing.T) {
		for _, args := range [][]string{
			{"--privileged"}, {"-v", "/:/host"}, {"--network", "host"}, {"--pid", "host"}, {"--cap-add", "SYS_ADMIN"},
		} {
			run := append(append([]string{"run", "--rm"}, args...), "busybox", "true")
			out, err := dockerTLS(host, certs["operator"], run...)
			if err == nil || !strings.Contains(out, "authorization denied") {
				t.Errorf("operator docker %s: %v\n%s", strings.Join(run, " "), err, out)
			}
		}
		if out, err := dockerTLS(host, certs["operator"], "run", "--rm", "busybox", "echo", "allowed"); err != nil || !strings.Contains(out, "allowed") {
			t.Errorf("operator plain run: %v\n%s", err, out)
		}
	})
	t.Run("a body over the limit", func(t *testing.T) {
		pair := loadPair(t, certs["admin"])
		body := bytes.Repeat([]byte(" "), 17<<20)
		resp, err := tlsClient(t, certs["admin"], &pair).Post("https://"+addr+"/containers/create", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
	})
	t.Run("500 slow connections", func(t *testing.T) {
		conns := slowConns(t, addr, 500)
		start := time.Now()
		admin(t, "ps")
		t.Logf("FIGURE attack: docker ps with 500 silent connections open took %s", time.Since(start).Round(time.Millisecond))
		// The server cuts each one when its handshake deadline (10 s) passes.
		var cut sync.WaitGroup
		var kept int
		var mu sync.Mutex
		for _, c := range conns {
			cut.Go(func() {
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				if _, err := c.Read(make([]byte, 1)); err != nil && isTimeout(err) {
					mu.Lock()
					kept++
					mu.Unlock()
				}
			})
		}
		cut.Wait()
		if kept > 0 {
			t.Errorf("%d of 500 silent connections still open after 20 s", kept)
		}
	})
	t.Run("a removed node comes back", func(t *testing.T) {
		token := strings.TrimSpace(admin(t, "swarm", "join-token", "-q", "worker"))
		w := bed.Engines[1]
		wdir := filepath.Join(base, "w1")
		args := []string{"join", "--data-dir", wdir, "--engine", w.UnixHost(), "--advertise-addr", w.IP,
			"--engine-refresh-interval", "500ms", "--engine-failure-retry", "2"}
		p := startShoal(top, 1, "attack-worker", append(append([]string{}, args...), "--token", token, e.IP+":2377")...)
		var id string
		shoaltest.Eventually(t, 30*time.Second, "the worker Ready", func() error {
			out, err := dockerTLS(host, certs["admin"], "node", "ls", "--filter", "role=worker", "--format", "{{.ID}} {{.Status}}")
			if f := strings.Fields(out); err != nil || len(f) != 2 || f[1] != "Ready" {
				return fmt.Errorf("%v: %s", err, out)
			}
			id = strings.Fields(out)[0]
			return nil
		})
		admin(t, "node", "rm", "--force", id)
		if exited, code := p.Wait(20 * time.Second); !exited || code == 0 {
			t.Fatalf("the removed worker: exited %v code %d\n%s", exited, code, p.LogTail(10))
		}
		again := startShoal(top, 1, "attack-worker-again", args...)
		if exited, code := again.Wait(20 * time.Second); !exited || code == 0 || !strings.Contains(again.Output(), "removed from the cluster") {
			t.Fatalf("the removed worker restarted: exited %v code %d\n%s", exited, code, again.LogTail(10))
		}
		shoaltest.Eventually(t, 10*time.Second, "the manager logs the refusal", func() error {
			if !strings.Contains(mgr.Output(), "refused a node removed from the cluster") {
				return fmt.Errorf("not yet")
			}
			return nil
		})
	})
	if out := admin(t, "ps", "--format", "{{.Names}}"); !strings.Contains(out, "target") {
		t.Errorf("after the attacks, docker ps: %s", out)
	}
}

// loadPair reads the client certificate `shoal cert create` wrote in dir.
func loadPair(t *testing.T, dir string) tls.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// slowConns opens n TCP connections to addr that never say anything; they
// are closed when the test ends.
func slowConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	d := net.Dialer{Timeout: 5 * time.Second}
	for range n {
		c, err := d.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatalf("connection %d of %d: %v", len(conns)+1, n, err)
		}
		conns = append(conns, c)
	}
	return conns
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
