// Package shoaltest is the one way tests start shoal: Start runs any
// subcommand (manage, init, join, ...) either as the real binary (built
// once per test process) or in-process through cli.Execute, waits for its
// Docker API, and ends it when the test ends, by PID or by cancelling its
// context, showing its log if the test failed.
package shoaltest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/cli"
	"github.com/shoal-dev/shoal/internal/testport"
	"github.com/shoal-dev/shoal/test/testbed"
)

// FastFlags make engine failures show within about a second.
var FastFlags = []string{"--engine-refresh-interval", "300ms", "--engine-failure-retry", "2", "--engine-timeout", "1s"}

// Options say how Start runs shoal.
type Options struct {
	// Args is the command line after "shoal": the subcommand first, then its
	// flags and arguments. To manage without a tcp:// -H Start adds
	// -H tcp://127.0.0.1:<free port>, without --log-level, debug, and without
	// --data-dir (or --replication) a temporary directory of its own.
	Args []string
	// InProcess runs cli.Execute in a goroutine of the test process instead
	// of the binary (no build, profiles and the race detector see shoal).
	// Its log goes to the test's stderr; Env, LogPath and Netns do not apply.
	InProcess bool
	// Env is added to the binary's environment.
	Env []string
	// LogPath is where the binary's output goes (default: a file named
	// after Name in tb.TempDir()).
	LogPath string
	// Netns runs the binary inside that network namespace (nsenter).
	Netns string
	// Name names the process in logs (default: the subcommand).
	Name string
	// NoWait returns as soon as shoal is started instead of waiting for
	// /_ping on its tcp -H address (for join, or an address the host
	// cannot reach).
	NoWait bool
}

// Shoal is one running shoal.
type Shoal struct {
	Name    string
	Host    string // tcp://host:port of the first tcp -H, for DOCKER_HOST
	Addr    string // its host:port
	Unix    string // the path of the first unix -H, if any
	LogPath string

	opts Options
	tb   testing.TB
	proc *Proc // binary mode

	mu     sync.Mutex
	cancel context.CancelFunc // in-process mode
	done   chan struct{}
	code   int
}

// Manage starts `shoal manage [flags] discovery` (binary) and waits for its API.
func Manage(tb testing.TB, discovery string, flags ...string) *Shoal {
	tb.Helper()
	args := append(append([]string{"manage"}, flags...), discovery)
	return Start(tb, Options{Args: args})
}

// Start runs shoal as opts say and, unless NoWait, waits for /_ping. When
// tb ends it stops shoal (SIGTERM to its process group then SIGKILL, or
// the in-process context cancelled) and logs its output if tb failed.
func Start(tb testing.TB, opts Options) *Shoal {
	tb.Helper()
	s := prepare(tb, opts)
	tb.Cleanup(func() {
		s.Stop()
		if tb.Failed() && !s.opts.InProcess {
			tb.Logf("--- %s log %s (tail) ---\n%s", s.Name, s.LogPath, s.LogTail(60))
		}
	})
	if err := s.Restart(); err != nil {
		tb.Fatalf("start %s: %v", s.Name, err)
	}
	return s
}

// prepare completes the arguments and finds the API addresses.
func prepare(tb testing.TB, opts Options) *Shoal {
	tb.Helper()
	if len(opts.Args) == 0 {
		tb.Fatal("shoaltest: no subcommand")
	}
	args := append([]string(nil), opts.Args...)
	if tcp, _ := hosts(args); args[0] == "manage" && tcp == "" {
		args = append([]string{"manage", "-H", "tcp://" + FreeAddr(tb)}, args[1:]...)
	}
	if args[0] == "manage" && !hasFlag(args, "--log-level", "-l") {
		args = append([]string{args[0], "--log-level", "debug"}, args[1:]...)
	}
	args = withDataDir(tb, args)
	opts.Args = args
	if opts.Name == "" {
		opts.Name = args[0]
	}
	s := &Shoal{Name: opts.Name, opts: opts, tb: tb, LogPath: opts.LogPath}
	s.Host, s.Unix = hosts(args)
	s.Addr = strings.TrimPrefix(s.Host, "tcp://")
	if opts.InProcess {
		return s
	}
	if s.LogPath == "" {
		s.LogPath = filepath.Join(tb.TempDir(), opts.Name+".log")
	}
	argv := append([]string{Binary(tb)}, args...)
	if opts.Netns != "" {
		argv = append([]string{"nsenter", "--net=/run/netns/" + opts.Netns, "--"}, argv...)
	}
	s.proc = newProc(opts.Name, s.LogPath, opts.Env, argv)
	return s
}

