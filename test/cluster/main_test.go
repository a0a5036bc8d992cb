// Package cluster tests the built-in cluster end to end: real dockerd
// engines, each in its own network namespace (test/testbed), with a real
// shoal process started inside each namespace (shoal init / shoal join
// --token), driven through the docker CLI 28.
package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

const bedPrefix = "clu"

var bed *testbed.Bed

func TestMain(m *testing.M) { os.Exit(mainRun(m)) }

func mainRun(m *testing.M) int {
	return testbed.Main(m, testbed.Options{Engines: 5, Prefix: bedPrefix}, func(b *testbed.Bed) { bed = b })
}

// proc is a shoal process started in a host's namespace; it is killed by
// PID when the test ends, whatever the outcome, and its log shown on failure.
type proc struct {
	name, log string
	argv      []string
	cmd       *exec.Cmd
	done      chan struct{}
}

// startShoal runs `shoal args...` inside host i's network namespace.
func startShoal(t *testing.T, i int, name string, args ...string) *proc {
	t.Helper()
	bin := shoaltest.Binary(t)
	argv := append([]string{"nsenter", "--net=/run/netns/" + bed.Engines[i].Netns, "--", bin}, args...)
	p := &proc{name: name, log: filepath.Join(t.TempDir(), name+".log"), argv: argv}
	p.start(t)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s log (tail) ---\n%s", name, p.tail(30))
		}
	})
	return p
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	lf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	fmt.Fprintf(lf, "=== %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(p.argv, " "))
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(p.done)
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group, SIGKILL after 5 s.
func (p *proc) stop() {
	if p.cmd == nil || !p.alive() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.kill()
	}
}

// kill SIGKILLs the process group (a crash) and waits for it.
func (p *proc) kill() {
	if p.cmd == nil || !p.alive() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(d time.Duration) (exited bool, code int) {
	select {
	case <-p.done:
		return true, p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		return false, 0
	}
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func (p *proc) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.output(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// execOut runs a command and returns its stdout.
func execOut(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", name, err, stderr.String())
	}
	return string(out), nil
}
