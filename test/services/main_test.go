// Package services tests swarm mode's service API end to end, with real
// dockerd engines and real clients (the docker CLI 28 and 20.10, docker-py
// 5.0.3), against a table of targets that are each three engines:
//
//   - "swarm": a real swarm-mode cluster (node1 runs `docker swarm init`,
//     node2 and node3 join as workers), the reference;
//   - "shoal": `shoal manage --data-dir` over three other engines.
//
// TestServiceBuiltinCluster also runs the lifecycle against a built-in
// cluster (`shoal init` and `shoal join --token`) on engines of its own.
//
// Each scenario runs against every target and records normalised
// observations (CLI output without IDs and ages, exit codes, JSON key
// shapes, status codes and messages); shoal's are compared with swarm
// mode's step by step. Swarm mode's observations are kept in
// testdata/swarm/<test>.json, recorded from a real swarm-mode dockerd
// (SHOAL_COMPARE_SWARM=1 go test ./test/services -args -update), so the
// shoal side is compared with swarm mode even when swarm mode does not run.
//
// Which targets run: the shoal side always; the swarm-mode side only when
// SHOAL_COMPARE_SWARM=1 (it is slow: a node loss takes swarm mode ~43 s,
// an update several seconds per task; CI runs the shoal side alone, against
// the recorded observations). SHOAL_SERVICES_TARGETS=swarm runs swarm mode
// alone (to check the tests themselves before shoal has services).
//
// Both targets' engines have the same hostnames (node1..node3) and engine
// labels (zone=a/b/c), so outputs compare. Every test removes its services
// when it ends, whatever the outcome; the engines and namespaces are torn
// down by testbed.Main.
package services

import (
	"context"
	"flag"
	"fmt"
	"os"
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
)

var update = flag.Bool("update", false, "rewrite testdata/swarm/*.json from the swarm-mode target's observations")

// target is one three-engine cluster the scenarios run against.
type target struct {
	Name    string // "swarm", "shoal" or "cluster"
	Host    string // DOCKER_HOST of its API: tcp://ip:port
	Swarm   bool   // a real swarm-mode cluster
	Engines []int  // indexes in bed.Engines of its three engines, node1 first
	Nodes   []string

	clusterBed *testbed.Bed // the engines of a built-in cluster's own Bed (else bed's)
}

// engine returns the engine of the target's node i (0-based).
func (tg *target) engine(i int) *testbed.Engine {
	if tg.clusterBed != nil {
		return tg.clusterBed.Engines[tg.Engines[i]]
	}
	return bed.Engines[tg.Engines[i]]
}

var (
	bed     *testbed.Bed
	targets []*target // in the order scenarios run: swarm first when it runs
	cfgDir  string    // DOCKER_CONFIG for the CLIs
)

// compareSwarm reports whether the swarm-mode side runs (see the package doc).
func compareSwarm() bool {
	return os.Getenv("SHOAL_COMPARE_SWARM") == "1" || wantTargets() == "swarm"
}

// wantTargets is SHOAL_SERVICES_TARGETS: "swarm", "shoal" or "" (both as
// SHOAL_COMPARE_SWARM says).
func wantTargets() string { return os.Getenv("SHOAL_SERVICES_TARGETS") }

func runsShoal() bool { return wantTargets() != "swarm" }

func TestMain(m *testing.M) { os.Exit(mainRun(m)) }

func mainRun(m *testing.M) int {
	flag.Parse()
	n := 0
	if compareSwarm() {
		n += 3
	}
	if runsShoal() {
		n += 3
	}
	// --insecure-registry: TestServiceRegistryAuth's registry is on the bridge, without TLS.
	opts := testbed.Options{Engines: n, Prefix: "svc", ExtraArgs: []string{"--insecure-registry", "10.213.0.0/16"}}
	for i := 0; i < n; i++ {
		opts.Hostnames = append(opts.Hostnames, fmt.Sprintf("node%d", i%3+1))
		opts.Labels = append(opts.Labels, map[string]string{"zone": string(rune('a' + i%3))})
	}
	return testbed.Main(m, testbed.MainOptions{Options: opts}, func(tb testing.TB, b *testbed.Bed) {
		bed = b
		cfgDir = tb.TempDir()
		next := 0
		if compareSwarm() {
			targets = append(targets, startSwarm(tb, []int{0, 1, 2}))
			next = 3
		}
		if runsShoal() {
			targets = append(targets, startShoal(tb, []int{next, next + 1, next + 2}))
		}
	})
}

// startSwarm makes engines idx a swarm-mode cluster: the first inits, the
// others join as workers.
func startSwarm(tb testing.TB, idx []int) *target {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mgr := bed.Engines[idx[0]]
	if _, _, err := bed.Docker(ctx, mgr.TCPAddr, "swarm", "init", "--advertise-addr", mgr.IP); err != nil {
		tb.Fatal(err)
	}
	token, _, err := bed.Docker(ctx, mgr.TCPAddr, "swarm", "join-token", "-q", "worker")
	if err != nil {
		tb.Fatal(err)
	}
	for _, i := range idx[1:] {
		if _, _, err := bed.Docker(ctx, bed.Engines[i].TCPAddr, "swarm", "join", "--token", strings.TrimSpace(token), mgr.IP+":2377"); err != nil {
			tb.Fatal(err)
		}
	}
	tg := &target{Name: "swarm", Host: mgr.TCPAddr, Swarm: true, Engines: idx}
	waitNodes(tb, tg)
	return tg
}

// startShoal runs `shoal manage --data-dir` over engines idx.
func startShoal(tb testing.TB, idx []int) *target {
	tb.Helper()
	var addrs []string
	for _, i := range idx {
		addrs = append(addrs, strings.TrimPrefix(bed.Engines[i].TCPAddr, "tcp://"))
	}
	dataDir := filepath.Join(tb.TempDir(), "data")
	flags := append([]string{"--data-dir", dataDir}, shoaltest.FastFlags...)
	sh := shoaltest.Manage(tb, "nodes://"+strings.Join(addrs, ","), flags...)
	tg := &target{Name: "shoal", Host: sh.Host, Engines: idx}
	waitNodes(tb, tg)
	return tg
}

// waitNodes waits until the target lists its three nodes Ready and
// records their IDs in node order.
func waitNodes(tb testing.TB, tg *target) {
	tb.Helper()
	shoaltest.Eventually(tb, 90*time.Second, tg.Name+": 3 ready nodes", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, _, err := bed.Docker(ctx, tg.Host, "node", "ls", "--format", "{{.Hostname}} {{.ID}} {{.Status}}")
		if err != nil {
			return err
		}
		ids := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			if len(f) == 3 && f[2] == "Ready" {
				ids[f[0]] = f[1]
			}
		}
		if len(ids) != 3 {
			return fmt.Errorf("nodes: %q", out)
		}
		tg.Nodes = []string{ids["node1"], ids["node2"], ids["node3"]}
		return nil
	})
}

// forTargets runs fn once per target, as a subtest named after it.
func forTargets(t *testing.T, fn func(t *testing.T, tg *target)) {
	for _, tg := range targets {
		t.Run(tg.Name, func(t *testing.T) { fn(t, tg) })
	}
}