// withDataDir gives a manage its own --data-dir in tb.TempDir(), removed
// when tb ends (after shoal stopped): tests start several shoals, which
// must neither share the default directory nor leave state in it. A
// --replication manager opens no store and is left alone.
func withDataDir(tb testing.TB, args []string) []string {
	if args[0] != "manage" || hasFlag(args, "--data-dir", "--replication") {
		return args
	}
	return append([]string{args[0], "--data-dir", tb.TempDir()}, args[1:]...)
}

func hasFlag(args []string, names ...string) bool {
	for _, a := range args {
		for _, n := range names {
			if a == n || strings.HasPrefix(a, n+"=") {
				return true
			}
		}
	}
	return false
}

// hosts returns the first tcp:// and unix:// (path) addresses given with -H.
func hosts(args []string) (tcp, unix string) {
	for i, a := range args {
		var v string
		switch {
		case (a == "-H" || a == "--host") && i+1 < len(args):
			v = args[i+1]
		case strings.HasPrefix(a, "--host="), strings.HasPrefix(a, "-H="):
			_, v, _ = strings.Cut(a, "=")
		default:
			continue
		}
		if strings.HasPrefix(v, "tcp://") && tcp == "" {
			tcp = v
		}
		if p, ok := strings.CutPrefix(v, "unix://"); ok && unix == "" {
			unix = p
		}
	}
	return tcp, unix
}

// Restart starts shoal again with the same arguments (after Stop or Kill)
// and waits for /_ping unless NoWait.
func (s *Shoal) Restart() error {
	if s.opts.InProcess {
		s.startInProcess()
	} else if err := s.proc.start(); err != nil {
		return err
	}
	if s.opts.NoWait || s.Addr == "" {
		return nil
	}
	return s.waitPing(20 * time.Second)
}

func (s *Shoal) startInProcess() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.mu.Lock()
	s.cancel, s.done = cancel, done
	s.mu.Unlock()
	go func() {
		code := cli.Execute(ctx, s.opts.Args)
		s.mu.Lock()
		s.code = code
		s.mu.Unlock()
		close(done)
	}()
}

