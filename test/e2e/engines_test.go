package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

// TestUnixEngine: an engine given as unix:///path.
func TestUnixEngine(t *testing.T) {
	s := startShoalT(t, "nodes://"+bed.Engines[0].UnixHost())
	if err := s.WaitNodes(ctxT(t, 40*time.Second), 1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	out := dkOn(t, s.Host, "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
	if strings.TrimSpace(out) != "node1 Ready" {
		t.Errorf("node ls: %q", out)
	}
	out = dkOn(t, s.Host, "run", "--rm", "busybox", "echo", "via-unix")
	if strings.TrimSpace(out) != "via-unix" {
		t.Errorf("run: %q", out)
	}
}

// TestTLSEngine: engines that require mutual TLS.
func TestTLSEngine(t *testing.T) {
	tb := testbed.MustStart(t, testbed.Options{Engines: 2, Prefix: bedPrefix, TLS: true})
	ctx := ctxT(t, 2*time.Minute)
	if err := tb.LoadBusyboxAll(ctx); err != nil {
		t.Fatal(err)
	}
	s := startShoalT(t, "nodes://"+tb.Engines[0].TLSAddr+","+strings.TrimPrefix(tb.Engines[1].TLSAddr, "tcp://"),
		"--engine-tlsverify", "--engine-tlscacert", tb.TLS.CACert, "--engine-tlscert", tb.TLS.ClientCert, "--engine-tlskey", tb.TLS.ClientKey)
	if err := s.WaitNodes(ctx, 2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	out := dkOn(t, s.Host, "run", "--rm", "busybox", "echo", "via-tls")
	if strings.TrimSpace(out) != "via-tls" {
		t.Errorf("run: %q", out)
	}
	name := uniq("tls")
	dkOn(t, s.Host, "run", "-d", "--name", name, "busybox", "sleep", "60")
	if out := dkOn(t, s.Host, "exec", name, "echo", "exec-tls"); strings.TrimSpace(out) != "exec-tls" {
		t.Errorf("exec: %q", out)
	}
	if out := dkOn(t, s.Host, "ps", "--format", "{{.Names}}"); !strings.Contains(out, "/"+name) {
		t.Errorf("ps: %q", out)
	}
	dkOn(t, s.Host, "rm", "-f", name)
	// Without the client certificate the engines refuse shoal.
	s2 := startShoalT(t, "nodes://"+tb.Engines[0].TLSAddr, "--engine-tlsverify", "--engine-tlscacert", tb.TLS.CACert)
	err := waitFor(ctx, 10*time.Second, func() error {
		ns, err := s2.Nodes(ctx)
		if err != nil {
			return err
		}
		if len(ns) != 1 || ns[0].Status.State == "ready" {
			return fmt.Errorf("nodes %+v", ns)
		}
		return nil
	})
	if err != nil {
		t.Errorf("shoal without a client certificate: %v", err)
	}
}

// TestFileDiscovery: engines join and leave as the file changes.
func TestFileDiscovery(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "engines")
	write := func(content string) {
		tmp := f + ".tmp"
		os.WriteFile(tmp, []byte(content), 0o644)
		os.Rename(tmp, f)
	}
	write("# engines\n" + bed.Engines[0].TCPAddr + "\n")
	s := startShoalT(t, "file://"+f)
	ctx := ctxT(t, 2*time.Minute)
	count := func(n int) {
		t.Helper()
		err := waitFor(ctx, 20*time.Second, func() error {
			out, err := runDocker(ctx, dockerCmd{host: s.Host, args: []string{"node", "ls", "--format", "{{.Hostname}} {{.Status}}"}})
			if err != nil {
				return err
			}
			if l := lines(out); len(l) != n || strings.Count(out, "Ready") != n {
				return fmt.Errorf("node ls: %q", out)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("want %d nodes: %v", n, err)
		}
	}
	count(1)
	write("# engines\n" + bed.Engines[0].TCPAddr + "\n" + strings.TrimPrefix(bed.Engines[1].TCPAddr, "tcp://") + "\n")
	count(2)
	write(bed.Engines[1].TCPAddr + "\n")
	count(1)
	if out := dkOn(t, s.Host, "node", "ls", "--format", "{{.Hostname}}"); strings.TrimSpace(out) != "node2" {
		t.Errorf("after removing node1 from the file: %q", out)
	}
	// A missing file is not fatal; shoal keeps serving.
	os.Remove(f)
	time.Sleep(time.Second)
	if !s.Alive() {
		t.Fatalf("shoal died when the discovery file was removed")
	}
	write(bed.Engines[0].TCPAddr + "\n" + bed.Engines[2].TCPAddr + "\n")
	count(2)
}

// TestShoalRestart: a restarted shoal (same port) finds every container.
func TestShoalRestart(t *testing.T) {
	e := bed.Engines
	s := startShoalT(t, fmt.Sprintf("nodes://%s,%s,%s", e[0].TCPAddr, e[1].TCPAddr, e[2].TCPAddr))
	ctx := ctxT(t, 2*time.Minute)
	if err := s.WaitNodes(ctx, 3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := 0; i < 3; i++ {
		n := uniq("rst")
		names = append(names, n)
		rmf(t, n)
		dkOn(t, s.Host, "run", "-d", "--name", n, "busybox", "sleep", "300")
	}
	dkOn(t, s.Host, "stop", "-t", "0", names[2])
	before := dkOn(t, s.Host, "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.State}}")
	s.Kill()
	if err := s.Restart(); err != nil {
		t.Fatalf("restart shoal on %s: %v", s.Addr, err)
	}
	// No waiting for the nodes: as a user would, ask at once. The manager
	// waits for the engines it is still contacting before it answers.
	after := dkOn(t, s.Host, "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.State}}")
	for _, l := range lines(before) {
		if !strings.Contains(after, l) {
			t.Errorf("after restart, ps -a lacks %q\nbefore:\n%s\nafter:\n%s", l, before, after)
		}
	}
	for _, n := range names {
		if _, err := runDocker(ctx, dockerCmd{host: s.Host, args: []string{"inspect", "--type", "container", n}}); err != nil {
			t.Errorf("after restart, %s not addressable: %v", n, err)
		}
	}
	if out := dkOn(t, s.Host, "exec", names[0], "echo", "still"); strings.TrimSpace(out) != "still" {
		t.Errorf("exec after restart: %q", out)
	}
	// The names are still reserved.
	_, err := runDocker(ctx, dockerCmd{host: s.Host, args: []string{"create", "--name", names[1], "busybox"}})
	if err == nil || !strings.Contains(err.(*dockerErr).stderr, "Conflict") {
		t.Errorf("create with a name taken before the restart: %v", err)
	}
}

// waitNodeState waits until node host (by hostname) has the status in
// `docker node ls` of s, e.g. "Ready" or "Down".
func waitNodeState(t *testing.T, ctx context.Context, s *shoaltest.Shoal, id, want string, timeout time.Duration) {
	t.Helper()
	err := waitFor(ctx, timeout, func() error {
		out, err := runDocker(ctx, dockerCmd{host: s.Host, args: []string{"node", "ls", "--format", "{{.ID}} {{.Status}}"}})
		if err != nil {
			return err
		}
		for _, l := range lines(out) {
			f := strings.Fields(l)
			if len(f) == 2 && strings.TrimSuffix(f[0], "*") == id && f[1] == want {
				return nil
			}
		}
		return fmt.Errorf("node ls: %q", out)
	})
	if err != nil {
		t.Fatalf("node %s never %s: %v", id, want, err)
	}
}
