// Package stacks tests `docker stack deploy` end to end: a real 3-tier
// compose application (web published through the routing mesh, an API, a
// database with a named volume and a secret, on an overlay network of the
// stack's) deployed by the real docker CLI through shoal's built-in
// cluster across three engines; the loss of a node running the front
// end; a second deploy after a tag moved; the refusals of bad input; and
// the cluster-object API through docker-py and the CLI 20.10.
//
// One built-in cluster serves every test (`shoal init` on node1, `shoal
// join --token` on node2 and node3, each in its engine's network
// namespace), with one docker-registry on the bed's bridge holding the
// images the tests build from the bed's busybox: the CI budget is tight.
package stacks

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

const (
	cli28   = "/usr/local/bin/docker"
	cli2010 = "/usr/bin/docker"
	python  = "/usr/bin/python3" // Debian's, with python3-docker 5.0.3
	apiPort = 2385               // the managers' API in their engine's namespace (dockerd has 2375)
)

var (
	bed    *testbed.Bed
	host   string // DOCKER_HOST of the cluster's manager
	reg    string // the registry's host:port
	cfgDir string // DOCKER_CONFIG of the CLIs
)

func TestMain(m *testing.M) { os.Exit(mainRun(m)) }

func mainRun(m *testing.M) int {
	// --insecure-registry: the tests' registry is on the bed's bridge, without TLS.
	opts := testbed.Options{Engines: 3, Prefix: "stk", ExtraArgs: []string{"--insecure-registry", "10.213.0.0/16"}}
	return testbed.Main(m, testbed.MainOptions{Options: opts}, func(tb testing.TB, b *testbed.Bed) {
		bed = b
		cfgDir = tb.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		// busybox is the base of the tests' images, built on engine 0;
		// the tasks pull those from the registry.
		if err := b.LoadBusybox(ctx, 0); err != nil {
			tb.Fatal(err)
		}
		reg = bed.StartRegistry(tb, "")
		host = startCluster(tb)
	})
}

// startCluster runs `shoal init` in engine 0's namespace and `shoal join`
// in the others', and waits for 3 Ready nodes; it returns the manager's
// DOCKER_HOST.
func startCluster(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	// The agents mount a tmpfs in their data dirs for task files; the
	// directories can only be removed once it is unmounted (after shoal
	// stopped: cleanups run last first).
	tb.Cleanup(func() {
		for _, e := range bed.Engines {
			_ = exec.Command("umount", "-l", filepath.Join(dir, e.Hostname, "task-files")).Run()
		}
	})
	args := func(e *testbed.Engine) []string {
		return []string{"--data-dir", filepath.Join(dir, e.Hostname), "--engine", e.UnixHost(), "--advertise-addr", e.IP,
			"-H", fmt.Sprintf("tcp://0.0.0.0:%d", apiPort), "--insecure-no-tlsverify", "--log-level", "debug",
			"--engine-refresh-interval", "300ms", "--engine-failure-retry", "2"}
	}
	// SHOAL_STACKS_LOGS=dir keeps the nodes' logs there (they go with the
	// test's temporary directory otherwise).
	logPath := func(name string) string {
		if d := os.Getenv("SHOAL_STACKS_LOGS"); d != "" {
			return filepath.Join(d, name+".log")
		}
		return ""
	}
	mgr := bed.Engines[0]
	h := fmt.Sprintf("tcp://%s:%d", mgr.IP, apiPort)
	init := shoaltest.Start(tb, shoaltest.Options{Args: append([]string{"init"}, args(mgr)...), Name: "manager", Netns: mgr.Netns, NoWait: true, LogPath: logPath("manager")})
	var token string
	shoaltest.Eventually(tb, 60*time.Second, "the cluster's worker token", func() error {
		res := run(context.Background(), cli28, h, "swarm", "join-token", "-q", "worker")
		if token = strings.TrimSpace(res.Out); res.Exit != 0 || !strings.HasPrefix(token, "SWMTKN-1-") {
			return fmt.Errorf("exit %d %s%s\n%s", res.Exit, res.Out, res.Err, init.LogTail(5))
		}
		return nil
	})
	for i, e := range bed.Engines[1:] {
		join := append(append([]string{"join", "--token", token}, args(e)...), mgr.IP+":2377")
		shoaltest.Start(tb, shoaltest.Options{Args: join, Name: fmt.Sprintf("worker%d", i+1), Netns: e.Netns, NoWait: true, LogPath: logPath(fmt.Sprintf("worker%d", i+1))})
	}
	shoaltest.Eventually(tb, 60*time.Second, "3 Ready nodes", func() error {
		res := run(context.Background(), cli28, h, "node", "ls", "--format", "{{.Status}}")
		if strings.Count(res.Out, "Ready") != 3 {
			return fmt.Errorf("nodes: exit %d %q %s", res.Exit, res.Out, res.Err)
		}
		return nil
	})
	return h
}

// result is one CLI run.
type result = shoaltest.CLIResult

// run runs a docker CLI binary against h (stdin empty).
func run(ctx context.Context, bin, h string, args ...string) result {
	return runIn(ctx, "", bin, h, args...)
}

// runIn is run in directory dir (where a stack file's relative paths are).
func runIn(ctx context.Context, dir, bin, h string, args ...string) result {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = shoaltest.DockerEnv(h, cfgDir)
	cmd.Dir = dir
	return shoaltest.RunCmd(cmd)
}

// runStdin runs the CLI 28 against the cluster with in on its stdin.
func runStdin(t *testing.T, in io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli28, args...)
	cmd.Env = shoaltest.DockerEnv(host, cfgDir)
	cmd.Stdin = in
	return shoaltest.RunCmd(cmd)
}

// docker runs the CLI 28 against the cluster.
func docker(t *testing.T, args ...string) result {
	t.Helper()
	return run(context.Background(), cli28, host, args...)
}

// must is docker that fails the test on a non-zero exit.
func must(t *testing.T, args ...string) string {
	t.Helper()
	res := docker(t, args...)
	if res.Exit != 0 {
		t.Fatalf("docker %s: exit %d: %s", strings.Join(args, " "), res.Exit, res.Err)
	}
	return strings.TrimSpace(res.Out)
}

// engine runs the CLI 28 against engine i directly.
func engine(t *testing.T, i int, args ...string) result {
	t.Helper()
	return run(context.Background(), cli28, bed.Engines[i].UnixHost(), args...)
}

// waitFor polls f every 200 ms until it returns nil or within passes.
func waitFor(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	shoaltest.Poll(t, 200*time.Millisecond, within, what, f)
}
