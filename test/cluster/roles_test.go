package cluster

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/test/shoaltest"
)

// certOf reads the node certificate a node keeps in its data directory.
func certOf(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "certificates", ca.NodeCertFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.ParseCertificatePEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nodeLine is node i's line of node ls (hostname, status, availability,
// manager status) as api sees it.
func nodeLine(api string, i int) (string, error) {
	out, err := dockerErr(api, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}")
	if err != nil {
		return out, err
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == bed.Engines[i].Hostname {
			return strings.TrimSpace(l), nil
		}
	}
	return "", fmt.Errorf("node %d not listed:\n%s", i, out)
}

// TestRoles: certificates with a 30 s lifetime renewed live, workers
// promoted to managers that keep the cluster writable when the first
// manager dies, and a manager demoted back to a worker.
func TestRoles(t *testing.T) {
	const life = 30 * time.Second
	base := t.TempDir()
	h := make([]*host, 3)
	h[0] = &host{i: 0, dir: filepath.Join(base, "m0")}
	h[0].args = append(append([]string{"init"}, nodeArgs(0, h[0].dir)...), "--test-cert-expiry", life.String())
	h[0].p = startShoal(t, 0, "node1", h[0].args...)
	api := apiOf(0)
	shoaltest.Eventually(t, 30*time.Second, "manager API", func() error {
		_, err := dockerErr(api, "version")
		return err
	})
	token, err := shoalCmd(t, "join-token", "-H", api, "-q", "worker")
	if err != nil {
		t.Fatal(err)
	}
	joinAddr := bed.Engines[0].IP + ":2377"
	for _, i := range []int{1, 2} {
		h[i] = &host{i: i, dir: filepath.Join(base, fmt.Sprintf("w%d", i))}
		h[i].args = append(append([]string{"join", "--token", token}, nodeArgs(i, h[i].dir)...), joinAddr)
		h[i].p = startShoal(t, i, fmt.Sprintf("node%d", i+1), h[i].args...)
	}
	shoaltest.Eventually(t, 40*time.Second, "3 Ready nodes", func() error {
		if n, out := readyNodes(t, api); n != 3 {
			return fmt.Errorf("%d ready:\n%s", n, out)
		}
		return nil
	})

	t.Run("renewal", func(t *testing.T) {
		w0, m0 := certOf(t, h[2].dir), certOf(t, h[0].dir)
		if got := w0.NotAfter.Sub(w0.NotBefore) - 5*time.Minute; got > life+time.Second {
			t.Fatalf("worker certificate valid %s, want %s", got, life)
		}
		ups := strings.Count(h[2].p.Output(), "tunnel up")
		var w1, m1 *x509.Certificate
		shoaltest.Eventually(t, life+10*time.Second, "node3 (worker) and node1 (manager) renewed", func() error {
			w1, m1 = certOf(t, h[2].dir), certOf(t, h[0].dir)
			if w1.SerialNumber.Cmp(w0.SerialNumber) == 0 || m1.SerialNumber.Cmp(m0.SerialNumber) == 0 {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		at := w1.NotBefore.Sub(w0.NotBefore)
		t.Logf("FIGURE renewal: worker certificate (lifetime %s) renewed %s after issue (%.0f%%), NotAfter %s → %s; manager's too",
			life, at.Round(100*time.Millisecond), 100*at.Seconds()/life.Seconds(), w0.NotAfter.Format("15:04:05"), w1.NotAfter.Format("15:04:05"))
		if at < life/2-time.Second || at > life*8/10+3*time.Second {
			t.Errorf("renewed at %s of a %s lifetime, want 50–80%%", at, life)
		}
		if w1.Subject.CommonName != w0.Subject.CommonName || w1.Subject.OrganizationalUnit[0] != string(ca.RoleWorker) {
			t.Errorf("renewed certificate %v, was %v", w1.Subject, w0.Subject)
		}
		if st, err := os.Stat(filepath.Join(h[2].dir, "certificates", ca.NodeKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("key file after renewal: %v %v", st.Mode(), err)
		}
		if n := strings.Count(h[2].p.Output(), "tunnel up"); n != ups {
			t.Errorf("node3's tunnels came up %d times during renewal, want 0:\n%s", n-ups, h[2].p.LogTail(15))
		}
		docker(t, api, "run", "-d", "--name", "afterrenew", "-e", "constraint:node==node3", "busybox", "sleep", "300")
		if out := docker(t, api, "exec", "afterrenew", "echo", "ok"); !strings.Contains(out, "ok") {
			t.Errorf("exec after renewal: %q", out)
		}
		docker(t, api, "rm", "-f", "afterrenew")
		docker(t, api, "node", "update", "--label-add", "renewed=1", "node1") // the store took the new certificate
	})

	t.Run("promote", func(t *testing.T) {
		for _, i := range []int{1, 2} {
			start := time.Now()
			docker(t, api, "node", "promote", bed.Engines[i].Hostname)
			shoaltest.Eventually(t, 60*time.Second, "promoted node a reachable manager serving the API", func() error {
				l, err := nodeLine(api, i)
				if err != nil || !strings.Contains(l, "Reachable") {
					return fmt.Errorf("%v %s", err, l)
				}
				_, err = dockerErr(apiOf(i), "node", "update", "--label-add", "promoted=1", bed.Engines[i].Hostname)
				return err
			})
			t.Logf("FIGURE promote: %s Reachable manager, writes through its API accepted %s after docker node promote", bed.Engines[i].Hostname, time.Since(start).Round(10*time.Millisecond))
			if c := certOf(t, h[i].dir); c.Subject.OrganizationalUnit[0] != string(ca.RoleManager) {
				t.Errorf("%s certificate %v", bed.Engines[i].Hostname, c.Subject)
			}
		}
		ls := docker(t, apiOf(2), "node", "ls")
		t.Logf("docker node ls (on node3):\n%s", ls)
		if strings.Count(ls, "Leader")+strings.Count(ls, "Reachable") != 3 {
			t.Errorf("want 3 managers:\n%s", ls)
		}
		if info := docker(t, apiOf(1), "info"); !strings.Contains(info, "Managers: 3") {
			t.Errorf("docker info on node2:\n%s", info)
		}
	})
	if t.Failed() {
		return
	}

	outer := t // processes started in a subtest must outlive it
	t.Run("promoted managers keep the cluster writable", func(t *testing.T) {
		leader := leaderOf(t, api)
		other := (leader + 1) % 3
		third := 3 - leader - other
		h[leader].p.Kill()
		killed := time.Now()
		shoaltest.Eventually(t, 20*time.Second, "write after the leader's death", func() error {
			_, err := dockerErr(apiOf(other), "node", "update", "--label-add", "after=1", bed.Engines[other].Hostname)
			return err
		})
		t.Logf("FIGURE failover (promoted managers): leader %s killed, a write through %s accepted %s later", bed.Engines[leader].Hostname, bed.Engines[other].Hostname, time.Since(killed).Round(10*time.Millisecond))
		out, err := dockerErr(apiOf(other), "node", "demote", bed.Engines[third].Hostname)
		if err == nil || !strings.Contains(out, "quorum") {
			t.Errorf("demote that would lose quorum: %v %s", err, out)
		}
		h[leader].p = startShoal(outer, leader, bed.Engines[leader].Hostname+"-again", h[leader].args...)
		shoaltest.Eventually(t, 40*time.Second, "restarted manager writable", func() error {
			_, err := dockerErr(apiOf(leader), "node", "update", "--label-add", "back=1", bed.Engines[leader].Hostname)
			return err
		})
	})

	t.Run("demote", func(t *testing.T) {
		shoaltest.Eventually(t, 20*time.Second, "3 reachable managers on node1", func() error {
			out, err := dockerErr(api, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}")
			if err != nil || strings.Count(out, "Ready") != 3 || strings.Count(out, "Leader")+strings.Count(out, "Reachable") != 3 ||
				!strings.Contains(out, "node1") || !strings.Contains(out, "node2") || !strings.Contains(out, "node3") {
				return fmt.Errorf("%v\n%s", err, out)
			}
			return nil
		})
		// node3 may be the leader now: its leadership is handed over first.
		wasLeader := leaderOf(t, api) == 2
		start := time.Now()
		docker(t, api, "node", "demote", "node3")
		shoaltest.Eventually(t, 40*time.Second, "node3 a Ready worker", func() error {
			l, err := nodeLine(api, 2)
			if err != nil || !regexp.MustCompile(`^node3 Ready Active\s*$`).MatchString(l) {
				return fmt.Errorf("%v %q", err, l)
			}
			if c := certOf(t, h[2].dir); c.Subject.OrganizationalUnit[0] != string(ca.RoleWorker) {
				return fmt.Errorf("certificate %v", c.Subject)
			}
			return nil
		})
		t.Logf("FIGURE demote: node3 (leader before: %v) a Ready worker with a worker certificate %s after docker node demote", wasLeader, time.Since(start).Round(10*time.Millisecond))
		ls := docker(t, api, "node", "ls")
		t.Logf("docker node ls:\n%s", ls)
		if n := strings.Count(ls, "Leader") + strings.Count(ls, "Reachable"); n != 2 {
			t.Errorf("want 2 managers:\n%s", ls)
		}
		if _, err := os.Stat(filepath.Join(h[2].dir, "certificates", ca.RootKeyFile)); !os.IsNotExist(err) {
			t.Errorf("the demoted node kept the root CA key: %v", err)
		}
		if _, err := dockerErr(apiOf(2), "version"); err == nil {
			t.Error("the demoted node still serves the Docker API")
		}
		docker(t, apiOf(1), "node", "update", "--label-add", "afterdemote=1", "node1")
		docker(t, apiOf(1), "run", "-d", "--name", "ondemoted", "-e", "constraint:node==node3", "busybox", "sleep", "300")
		if !engineHas(t, 2, "ondemoted") {
			t.Error("ondemoted is not on node3")
		}
		docker(t, api, "rm", "-f", "ondemoted")
	})
}
