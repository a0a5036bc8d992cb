package services

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

// clusterAPIPort is the manager's Docker API inside its engine's network
// namespace (dockerd has 2375 there).
const clusterAPIPort = 2385

// TestServiceBuiltinCluster runs a service's life through a built-in
// cluster (`shoal init` on one engine's host, `shoal join --token` on
// another's, as test/cluster does), on engines of its own: services live
// in the cluster's replicated store. Shoal only (it is not swarm mode).
func TestServiceBuiltinCluster(t *testing.T) {
	if !runsShoal() {
		t.Skip("SHOAL_SERVICES_TARGETS=swarm: shoal's targets do not run")
	}
	cb := testbed.MustStart(t, testbed.Options{Engines: 2, Prefix: "svcc"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cb.LoadBusyboxAll(ctx); err != nil {
		t.Fatal(err)
	}
	tg := startBuiltinCluster(t, cb)
	cleanup(t, tg)
	mustDocker(t, tg, append([]string{"service", "create", "-d", "--quiet", "--name", "cweb", "--replicas", "3", "--update-monitor", "1s", "busybox"}, sleeper...)...)
	waitRunning(t, tg, "cweb", 3, time.Minute)
	out := mustDocker(t, tg, "service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}}")
	if norm(out) != "cweb replicated 3/3" {
		t.Errorf("service ls: %q, want cweb replicated 3/3", out)
	}
	mustDocker(t, tg, "service", "scale", "-d", "cweb=4")
	waitRunning(t, tg, "cweb", 4, time.Minute)
	nodes := map[string]bool{}
	for _, x := range tasks(t, tg, "cweb") {
		if x.DesiredState == "running" {
			nodes[x.NodeID] = true
		}
	}
	if len(nodes) != 2 {
		t.Errorf("4 tasks over %d nodes, want both nodes used", len(nodes))
	}
	mustDocker(t, tg, "service", "update", "-d", "--env-add", "C=1", "cweb")
	waitUpdateState(t, tg, "cweb", "completed", 2*time.Minute)
	waitRunning(t, tg, "cweb", 4, time.Minute)
	mustDocker(t, tg, "service", "rm", "cweb")
	waitFor(t, time.Minute, "cweb's containers removed", func() error {
		if left := taskContainers(t.Context(), tg); len(left) > 0 {
			return fmt.Errorf("left: %v", left)
		}
		return nil
	})
}

// startBuiltinCluster starts `shoal init` in engine 0's namespace and
// `shoal join --token` in engine 1's, and waits for 2 Ready nodes.
func startBuiltinCluster(t *testing.T, cb *testbed.Bed) *target {
	t.Helper()
	dir := t.TempDir()
	args := func(i int) []string {
		e := cb.Engines[i]
		return []string{"--data-dir", filepath.Join(dir, e.Hostname), "--engine", e.UnixHost(), "--advertise-addr", e.IP,
			"-H", fmt.Sprintf("tcp://0.0.0.0:%d", clusterAPIPort), "--insecure-no-tlsverify", "--log-level", "debug",
			"--engine-refresh-interval", "300ms", "--engine-failure-retry", "2"}
	}
	mgr, wrk := cb.Engines[0], cb.Engines[1]
	host := fmt.Sprintf("tcp://%s:%d", mgr.IP, clusterAPIPort)
	init := shoaltest.Start(t, shoaltest.Options{Args: append([]string{"init"}, args(0)...), Name: "cluster-manager", Netns: mgr.Netns, NoWait: true})
	var token string
	shoaltest.Eventually(t, 60*time.Second, "the cluster's worker token", func() error {
		res := runCLI(t.Context(), cli28, host, "swarm", "join-token", "-q", "worker")
		if token = strings.TrimSpace(res.Out); res.Exit != 0 || !strings.HasPrefix(token, "SWMTKN-1-") {
			return fmt.Errorf("exit %d %s%s\n%s", res.Exit, res.Out, res.Err, init.LogTail(5))
		}
		return nil
	})
	join := append(append([]string{"join", "--token", token}, args(1)...), mgr.IP+":2377")
	shoaltest.Start(t, shoaltest.Options{Args: join, Name: "cluster-worker", Netns: wrk.Netns, NoWait: true})
	tg := &target{Name: "cluster", Host: host, Engines: []int{0, 1}}
	shoaltest.Eventually(t, 60*time.Second, "2 Ready nodes", func() error {
		res := runCLI(t.Context(), cli28, host, "node", "ls", "--format", "{{.Hostname}} {{.ID}} {{.Status}}")
		if strings.Count(res.Out, "Ready") != 2 {
			return fmt.Errorf("nodes: exit %d %q %s", res.Exit, res.Out, res.Err)
		}
		return nil
	})
	tg.clusterBed = cb
	return tg
}
