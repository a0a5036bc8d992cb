// Package federation tests a shoal of shoals end to end, with real dockerd
// engines (test/testbed, in network namespaces) and real clients (the
// docker CLI 28, docker-compose 1.29, docker-py): member siteA (region=eu)
// over engines e1 and e2, member siteB (region=us) over e3, the top shoal
// over both members, and a third level, world, over the top.
//
// One federation serves every test (TestMain): the CI budget is tight.
// Tests leave it as they found it: the containers, images, networks,
// volumes and services they make are removed, and a member they stop is
// started again.
package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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
	compose = "/usr/bin/docker-compose"
	python  = "/usr/bin/python3" // Debian's, with python3-docker
)

var (
	bed                 *testbed.Bed
	siteA, siteB        *shoaltest.Shoal // the members
	top, world          *shoaltest.Shoal // over the members; over the top
	cfgDir              string           // DOCKER_CONFIG of the CLIs
	e1Name, e3Name      = "e1", "e3"
	engineOf            = map[string]int{"e1": 0, "e2": 1, "e3": 2}
	bbTar               string
	healthFlags         = shoaltest.FastFlags
	federationStartWait = 60 * time.Second
)

func TestMain(m *testing.M) {
	opts := testbed.Options{Engines: 3, Prefix: "fed", Hostnames: []string{"e1", "e2", "e3"},
		Labels: []map[string]string{{"disk": "hdd"}, {"disk": "ssd"}, {"disk": "hdd"}},
		// TestPullPush's registry is on the bed's bridge, without TLS.
		ExtraArgs: []string{"--insecure-registry", "10.213.0.0/16"}}
	os.Exit(testbed.Main(m, testbed.MainOptions{Options: opts, NoBusybox: true}, setup))
}

// setup starts the members, the top and world, waits until each level
// knows the one below as a member with all its nodes, and loads busybox
// through the top (it reaches every engine).
func setup(tb testing.TB, b *testbed.Bed) {
	bed, cfgDir = b, tb.TempDir()
	var err error
	if bbTar, err = bed.BusyboxPath(); err != nil {
		tb.Fatal(err)
	}
	e := bed.Engines
	siteA = startShoal(tb, "siteA", "--name", "siteA", "--label", "region=eu", fmt.Sprintf("nodes://%s:2375,%s:2375", e[0].IP, e[1].IP))
	siteB = startShoal(tb, "siteB", "--name", "siteB", "--label", "region=us", fmt.Sprintf("nodes://%s:2375", e[2].IP))
	top = startShoal(tb, "top", "--name", "top", "nodes://"+siteA.Addr+","+siteB.Addr)
	world = startShoal(tb, "world", "--name", "world", "nodes://"+top.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, w := range []struct {
		s     *shoaltest.Shoal
		nodes int
		kinds []string
	}{
		{siteA, 2, nil}, {siteB, 1, nil},
		{top, 2, []string{"shoal member: 2 nodes (2 healthy)", "shoal member: 1 nodes (1 healthy)"}},
		{world, 1, []string{"shoal member: 3 nodes (3 healthy)"}},
	} {
		if err := w.s.WaitNodes(ctx, w.nodes, federationStartWait); err != nil {
			tb.Fatalf("%s: %v", w.s.Name, err)
		}
		if err := waitKinds(ctx, w.s, w.kinds); err != nil {
			tb.Fatalf("%s: %v", w.s.Name, err)
		}
	}
	res := run(ctx, top.Host, nil, "load", "-i", bbTar)
	if res.Exit != 0 || !strings.Contains(res.Out, "busybox:latest") {
		tb.Fatalf("docker load through the top: exit %d %s %s", res.Exit, res.Out, res.Err)
	}
}

// startShoal starts `shoal manage` named name. SHOAL_FED_LOGS=dir keeps
// the shoals' logs there (they go with the test's temporary directory
// otherwise).
func startShoal(tb testing.TB, name string, args ...string) *shoaltest.Shoal {
	var logPath string
	if d := os.Getenv("SHOAL_FED_LOGS"); d != "" {
		logPath = filepath.Join(d, name+".log")
	}
	return shoaltest.Start(tb, shoaltest.Options{Name: name, LogPath: logPath, Args: append(append([]string{"manage"}, healthFlags...), args...)})
}

// waitKinds waits until s's info shows its members with these Kind lines.
func waitKinds(ctx context.Context, s *shoaltest.Shoal, kinds []string) error {
	var got []string
	for deadline := time.Now().Add(federationStartWait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got = nil
		for _, l := range info(ctx, s.Host).DriverStatus {
			if l[0] == "  └ Kind" {
				got = append(got, l[1])
			}
		}
		if strings.Join(got, "|") == strings.Join(kinds, "|") {
			return nil
		}
	}
	return fmt.Errorf("members' kinds %q; want %q", got, kinds)
}

// infoT is the part of /info the tests compare.
type infoT struct {
	Name                                                               string
	Containers, ContainersRunning, ContainersPaused, ContainersStopped int
	Images, NCPU                                                       int
	MemTotal                                                           int64
	Warnings                                                           []string
	DriverStatus                                                       [][2]string
}

// info is host's /info (zero when it does not answer).
func info(ctx context.Context, host string) infoT {
	var v infoT
	_ = getJSON(ctx, host, "/info", &v)
	return v
}

var httpc = &http.Client{Timeout: 30 * time.Second}

// getJSON decodes the answer of GET path at host (tcp://addr).
func getJSON(ctx context.Context, host, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+strings.TrimPrefix(host, "tcp://")+path, nil)
	if err != nil {
		return err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// result is one CLI run.
type result = shoaltest.CLIResult

// run runs the docker CLI 28 against host, with stdin when given.
func run(ctx context.Context, host string, stdin *strings.Reader, args ...string) result {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli28, args...)
	cmd.Env = shoaltest.DockerEnv(host, cfgDir)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.WaitDelay = 2 * time.Second
	return shoaltest.RunCmd(cmd)
}

// dk runs the CLI against host and fails the test on a non-zero exit.
func dk(t *testing.T, host string, args ...string) string {
	t.Helper()
	res := run(t.Context(), host, nil, args...)
	if res.Exit != 0 {
		t.Fatalf("docker -H %s %s: exit %d: %s%s", host, strings.Join(args, " "), res.Exit, res.Err, res.Out)
	}
	return strings.TrimSpace(res.Out)
}

// eng is the DOCKER_HOST of engine e1, e2 or e3, to look behind shoal.
func eng(name string) string { return bed.Engines[engineOf[name]].Host() }

// names lists the containers' names (all of them) at host, sorted as listed.
func names(t *testing.T, host string, filter ...string) []string {
	t.Helper()
	args := append([]string{"ps", "-a", "--format", "{{.Names}}"}, filter...)
	return strings.Fields(dk(t, host, args...))
}

func waitFor(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	shoaltest.Poll(t, 200*time.Millisecond, within, what, f)
}

// removeAt removes containers by name at the top when the test ends.
func removeAt(t *testing.T, refs ...string) {
	t.Cleanup(func() {
		run(context.Background(), top.Host, nil, append([]string{"rm", "-f"}, refs...)...)
	})
}
