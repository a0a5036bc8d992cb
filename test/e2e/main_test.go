// Package e2e runs shoal against real dockerd engines (started by
// test/testbed in network namespaces) and drives it with real clients: the
// docker CLI 28, the Debian docker CLI 20.10 and the moby Go client.
//
// TestMain builds shoal, starts one shared Bed of 3 engines and one shared
// shoal over them, and loads the busybox image through shoal. Tests that
// kill or restart engines start their own small Bed or their own shoal.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/testbed"
)

const (
	bedPrefix = "e2e"
	cli28     = "/usr/local/bin/docker"
	cli2010   = "/usr/bin/docker"
)

var (
	shoalBin string // built in TestMain
	workDir  string // temp dir of this run
	bed      *testbed.Bed
	sh       *shoal // shared shoal over bed's 3 engines
	bbTar    string // busybox image archive
	bbID     string // its image ID
)

func TestMain(m *testing.M) {
	os.Exit(mainRun(m))
}

func mainRun(m *testing.M) (code int) {
	code = 1
	t0 := time.Now()
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(os.Stderr, "e2e: panic: %v\n", p)
			code = 2
		}
	}()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: must run as root (network namespaces, dockerd)")
		return 1
	}
	var err error
	workDir, err = os.MkdirTemp("", "shoale2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(workDir)
	shoalBin = filepath.Join(workDir, "shoal")
	build := exec.Command("go", "build", "-o", shoalBin, "github.com/shoal-dev/shoal/cmd/shoal")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build shoal:", err)
		return 1
	}
	reapOurs()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bed, err = testbed.Start(ctx, testbed.Options{Engines: 3, Prefix: bedPrefix, Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: testbed:", err)
		return 1
	}
	defer func() {
		bed.SetLogf(nil)
		if err := bed.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: testbed close:", err)
		}
	}()
	bbTar, err = bed.BusyboxPath()
	if err == nil {
		bbID, err = testbed.BusyboxImageID()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: busybox:", err)
		return 1
	}
	// Engine 1 as bare host:port, the others as tcp://host:port.
	e := bed.Engines
	disc := fmt.Sprintf("nodes://%s:2375,%s,%s", e[0].IP, e[1].TCPAddr, e[2].TCPAddr)
	sock := filepath.Join(workDir, "shoal.sock")
	sh, err = startShoal(filepath.Join(workDir, "shared.log"), 0, disc, "-H", "unix://"+sock)
	if sh != nil {
		sh.Unix = sock
	}
	if err == nil {
		err = sh.waitNodes(ctx, 3)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: shoal:", err)
		if sh != nil {
			sh.stop()
			fmt.Fprintln(os.Stderr, sh.logTail(100))
		}
		return 1
	}
	defer sh.stop()
	// docker load through shoal fans out to every engine.
	out, err := runDocker(ctx, dockerCmd{host: sh.Host, args: []string{"load", "-i", bbTar}})
	if err != nil || !strings.Contains(out, "busybox:latest") {
		fmt.Fprintf(os.Stderr, "e2e: docker load through shoal: %v: %s\n%s\n", err, out, sh.logTail(50))
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: setup done in %s\n", time.Since(t0).Round(time.Millisecond))
	code = m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- shared shoal log (tail) ---\n%s\n", sh.logTail(200))
	}
	fmt.Fprintf(os.Stderr, "e2e: total %s\n", time.Since(t0).Round(time.Millisecond))
	return code
}

// ---------------------------------------------------------------- shoal

type shoal struct {
	Host    string // tcp://127.0.0.1:port
	Addr    string // 127.0.0.1:port
	Unix    string // unix socket path, if also served there
	LogPath string
	args    []string
	cmd     *exec.Cmd
	done    chan struct{}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startShoal starts `shoal manage` on 127.0.0.1:port (a free port if 0)
// with short health intervals and waits for /_ping.
func startShoal(logPath string, port int, discovery string, extra ...string) (*shoal, error) {
	if port == 0 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		port = p
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"manage", "-H", "tcp://" + addr,
		"--engine-refresh-interval", "500ms", "--engine-failure-retry", "2", "--engine-timeout", "1s",
		"--log-level", "debug"}
	args = append(args, extra...)
	args = append(args, discovery)
	s := &shoal{Host: "tcp://" + addr, Addr: addr, LogPath: logPath, args: args}
	return s, s.start()
}

