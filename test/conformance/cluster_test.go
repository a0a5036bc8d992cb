package conformance

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// The built-in cluster target: `shoal init` inside node2's network
// namespace and `shoal join --token` inside node3's, over the same two
// engines as the shoal manage pool (reached through the agents' tunnels,
// by their unix sockets). Scenarios run against the targets one after
// the other, so sharing the engines is safe.

const clusterAPIPort = 2385 // the manager's Docker API inside node2's namespace (dockerd has 2375)

// onCluster lists the client/scenario pairs (a * matches any run of
// characters) that also run against the built-in cluster: the whole
// docker-py suite, compose, and the CLI 28 scenarios but networks and
// volumes (the engines' own objects, served the same way in both modes).
// The CLI 20.10 ones repeat the CLI 28 ones over an older API; with them
// the package would take about twice as long for little more coverage.
var onCluster = []string{"python-sdk/*", "compose/*", "cli28/containers", "cli28/images", "cli28/system"}

func runsOnCluster(client, scenario string) bool {
	for _, p := range onCluster {
		re := "^" + strings.ReplaceAll(regexp.QuoteMeta(p), `\*`, ".*") + "$"
		if regexp.MustCompile(re).MatchString(client + "/" + scenario) {
			return true
		}
	}
	return false
}

// startCluster starts the built-in cluster and waits until both nodes are
// Ready and both engines healthy.
func startCluster(tb testing.TB) target {
	tb.Helper()
	dir := tb.TempDir()
	args := func(i int) []string {
		e := bed.Engines[i]
		return []string{"--data-dir", filepath.Join(dir, e.Hostname), "--engine", e.UnixHost(), "--advertise-addr", e.IP,
			"-H", fmt.Sprintf("tcp://0.0.0.0:%d", clusterAPIPort), "--insecure-no-tlsverify", "--log-level", "debug",
			"--engine-refresh-interval", "300ms", "--engine-failure-retry", "2"}
	}
	mgr, wrk := bed.Engines[1], bed.Engines[2]
	host := fmt.Sprintf("tcp://%s:%d", mgr.IP, clusterAPIPort)
	init := shoaltest.Start(tb, shoaltest.Options{Args: append([]string{"init"}, args(1)...), Name: "cluster-manager", Netns: mgr.Netns, NoWait: true})
	var token string
	shoaltest.Eventually(tb, 60*time.Second, "the cluster's worker token", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, errOut, err := shoaltest.Docker(ctx, host, "swarm", "join-token", "-q", "worker")
		if token = strings.TrimSpace(out); err != nil || !strings.HasPrefix(token, "SWMTKN-1-") {
			return fmt.Errorf("%v %s%s\n%s", err, out, errOut, init.LogTail(5))
		}
		return nil
	})
	join := append(append([]string{"join", "--token", token}, args(2)...), fmt.Sprintf("%s:2377", mgr.IP))
	shoaltest.Start(tb, shoaltest.Options{Args: join, Name: "cluster-worker", Netns: wrk.Netns, NoWait: true})
	shoaltest.Eventually(tb, 60*time.Second, "2 Ready nodes, 2 healthy engines", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		nodes, _, err := shoaltest.Docker(ctx, host, "node", "ls", "--format", "{{.Status}}")
		if err != nil || strings.Count(nodes, "Ready") != 2 {
			return fmt.Errorf("nodes: %v %q", err, nodes)
		}
		st, _, err := shoaltest.Docker(ctx, host, "info", "--format", "{{json .DriverStatus}}")
		if err != nil || strings.Count(st, `"Healthy"`) != 2 {
			return fmt.Errorf("engines: %v %s", err, st)
		}
		return nil
	})
	return target{Name: "cluster", Host: host, Shoal: true}
}
