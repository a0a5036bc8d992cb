// Package secrets tests swarm mode's secrets and configs end to end, with
// real dockerd engines and the real docker CLI 28, on one built-in cluster
// (`shoal init` and `shoal join --token`, two engines) shared by every
// test: the API and CLI shapes compared with swarm mode's, and the
// delivery of secrets and configs into a service's task containers.
//
// Swarm mode's observations are kept in testdata/swarm/<test>.json,
// recorded from a one-node swarm-mode dockerd
// (SHOAL_COMPARE_SWARM=1 go test ./test/secrets -args -update), so shoal's
// are compared with swarm mode's even when swarm mode does not run; with
// SHOAL_COMPARE_SWARM=1 it runs beside shoal, on an engine of its own.
// TestConfigsUnderManage runs `shoal manage --data-dir` over a third
// engine of its own (its nodes run no agent).
package secrets

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

const cli28 = "/usr/local/bin/docker"

// apiPort is the managers' Docker API in their engine's network
// namespace (dockerd has 2375 there).
const apiPort = 2385

var update = flag.Bool("update", false, "rewrite testdata/swarm/*.json from the swarm-mode target's observations")

// target is one API the scenarios run against.
type target struct {
	Name    string // "swarm" or "shoal"
	Host    string
	Engines []*testbed.Engine
	DataDir string // shoal: each node's data dir is DataDir/<hostname>
}

var (
	bed     *testbed.Bed
	targets []*target // swarm first when it runs
	cluster *target   // shoal's
	manage  *target   // shoal manage over an engine of its own
	cfgDir  string
)

func compareSwarm() bool { return os.Getenv("SHOAL_COMPARE_SWARM") == "1" }

func TestMain(m *testing.M) { os.Exit(mainRun(m)) }

func mainRun(m *testing.M) int {
	flag.Parse()
	n := 3
	if compareSwarm() {
		n++
	}
	return testbed.Main(m, testbed.MainOptions{Options: testbed.Options{Engines: n, Prefix: "sec"}}, func(tb testing.TB, b *testbed.Bed) {
		bed = b
		cfgDir = tb.TempDir()
		if compareSwarm() {
			targets = append(targets, startSwarm(tb, b.Engines[3]))
		}
		cluster = startCluster(tb, b.Engines[0], b.Engines[1])
		targets = append(targets, cluster)
		manage = startManage(tb, b.Engines[2])
	})
}

// startSwarm makes e a one-node swarm-mode cluster.
func startSwarm(tb testing.TB, e *testbed.Engine) *target {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, _, err := bed.Docker(ctx, e.TCPAddr, "swarm", "init", "--advertise-addr", e.IP); err != nil {
		tb.Fatal(err)
	}
	return &target{Name: "swarm", Host: e.TCPAddr, Engines: []*testbed.Engine{e}}
}

// startCluster starts `shoal init` in mgr's namespace and `shoal join
// --token` in wrk's, and waits for 2 Ready nodes.
func startCluster(tb testing.TB, mgr, wrk *testbed.Engine) *target {
	tb.Helper()
	dir := tb.TempDir()
	// The agents mount a tmpfs in their data dirs for task files; the
	// directories can only be removed once it is unmounted (after shoal
	// stopped: cleanups run last first).
	tb.Cleanup(func() {
		for _, e := range []*testbed.Engine{mgr, wrk} {
			_ = exec.Command("umount", "-l", filepath.Join(dir, e.Hostname, "task-files")).Run()
		}
	})
	args := func(e *testbed.Engine) []string {
		return []string{"--data-dir", filepath.Join(dir, e.Hostname), "--engine", e.UnixHost(), "--advertise-addr", e.IP,
			"-H", fmt.Sprintf("tcp://0.0.0.0:%d", apiPort), "--insecure-no-tlsverify", "--log-level", "debug",
			"--engine-refresh-interval", "300ms", "--engine-failure-retry", "2"}
	}
	host := fmt.Sprintf("tcp://%s:%d", mgr.IP, apiPort)
	init := shoaltest.Start(tb, shoaltest.Options{Args: append([]string{"init"}, args(mgr)...), Name: "manager", Netns: mgr.Netns, NoWait: true})
	var token string
	shoaltest.Eventually(tb, 60*time.Second, "the cluster's worker token", func() error {
		res := runCLI(context.Background(), host, nil, "swarm", "join-token", "-q", "worker")
		if token = strings.TrimSpace(res.Out); res.Exit != 0 || !strings.HasPrefix(token, "SWMTKN-1-") {
			return fmt.Errorf("exit %d %s%s\n%s", res.Exit, res.Out, res.Err, init.LogTail(5))
		}
		return nil
	})
	join := append(append([]string{"join", "--token", token}, args(wrk)...), mgr.IP+":2377")
	shoaltest.Start(tb, shoaltest.Options{Args: join, Name: "worker", Netns: wrk.Netns, NoWait: true})
	shoaltest.Eventually(tb, 60*time.Second, "2 Ready nodes", func() error {
		res := runCLI(context.Background(), host, nil, "node", "ls", "--format", "{{.Status}}")
		if strings.Count(res.Out, "Ready") != 2 {
			return fmt.Errorf("nodes: exit %d %q %s", res.Exit, res.Out, res.Err)
		}
		return nil
	})
	return &target{Name: "shoal", Host: host, Engines: []*testbed.Engine{mgr, wrk}, DataDir: dir}
}

// startManage runs `shoal manage --data-dir` over e.
func startManage(tb testing.TB, e *testbed.Engine) *target {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "manage")
	sh := shoaltest.Manage(tb, "nodes://"+strings.TrimPrefix(e.TCPAddr, "tcp://"), append([]string{"--data-dir", dir}, shoaltest.FastFlags...)...)
	return &target{Name: "manage", Host: sh.Host, Engines: []*testbed.Engine{e}, DataDir: dir}
}
