// Package e2e runs shoal against real dockerd engines (started by
// test/testbed in network namespaces) and drives it with real clients: the
// docker CLI 28, the Debian docker CLI 20.10 and the moby Go client.
//
// TestMain (testbed.Main) starts one shared Bed of 3 engines and one shared
// shoal binary over them (shoaltest), and loads the busybox image through
// shoal. Tests that kill or restart engines start their own small Bed or
// their own shoal. scenario_test.go runs the test/scenario bodies here.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

const (
	bedPrefix = "e2e"
	cli28     = "/usr/local/bin/docker"
	cli2010   = "/usr/bin/docker"
)

var (
	workDir string // temp dir of this run
	bed     *testbed.Bed
	sh      *shoaltest.Shoal // shared shoal over bed's 3 engines
	bbTar   string           // busybox image archive
	bbID    string           // its image ID
)

func TestMain(m *testing.M) {
	os.Exit(testbed.Main(m, testbed.MainOptions{Options: testbed.Options{Engines: 3, Prefix: bedPrefix}, NoBusybox: true}, setup))
}

// setup starts the shared shoal (engine 1 given as bare host:port, the
// others as tcp://host:port) and loads busybox through it.
func setup(tb testing.TB, b *testbed.Bed) {
	bed, workDir = b, tb.TempDir()
	var err error
	if bbTar, err = bed.BusyboxPath(); err == nil {
		bbID, err = testbed.BusyboxImageID()
	}
	if err != nil {
		tb.Fatalf("busybox: %v", err)
	}
	e := bed.Engines
	disc := fmt.Sprintf("nodes://%s:2375,%s,%s", e[0].IP, e[1].TCPAddr, e[2].TCPAddr)
	sh = startShoalT(tb, disc, "-H", "unix://"+filepath.Join(workDir, "shoal.sock"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := sh.WaitNodes(ctx, 3, 30*time.Second); err != nil {
		tb.Fatalf("shoal: %v\n%s", err, sh.LogTail(100))
	}
	// docker load through shoal fans out to every engine.
	out, err := runDocker(ctx, dockerCmd{host: sh.Host, args: []string{"load", "-i", bbTar}})
	if err != nil || !strings.Contains(out, "busybox:latest") {
		tb.Fatalf("docker load through shoal: %v: %s\n%s", err, out, sh.LogTail(50))
	}
}

// ---------------------------------------------------------------- shoal

// e2eFlags are the short health intervals every e2e shoal runs with.
var e2eFlags = []string{"--engine-refresh-interval", "500ms", "--engine-failure-retry", "2", "--engine-timeout", "1s"}

// startShoalT starts a test's own `shoal manage` on a free port and waits
// for /_ping; it is stopped when the test ends, its log shown on failure.
func startShoalT(tb testing.TB, discovery string, extra ...string) *shoaltest.Shoal {
	tb.Helper()
	args := append(append(append([]string{"manage"}, e2eFlags...), extra...), discovery)
	return shoaltest.Start(tb, shoaltest.Options{Args: args})
}

var httpc = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// ---------------------------------------------------------------- helpers

func waitFor(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type dockerCmd struct {
	bin   string   // default cli28
	host  string   // DOCKER_HOST
	env   []string // extra env
	stdin io.Reader
	args  []string
}

type dockerErr struct {
	args     []string
	code     int
	stdout   string
	stderr   string
	underlay error
}

func (e *dockerErr) Error() string {
	return fmt.Sprintf("docker %s: exit %d (%v): stderr=%q stdout=%q", strings.Join(e.args, " "), e.code, e.underlay, strings.TrimSpace(e.stderr), strings.TrimSpace(e.stdout))
}

var dockerCfg atomic.Value

func dockerConfigDir() string {
	if v, ok := dockerCfg.Load().(string); ok {
		return v
	}
	d := filepath.Join(workDir, "dockercfg")
	os.MkdirAll(d, 0o700)
	dockerCfg.Store(d)
	return d
}

// runDocker runs a docker CLI; on failure the error is a *dockerErr carrying
// the exit code and stderr. It returns stdout.
func runDocker(ctx context.Context, c dockerCmd) (string, error) {
	out, _, err := runDocker2(ctx, c)
	return out, err
}

// runDocker2 is runDocker returning stderr too.
func runDocker2(ctx context.Context, c dockerCmd) (string, string, error) {
	bin := c.bin
	if bin == "" {
		bin = cli28
	}
	cmd := exec.CommandContext(ctx, bin, c.args...)
	env := []string{"DOCKER_HOST=" + c.host, "DOCKER_CONFIG=" + dockerConfigDir(), "DOCKER_CLI_HINTS=false"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, c.env...)
	cmd.Stdin = c.stdin
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if err != nil {
		de := &dockerErr{args: c.args, code: -1, stdout: o.String(), stderr: e.String(), underlay: err}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			de.code = ee.ExitCode()
		}
		return o.String(), e.String(), de
	}
	return o.String(), e.String(), nil
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dk runs the docker CLI 28 against the shared shoal and fails the test on error.
func dk(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runDocker(ctxT(t, 60*time.Second), dockerCmd{host: sh.Host, args: args})
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// dkIn is dk with stdin.
func dkIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := runDocker(ctxT(t, 60*time.Second), dockerCmd{host: sh.Host, args: args, stdin: strings.NewReader(stdin)})
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// dkFail runs a docker command that must fail and returns its error.
func dkFail(t *testing.T, args ...string) *dockerErr {
	t.Helper()
	out, err := runDocker(ctxT(t, 60*time.Second), dockerCmd{host: sh.Host, args: args})
	if err == nil {
		t.Fatalf("docker %s: want failure, got success: %q", strings.Join(args, " "), out)
	}
	return err.(*dockerErr)
}

// dkOn runs the docker CLI 28 against a given host.
func dkOn(t *testing.T, host string, args ...string) string {
	t.Helper()
	out, err := runDocker(ctxT(t, 60*time.Second), dockerCmd{host: host, args: args})
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

var nameSeq atomic.Int64

// uniq returns a container name unique within this run.
func uniq(prefix string) string {
	return fmt.Sprintf("%s%d-%d", prefix, os.Getpid()%1000, nameSeq.Add(1))
}

// rmf removes containers through shoal at the end of the test.
func rmf(t *testing.T, names ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		runDocker(ctx, dockerCmd{host: sh.Host, args: append([]string{"rm", "-f"}, names...)})
	})
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// containerJSON is the part of container inspect the tests look at.
type containerJSON struct {
	ID    string `json:"Id"`
	Name  string
	State struct {
		Status   string
		Running  bool
		Paused   bool
		ExitCode int
	}
	HostConfig struct {
		Memory    int64
		CPUShares int64
	}
	Node *struct {
		ID   string
		Name string
		Addr string
		IP   string
	}
}

func inspect(t *testing.T, ref string) containerJSON {
	t.Helper()
	out := dk(t, "inspect", "--type", "container", ref)
	var cs []containerJSON
	if err := json.Unmarshal([]byte(out), &cs); err != nil || len(cs) != 1 {
		t.Fatalf("inspect %s: %v: %s", ref, err, out)
	}
	return cs[0]
}

// engineOf returns the index in bed of the engine with that IP.
func engineOf(t *testing.T, b *testbed.Bed, ip string) int {
	t.Helper()
	for i, e := range b.Engines {
		if e.IP == ip {
			return i
		}
	}
	t.Fatalf("no engine with IP %q", ip)
	return -1
}

func jsonDecode(b []byte, v any) error { return json.Unmarshal(b, v) }

func fmtSscan(s string, a ...any) (int, error) { return fmt.Sscan(s, a...) }

type mismatch struct {
	out            string
	total, running int
}

func (m *mismatch) Error() string {
	return fmt.Sprintf("shoal says %q, engines say %d %d", strings.TrimSpace(m.out), m.total, m.running)
}
