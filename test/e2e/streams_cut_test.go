package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/testbed"
)

// streamCut is a docker command whose answer streams until the engine
// under it dies.
type streamCut struct {
	name string
	// args for a container named c, on node (shoal's name for it, "" when
	// talking to the engine directly).
	args func(c, node string) []string
	env  []string
	// stdin is what the command reads; "" keeps its stdin open (a pipe
	// never written), as an interactive user's would be.
	stdin string
	// ready is output that says the engine's answer is streaming (the
	// build's own RUN output, not the CLI's "Sending build context").
	ready string
	// exitOnly: through shoal the command fails as from the engine, but
	// in its own words: exec asks for the exit code after its stream, and
	// the CLI says nothing (exit 255) only when it cannot reach the
	// daemon, which shoal still is.
	exitOnly bool
	// goesOn: the engine's CLI keeps running when the engine dies (stats
	// shows the container as gone), so a few seconds show it.
	goesOn bool
}

var streamCuts = []streamCut{
	{name: "logs", ready: "tick", args: func(c, _ string) []string { return []string{"logs", "-f", c} }},
	{name: "attach", ready: "tick", args: func(c, _ string) []string { return []string{"attach", "--no-stdin", c} }},
	// docker stats shows a container it lost as 0s, and goes on.
	{name: "stats", ready: "cutstats", goesOn: true, args: func(c, _ string) []string { return []string{"stats", c} }},
	{name: "exec", ready: "ex", exitOnly: true, args: func(c, _ string) []string {
		return []string{"exec", "-i", c, "sh", "-c", "while true; do echo ex; sleep 0.2; done"}
	}},
	{name: "build", ready: "\nbuilding", env: []string{"DOCKER_BUILDKIT=0"}, stdin: "FROM busybox\nRUN echo building && sleep 120\n",
		args: func(c, node string) []string {
			args := []string{"build", "--no-cache", "-t", c + "img"}
			if node != "" {
				args = append(args, "--build-arg", "constraint:node=="+node)
			}
			return append(args, "-")
		}},
}

// cutResult is how one docker command ended after its engine was killed.
type cutResult struct {
	code   int // -1: still running (killed by the test)
	stderr string
	stdout string
}

