package shoaltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/testbed"
)

// Proc is a process a test started (shoal's binary, or a store such as
// etcd): its output goes to a log file, and it is ended through its own
// process group, so only what the test started is touched.
type Proc struct {
	Name string
	Log  string
	argv []string
	env  []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartProc runs argv with env added, logging to name.log in tb.TempDir(),
// and stops it (SIGTERM, SIGKILL after 5 s) when tb ends, showing the end
// of its log if tb failed.
func StartProc(tb testing.TB, name string, env []string, argv ...string) *Proc {
	tb.Helper()
	p := newProc(name, filepath.Join(tb.TempDir(), name+".log"), env, argv)
	tb.Cleanup(func() {
		p.Stop(5 * time.Second)
		if tb.Failed() {
			tb.Logf("--- %s log (tail) ---\n%s", name, p.Tail(40))
		}
	})
	if err := p.start(); err != nil {
		tb.Fatal(err)
	}
	return p
}

func newProc(name, log string, env, argv []string) *Proc {
	return &Proc{Name: name, Log: log, env: env, argv: argv}
}

// Restart starts the process again with the same command line.
func (p *Proc) Restart(tb testing.TB) {
	tb.Helper()
	if err := p.start(); err != nil {
		tb.Fatal(err)
	}
}

func (p *Proc) start() error {
	lf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	fmt.Fprintf(lf, "=== %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.argv, " "))
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	if len(p.env) > 0 {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own group, to end it with its children; Pdeathsig: a test binary
	// killed by `go test -timeout` takes it along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return nil
}

func (p *Proc) state() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// Alive reports whether the process still runs.
func (p *Proc) Alive() bool {
	cmd, done := p.state()
	if cmd == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// PID is the process ID of the last start (0 before).
func (p *Proc) PID() int {
	if cmd, _ := p.state(); cmd != nil {
		return cmd.Process.Pid
	}
	return 0
}

// Stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *Proc) Stop(grace time.Duration) {
	if !p.Alive() {
		return
	}
	cmd, done := p.state()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		p.Kill()
	}
}

// Kill SIGKILLs the process group (a crash) and waits for it.
func (p *Proc) Kill() {
	if !p.Alive() {
		return
	}
	cmd, done := p.state()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Wait waits up to d for the process to exit and returns its exit code.
func (p *Proc) Wait(d time.Duration) (exited bool, code int) {
	cmd, done := p.state()
	if cmd == nil {
		return false, 0
	}
	select {
	case <-done:
		return true, cmd.ProcessState.ExitCode()
	default:
	}
	if d <= 0 {
		return false, 0
	}
	select {
	case <-done:
		return true, cmd.ProcessState.ExitCode()
	case <-time.After(d):
		return false, 0
	}
}

// Output is everything the process wrote so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// Tail returns the last n lines of the log.
func (p *Proc) Tail(n int) string { return testbed.Tail(p.Log, n) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds ./cmd/shoal once per test process and returns its path.
// It lives in a directory named after this process; directories of
// processes that are gone are removed on the next build.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() { binPath, buildErr = build() })
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

func build() (string, error) {
	base := filepath.Join(os.TempDir(), "shoaltest-bin")
	removeStale(base)
	dir := filepath.Join(base, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(dir, "shoal")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/shoal")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/shoal: %w\n%s", err, out)
	}
	return bin, nil
}

// removeStale removes the binaries of test processes that are gone.
func removeStale(base string) {
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}
