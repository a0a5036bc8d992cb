package discovery

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// startReplicated starts two managers with --replication over the store
// and returns (primary, replica) once they agree.
func startReplicated(t *testing.T, uri string) (*manager, *manager) {
	t.Helper()
	var ms []*manager
	for i := range 2 {
		port := shoaltest.FreePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		m := startManagerAt(t, fmt.Sprintf("manager%d", i+1), addr, uri,
			"--replication", "--advertise", addr, "--replication-ttl", "3s")
		ms = append(ms, m)
	}
	var primary, replica *manager
	shoaltest.Eventually(t, 20*time.Second, "one primary, one replica", func() error {
		r0, p0, err0 := ms[0].role()
		r1, p1, err1 := ms[1].role()
		if err0 != nil || err1 != nil {
			return fmt.Errorf("%v %v", err0, err1)
		}
		switch {
		case r0 == "primary" && r1 == "replica" && p1 == ms[0].Addr && p0 == ms[0].Addr:
			primary, replica = ms[0], ms[1]
		case r1 == "primary" && r0 == "replica" && p0 == ms[1].Addr && p1 == ms[1].Addr:
			primary, replica = ms[1], ms[0]
		default:
			return fmt.Errorf("roles %s(%s) %s(%s)", r0, p0, r1, p1)
		}
		return nil
	})
	return primary, replica
}

// TestReplicationFailover: two managers elect a primary; the replica
// forwards everything, hijacked streams included; when the primary dies the
// replica takes over.
func TestReplicationFailover(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			s := startStore(t, kind)
			join(t, s.uri, engineAddr(0))
			join(t, s.uri, engineAddr(1))
			primary, replica := startReplicated(t, s.uri)
			wantPool(t, primary, 15*time.Second, 0, 1)
			wantPool(t, replica, 15*time.Second, 0, 1)

			name := fmt.Sprintf("repl-%s-%d", kind, time.Now().UnixNano()%100000)
			t.Cleanup(func() { primary.docker(t, "", "rm", "-f", name); replica.docker(t, "", "rm", "-f", name) })
			// A create through the replica is made by the primary: the
			// primary sees it at once, by name.
			if _, err := replica.docker(t, "", "run", "-d", "--name", name, "busybox", "sleep", "600"); err != nil {
				t.Fatal(err)
			}
			if out, err := primary.docker(t, "", "ps", "--filter", "name="+name, "--format", "{{.Names}}"); err != nil || !strings.Contains(out, name) {
				t.Fatalf("primary ps after run via replica: %q %v", out, err)
			}
			if out, err := replica.docker(t, "", "ps", "--format", "{{.Names}}"); err != nil || !strings.Contains(out, name) {
				t.Fatalf("replica ps: %q %v", out, err)
			}
			// Hijacked streams through the replica: exec, run -i with stdin
			// ending (half-close), attach.
			if out, err := replica.docker(t, "", "exec", name, "echo", "exec-ok"); err != nil || strings.TrimSpace(out) != "exec-ok" {
				t.Fatalf("exec via replica: %q %v", out, err)
			}
			if out, err := replica.docker(t, "line1\nline2\n", "run", "-i", "--rm", "busybox", "cat"); err != nil || out != "line1\nline2\n" {
				t.Fatalf("run -i via replica: %q %v", out, err)
			}
			if out, err := replica.docker(t, "abc\n", "exec", "-i", name, "wc", "-c"); err != nil || strings.TrimSpace(out) != "4" {
				t.Fatalf("exec -i via replica: %q %v", out, err)
			}
			if out, err := replica.docker(t, "", "logs", name); err != nil {
				t.Fatalf("logs via replica: %q %v", out, err)
			}

			// The primary crashes.
			primary.Kill()
			t0 := time.Now()
			var took time.Duration
			shoaltest.Eventually(t, 30*time.Second, "replica becomes primary", func() error {
				role, p, err := replica.role()
				if err != nil {
					return err
				}
				if role != "primary" || p != replica.Addr {
					return fmt.Errorf("role %s, primary %s", role, p)
				}
				took = time.Since(t0)
				return nil
			})
			var served time.Duration
			shoaltest.Eventually(t, 30*time.Second, "docker ps on the new primary", func() error {
				out, err := replica.docker(t, "", "ps", "--format", "{{.Names}}")
				if err != nil {
					return err
				}
				if !strings.Contains(out, name) {
					return fmt.Errorf("ps: %q", out)
				}
				served = time.Since(t0)
				return nil
			})
			t.Logf("%s: primary killed (replication-ttl 3s): replica primary after %s, docker ps served after %s",
				kind, took.Round(10*time.Millisecond), served.Round(10*time.Millisecond))
			if out, err := replica.docker(t, "", "exec", name, "echo", "exec-ok"); err != nil || strings.TrimSpace(out) != "exec-ok" {
				t.Fatalf("exec on the new primary: %q %v", out, err)
			}

			// The old primary comes back as a replica and forwards.
			primary.restart(t)
			shoaltest.Eventually(t, 20*time.Second, "old primary back as replica", func() error {
				role, p, err := primary.role()
				if err != nil {
					return err
				}
				if role != "replica" || p != replica.Addr {
					return fmt.Errorf("role %s, primary %s", role, p)
				}
				return nil
			})
			if out, err := primary.docker(t, "x\n", "exec", "-i", name, "cat"); err != nil || out != "x\n" {
				t.Fatalf("exec -i via the returned replica: %q %v", out, err)
			}

			// A graceful stop hands over at once.
			replica.Stop()
			t0 = time.Now()
			shoaltest.Eventually(t, 10*time.Second, "hand-over on graceful stop", func() error {
				role, _, err := primary.role()
				if err != nil {
					return err
				}
				if role != "primary" {
					return fmt.Errorf("role %s", role)
				}
				return nil
			})
			t.Logf("%s: primary stopped gracefully: other manager primary after %s", kind, time.Since(t0).Round(10*time.Millisecond))
		})
	}
}
