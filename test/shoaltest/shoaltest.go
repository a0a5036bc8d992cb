// Package shoaltest runs the real shoal binary for end-to-end tests: it
// builds it once, starts `shoal manage` on a free loopback port in front of
// testbed engines, and stops it when the test ends.
package shoaltest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds ./cmd/shoal once per test process and returns its path.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "shoaltest-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "shoal")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/shoal")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

// Shoal is one running `shoal manage`.
type Shoal struct {
	Host    string // tcp://127.0.0.1:port, for DOCKER_HOST
	Addr    string
	LogPath string
	args    []string
	bin     string
	cmd     *exec.Cmd
	done    chan struct{}
}

// FastFlags make engine failures show within about a second.
var FastFlags = []string{"--engine-refresh-interval", "300ms", "--engine-failure-retry", "2", "--engine-timeout", "1s"}

// Start runs `shoal manage` with extra flags over discovery, waits for
// /_ping, and stops it (printing its log on failure) when tb ends.
func Start(tb testing.TB, discovery string, extra ...string) *Shoal {
	tb.Helper()
	bin := Binary(tb)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	args := append([]string{"manage", "-H", "tcp://" + addr, "--log-level", "debug"}, extra...)
	args = append(args, discovery)
	s := &Shoal{Host: "tcp://" + addr, Addr: addr, LogPath: filepath.Join(tb.TempDir(), "shoal.log"), args: args, bin: bin}
	if err := s.Restart(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		s.Stop()
		if tb.Failed() {
			tb.Logf("shoal log (last 60 lines):\n%s", s.LogTail(60))
		}
	})
	return s
}

// Restart starts the process again with the same arguments.
func (s *Shoal) Restart() error {
	lf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	c := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if resp, err := c.Get("http://" + s.Addr + "/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("shoal exited: %v\n%s", cmd.ProcessState, s.LogTail(30))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("shoal did not answer /_ping in 20s\n%s", s.LogTail(30))
}

// Stop ends shoal (SIGTERM, then SIGKILL after 5 s).
func (s *Shoal) Stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// LogTail returns the last n lines of shoal's log.
func (s *Shoal) LogTail(n int) string {
	data, _ := os.ReadFile(s.LogPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Docker runs the docker CLI against shoal.
func (s *Shoal) Docker(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	return Docker(ctx, s.Host, args...)
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
	var err error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	tb.Fatalf("%s: not within %v: %v", what, timeout, err)
}