func (s *shoal) start() error {
	lf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	fmt.Fprintf(lf, "=== e2e: %s %s\n", shoalBin, strings.Join(s.args, " "))
	cmd := exec.Command(shoalBin, s.args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Pdeathsig: a test binary killed by `go test -timeout` takes shoal along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		st, _, _, err := s.do(context.Background(), "GET", "/_ping", nil, nil)
		if err == nil && st == 200 {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("shoal exited: %v\n%s", cmd.ProcessState, s.logTail(30))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("shoal did not answer /_ping within 20s\n%s", s.logTail(30))
}

// stop ends shoal gracefully (SIGTERM, SIGKILL after 5 s).
func (s *shoal) stop() {
	if s == nil || s.cmd == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// kill SIGKILLs shoal (a crash).
func (s *shoal) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
}

func (s *shoal) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *shoal) logTail(n int) string {
	data, _ := os.ReadFile(s.LogPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var httpc = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// do sends one request to shoal and returns status, headers and body.
func (s *shoal) do(ctx context.Context, method, path string, body []byte, hdr map[string]string) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.Addr+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

type apiNode struct {
	ID          string
	Description struct{ Hostname string }
	Status      struct{ State, Addr, Message string }
}

func (s *shoal) nodes(ctx context.Context) ([]apiNode, error) {
	st, _, b, err := s.do(ctx, "GET", "/nodes", nil, nil)
	if err != nil {
		return nil, err
	}
	if st != 200 {
		return nil, fmt.Errorf("GET /nodes: %d %s", st, b)
	}
	var ns []apiNode
	return ns, json.Unmarshal(b, &ns)
}

// waitNodes waits until shoal lists n nodes, all ready.
func (s *shoal) waitNodes(ctx context.Context, n int) error {
	return waitFor(ctx, 30*time.Second, func() error {
		ns, err := s.nodes(ctx)
		if err != nil {
			return err
		}
		ready := 0
		for _, x := range ns {
			if x.Status.State == "ready" {
				ready++
			}
		}
		if len(ns) != n || ready != n {
			return fmt.Errorf("want %d ready nodes, have %+v", n, ns)
		}
		return nil
	})
}

// startShoalT starts a test's own shoal, stops it at the end and prints its
// log if the test failed.
func startShoalT(t *testing.T, port int, discovery string, extra ...string) *shoal {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "shoal.log")
	s, err := startShoal(logPath, port, discovery, extra...)
	t.Cleanup(func() {
		if s != nil {
			s.stop()
			if t.Failed() {
				t.Logf("--- shoal log %s ---\n%s", logPath, s.logTail(150))
			}
		}
	})
	if err != nil {
		t.Fatalf("start shoal: %v", err)
	}
	return s
}

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

func ctxT(t *testing.T, d time.Duration) context.Context {
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

// reapOurs tears down Beds of earlier runs of this package (prefix
// bedPrefix) whose test process is gone, e.g. killed by `go test -timeout`:
// testbed.Reap leaves Beds alone while their engines still run.
func reapOurs() {
	files, _ := filepath.Glob(filepath.Join(os.TempDir(), "shoal-testbed", bedPrefix+"*.json"))
	for _, f := range files {
		b, err := testbed.Load(f)
		if err != nil || b.Prefix != bedPrefix || b.OwnerPID <= 0 {
			continue
		}
		if syscall.Kill(b.OwnerPID, 0) == nil {
			continue // its owner still runs
		}
		fmt.Fprintf(os.Stderr, "e2e: removing leftover testbed %s\n", b.ID)
		b.Close()
	}
	_ = testbed.Reap(bedPrefix)
}

func fmtSscan(s string, a ...any) (int, error) { return fmt.Sscan(s, a...) }

type mismatch struct {
	out            string
	total, running int
}

func (m *mismatch) Error() string {
	return fmt.Sprintf("shoal says %q, engines say %d %d", strings.TrimSpace(m.out), m.total, m.running)
}
