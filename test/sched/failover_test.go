package sched

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/scenario"
	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

func startBed(t *testing.T, opts testbed.Options) *testbed.Bed {
	t.Helper()
	b := testbed.MustStart(t, opts)
	if err := b.LoadBusyboxAll(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return b
}

// whereIs lists the engines (by index) that hold a container named name.
func whereIs(t *testing.T, b *testbed.Bed, name string) []int {
	t.Helper()
	var at []int
	for i, e := range b.Engines {
		out, _, err := shoaltest.Docker(ctxT(t), e.Host(), "ps", "-a", "--filter", "name=^/"+name+"$", "--format", "{{.Names}}")
		if err != nil {
			continue // a stopped engine
		}
		if strings.TrimSpace(out) == name {
			at = append(at, i)
		}
	}
	return at
}

// TestRescheduleOnNodeFailure runs the rescheduling scenario (the same body
// runs over simulated engines in test/scenario) on two real engines, then
// brings the killed engine back: its stale copy is removed, so only one runs.
func TestRescheduleOnNodeFailure(t *testing.T) {
	b := startBed(t, testbed.Options{Engines: 2, Prefix: "schr"})
	var s *shoaltest.Shoal
	env := bedEnv(b, &s)
	env.Kill = func(tb testing.TB, i int) {
		if err := b.Kill(i); err != nil {
			tb.Fatal(err)
		}
	}
	name, moved := scenario.Rescheduling(t, env)

	if err := b.Start(ctxT(t), 0); err != nil {
		t.Fatal(err)
	}
	shoaltest.Eventually(t, 40*time.Second, "node1 back and stale "+name+" removed", func() error {
		out, _, _ := s.Docker(ctxT(t), "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
		if !strings.Contains(out, "node1 Ready") {
			return fmt.Errorf("nodes: %s", out)
		}
		if at := whereIs(t, b, name); len(at) != 1 || at[0] != 1 {
			return fmt.Errorf("%s on engines %v, want only node2", name, at)
		}
		return nil
	})
	out, _, err := s.Docker(ctxT(t), "ps", "-a", "--filter", "name="+name, "--format", "{{.Names}}")
	if err != nil || strings.TrimSpace(out) != moved+"/"+name {
		t.Fatalf("after the node returned, ps shows %q (%v); want only %s/%s", out, err, moved, name)
	}
}

// bedEnv is a Bed as a test/scenario environment; *s is the last shoal
// the scenario started.
func bedEnv(b *testbed.Bed, s **shoaltest.Shoal) scenario.Env {
	env := scenario.Env{Image: "busybox", Cmd: []string{"sleep", "300"}}
	for _, e := range b.Engines {
		env.Engines = append(env.Engines, e.Host())
		env.Nodes = append(env.Nodes, e.Hostname)
	}
	env.Shoal = func(tb testing.TB, flags ...string) string {
		tb.Helper()
		*s = shoaltest.Manage(tb, nodes(b), flags...)
		if err := (*s).WaitNodes(context.Background(), len(b.Engines), 30*time.Second); err != nil {
			tb.Fatal(err)
		}
		return (*s).Host
	}
	return env
}

func TestContainerSlots(t *testing.T) {
	b := startBed(t, testbed.Options{Engines: 2, Prefix: "schs",
		Labels: []map[string]string{{"containerslots": "2"}, {"containerslots": "1"}}})
	s := shoaltest.Manage(t, nodes(b))
	for i := 0; i < 3; i++ {
		mustRun(t, s, "busybox", "sleep", "1000")
	}
	runFails(t, s, "no node can run this container: 2 nodes", "busybox", "sleep", "1000")
	out, errOut, _ := s.Docker(ctxT(t), "run", "-d", "busybox", "true")
	if !strings.Contains(errOut, "slot") {
		t.Errorf("no-fit explanation does not mention slots: %q %q", out, errOut)
	}
}

// TestPullWhenMissing: an image no node has is pulled through shoal from a
// real registry, with the progress streamed to the CLI, then run.
func TestPullWhenMissing(t *testing.T) {
	reg, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatal("docker-registry (Debian package docker-registry) is needed: .ci/run installs it")
	}
	b := startBed(t, testbed.Options{Engines: 2, Prefix: "schp", ExtraArgs: []string{"--insecure-registry", "10.213.0.0/16"}})
	addr := b.Gateway + ":5000"
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)), 0o644)
	cmd := exec.Command(reg, "serve", cfg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	ref := addr + "/tools/busybox:v1"
	node1 := b.Engines[0].Host()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, e, err := shoaltest.Docker(ctx, node1, "tag", "busybox", ref); err != nil {
		t.Fatal(err, e)
	}
	shoaltest.Eventually(t, 20*time.Second, "push to the registry", func() error {
		_, e, err := shoaltest.Docker(ctx, node1, "push", ref)
		if err != nil {
			return fmt.Errorf("%v %s", err, e)
		}
		return nil
	})
	if _, e, err := shoaltest.Docker(ctx, node1, "rmi", ref); err != nil {
		t.Fatal(err, e)
	}

	s := shoaltest.Manage(t, nodes(b))
	out, errOut, err := s.Docker(ctx, "run", "--rm", ref, "echo", "pulled-and-ran")
	if err != nil || strings.TrimSpace(out) != "pulled-and-ran" {
		t.Fatalf("docker run of a missing image: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	if !strings.Contains(errOut, "Unable to find image") || !strings.Contains(errOut, "node1: ") || !strings.Contains(errOut, "node2: ") {
		t.Errorf("the pull progress of each node should reach the CLI; stderr:\n%s", errOut)
	}
	for i := range b.Engines {
		if o, _, _ := shoaltest.Docker(ctx, b.Engines[i].Host(), "images", "-q", ref); strings.TrimSpace(o) == "" {
			t.Errorf("node%d does not have %s after the pull", i+1, ref)
		}
	}
}