func (s *Shoal) waitPing(limit time.Duration) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); {
		if resp, err := c.Get("http://" + s.Addr + "/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !s.Alive() {
			return fmt.Errorf("%s exited (code %d)\n%s", s.Name, s.ExitCode(), s.LogTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer /_ping on %s in %s\n%s", s.Name, s.Addr, limit, s.LogTail(30))
}

// Stop ends shoal gracefully: SIGTERM (SIGKILL after 5 s), or its context
// cancelled when in-process.
func (s *Shoal) Stop() {
	if !s.opts.InProcess {
		s.proc.Stop(5 * time.Second)
		return
	}
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.tb.Errorf("in-process %s did not stop within 30s of its context's end", s.Name)
	}
}

// Kill ends shoal at once (a crash). In-process it is Stop.
func (s *Shoal) Kill() {
	if s.opts.InProcess {
		s.Stop()
		return
	}
	s.proc.Kill()
}

// Alive reports whether shoal still runs.
func (s *Shoal) Alive() bool {
	if !s.opts.InProcess {
		return s.proc.Alive()
	}
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Wait waits up to d for shoal to exit and returns its exit code.
func (s *Shoal) Wait(d time.Duration) (exited bool, code int) {
	if !s.opts.InProcess {
		return s.proc.Wait(d)
	}
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	select {
	case <-done:
		return true, s.ExitCode()
	case <-time.After(d):
		return false, 0
	}
}

// ExitCode is the exit code of the last run (0 while it runs).
func (s *Shoal) ExitCode() int {
	if !s.opts.InProcess {
		_, code := s.proc.Wait(0)
		return code
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code
}

// PID is the binary's process ID (0 in-process).
func (s *Shoal) PID() int {
	if s.opts.InProcess {
		return 0
	}
	return s.proc.PID()
}

// Output is everything the binary wrote so far ("" in-process).
func (s *Shoal) Output() string {
	if s.opts.InProcess {
		return ""
	}
	return s.proc.Output()
}

// LogTail returns the last n lines of the binary's log.
func (s *Shoal) LogTail(n int) string {
	if s.opts.InProcess {
		return "(in-process: the log is on the test's stderr)"
	}
	return testbed.Tail(s.LogPath, n)
}

// Docker runs the docker CLI against shoal.
func (s *Shoal) Docker(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	return Docker(ctx, s.Host, args...)
}

var httpc = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// Do sends one request to shoal's API and returns status, headers and body.
func (s *Shoal) Do(ctx context.Context, method, path string, body []byte, hdr map[string]string) (int, http.Header, []byte, error) {
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

// Node is the part of shoal's GET /nodes the tests look at.
type Node struct {
	ID          string
	Description struct{ Hostname string }
	Status      struct{ State, Addr, Message string }
}

// Nodes returns shoal's GET /nodes.
func (s *Shoal) Nodes(ctx context.Context) ([]Node, error) {
	st, _, b, err := s.Do(ctx, http.MethodGet, "/nodes", nil, nil)
	if err != nil {
		return nil, err
	}
	if st != http.StatusOK {
		return nil, fmt.Errorf("GET /nodes: %d %s", st, b)
	}
	var ns []Node
	return ns, json.Unmarshal(b, &ns)
}

// WaitNodes waits up to timeout until shoal lists exactly n nodes, all ready.
func (s *Shoal) WaitNodes(ctx context.Context, n int, timeout time.Duration) error {
	var err error
	for deadline := time.Now().Add(timeout); ; {
		var ns []Node
		if ns, err = s.Nodes(ctx); err == nil {
			ready := 0
			for _, x := range ns {
				if x.Status.State == "ready" {
					ready++
				}
			}
			if len(ns) == n && ready == n {
				return nil
			}
			err = fmt.Errorf("want %d ready nodes, have %+v", n, ns)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that is free and that no other
// test process is handed (internal/testport holds it for this process).
func FreePort(tb testing.TB) int {
	tb.Helper()
	return testport.Get(tb, 1)
}

// FreeAddr is "127.0.0.1:<FreePort>".
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(tb)))
}

var cfgOnce sync.Once
var cfgDir string

// Docker runs the docker CLI (28.x) against host with a private config dir.
func Docker(ctx context.Context, host string, args ...string) (stdout, stderr string, err error) {
	cfgOnce.Do(func() { cfgDir, _ = os.MkdirTemp("", "shoaltest-docker-") })
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host, "DOCKER_CONFIG="+cfgDir)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// Eventually polls f until it returns nil or timeout passes.
func Eventually(tb testing.TB, timeout time.Duration, what string, f func() error) {
	tb.Helper()
	Poll(tb, 100*time.Millisecond, timeout, what, f)
}

// Poll calls f every interval until it returns nil, and fails tb when
// timeout passes first.
func Poll(tb testing.TB, every, timeout time.Duration, what string, f func() error) {
	tb.Helper()
	var err error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(every) {
		if err = f(); err == nil {
			return
		}
	}
	tb.Fatalf("%s: not within %v: %v", what, timeout, err)
}