// runningStream is a started docker command.
type runningStream struct {
	cmd    *exec.Cmd
	out    *lockedBuf
	errb   *lockedBuf
	stdinW io.Closer
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startStream(t *testing.T, ctx context.Context, host string, sc streamCut, c, node string) *runningStream {
	t.Helper()
	cmd := exec.CommandContext(ctx, cli28, sc.args(c, node)...)
	env := []string{"DOCKER_HOST=" + host, "DOCKER_CONFIG=" + dockerConfigDir(), "DOCKER_CLI_HINTS=false"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, sc.env...)
	rs := &runningStream{cmd: cmd, out: &lockedBuf{}, errb: &lockedBuf{}}
	cmd.Stdout, cmd.Stderr = rs.out, rs.errb
	cmd.WaitDelay = 2 * time.Second
	if sc.stdin != "" {
		cmd.Stdin = strings.NewReader(sc.stdin)
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin = r
		rs.stdinW = w
		t.Cleanup(func() { r.Close(); w.Close() })
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return rs
}

// wait returns how the command ended, or code -1 if it still ran after d.
func (rs *runningStream) wait(d time.Duration) cutResult {
	done := make(chan error, 1)
	go func() { done <- rs.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(d):
		rs.cmd.Process.Kill()
		<-done
		return cutResult{code: -1, stderr: rs.errb.String(), stdout: tail(rs.out.String(), 300)}
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	return cutResult{code: code, stderr: rs.errb.String(), stdout: tail(rs.out.String(), 300)}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// cutStreams starts every stream of streamCuts against host on its own
// container (on node, when host is shoal), waits until each has printed,
// kills engine i of tb and returns how each command ended.
func cutStreams(t *testing.T, ctx context.Context, tb *testbed.Bed, i int, host, node string) map[string]cutResult {
	t.Helper()
	running := map[string]*runningStream{}
	for _, sc := range streamCuts {
		c := uniq("cut" + sc.name)
		args := []string{"run", "-d", "--name", c}
		if node != "" {
			args = append(args, "-e", "constraint:node=="+node)
		}
		dkOn(t, host, append(args, "busybox", "sh", "-c", "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done")...)
		running[sc.name] = startStream(t, ctx, host, sc, c, node)
	}
	for _, sc := range streamCuts {
		rs := running[sc.name]
		if err := waitFor(ctx, 60*time.Second, func() error {
			if !strings.Contains(rs.out.String(), sc.ready) {
				return fmt.Errorf("no %q in %q; stderr %q", sc.ready, tail(rs.out.String(), 300), rs.errb.String())
			}
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
	}
	if err := tb.Kill(i); err != nil {
		t.Fatal(err)
	}
	res := map[string]cutResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, sc := range streamCuts {
		rs, wait := running[sc.name], 30*time.Second
		if sc.goesOn {
			wait = 5 * time.Second // the CLI redraws every second or two
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rs.wait(wait)
			mu.Lock()
			res[sc.name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

// TestStreamsCutByDeadEngine kills the engine under running streams (logs
// -f, attach, stats, exec, build), first with the CLI talking to the engine
// directly, then through shoal, and wants shoal's client to end as the
// engine's does: with an error, not as after a clean end. The cluster's
// event stream outlives the engine.
func TestStreamsCutByDeadEngine(t *testing.T) {
	tb := testbed.MustStart(t, testbed.Options{Engines: 2, Prefix: bedPrefix})
	ctx := ctxT(t, 5*time.Minute)
	if err := tb.LoadBusyboxAll(ctx); err != nil {
		t.Fatal(err)
	}
	direct := cutStreams(t, ctx, tb, 0, tb.Engines[0].TCPAddr, "")
	if err := tb.Start(ctx, 0); err != nil {
		t.Fatal(err)
	}
	s := startShoalT(t, "nodes://"+tb.Engines[0].TCPAddr+","+tb.Engines[1].TCPAddr)
	if err := s.WaitNodes(ctx, 2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	events := startStream(t, ctx, s.Host, streamCut{args: func(string, string) []string {
		return []string{"events", "--format", "{{.Type}} {{.Action}}"}
	}}, "", "")
	via := cutStreams(t, ctx, tb, 0, s.Host, tb.Engines[0].Hostname)
	for _, sc := range streamCuts {
		d, v := direct[sc.name], via[sc.name]
		t.Logf("%s: engine: exit %d %q; shoal: exit %d %q", sc.name, d.code, d.stderr, v.code, v.stderr)
		if d.code == 0 {
			t.Errorf("%s straight from the engine: exit 0 (stderr %q): the test expects an error", sc.name, d.stderr)
		}
		if sc.exitOnly {
			if v.code <= 0 {
				t.Errorf("%s through shoal: exit %d (stderr %q), engine: exit %d (%q)", sc.name, v.code, v.stderr, d.code, d.stderr)
			}
			continue
		}
		if v.code != d.code {
			t.Errorf("%s through shoal: exit %d (stderr %q stdout %q), engine: exit %d (%q)", sc.name, v.code, v.stderr, v.stdout, d.code, d.stderr)
		}
		if want := errorClass(d.stderr); want != "" && errorClass(v.stderr) != want {
			t.Errorf("%s through shoal: stderr %q, want it to say %q as the engine's does (%q)", sc.name, v.stderr, want, d.stderr)
		}
	}
	// The cluster's events go on without the dead engine.
	seen := len(events.out.String())
	dkOn(t, s.Host, "run", "-d", "--name", uniq("cutev"), "-e", "constraint:node=="+tb.Engines[1].Hostname, "busybox", "true")
	if err := waitFor(ctx, 20*time.Second, func() error {
		if after := events.out.String()[seen:]; !strings.Contains(after, "container start") {
			return fmt.Errorf("events since the kill: %q", after)
		}
		return nil
	}); err != nil {
		t.Errorf("docker events after an engine died: %v (stderr %q)", err, events.errb.String())
	}
	if r := events.wait(time.Second); r.code != -1 {
		t.Errorf("docker events ended when one engine died: exit %d %q", r.code, r.stderr)
	}
	// An aborted answer is not a crash: neither shoal nor net/http (its
	// log is shoal's at debug level) reports a panic.
	if out := s.Output(); strings.Contains(out, "panic") {
		t.Errorf("shoal logged a panic:\n%s", s.LogTail(50))
	}
	// The killed engine stays down: the bed is this test's own, and its
	// Close ends what is left of it.
}

// errorClass is the part of a CLI's error that says how the stream ended.
func errorClass(stderr string) string {
	for _, c := range []string{"unexpected EOF", "connection reset by peer", "EOF"} {
		if strings.Contains(stderr, c) {
			return c
		}
	}
	return ""
}
