package scale

// A scale run's fleet in child processes: this test binary started again
// with poolFleetEnv set (TestMain) serves a slice of the simulated engines,
// so the fleet neither shares shoal's two cores' worth of heap with the
// test nor runs into the 20,000 open files one process may hold here (each
// engine holds a listener and the connections shoal keeps to it).

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// poolFleetEnv, when set, makes this test binary serve engines
// first..first+n-1 of a scale run: "dir,first,n,running,stopped,images".
const poolFleetEnv = "SHOAL_SCALE_POOL_FLEET"

// simOptions are the i-th simulated engine's options, the same whether the
// fleet runs in the test process or in children.
func simOptions(i, running, stopped, images int) enginesim.Options {
	return enginesim.Options{
		Name: fmt.Sprintf("sim-%05d", i), NCPU: 2 << (i % 4), MemTotal: int64(4<<(i%4)) << 30,
		Labels:     []string{"zone=z" + strconv.Itoa(i%3), "disk=" + []string{"ssd", "hdd"}[i%2]},
		Containers: running, Stopped: stopped, Images: images,
	}
}

// fleet is the simulated engines of a scale run, wherever they run.
type fleet interface {
	Addrs() []string
	// Count sums containers and open event streams over the fleet.
	Count() (containers, streams int)
	// CPU is the fleet processes' CPU time so far (0 in-process).
	CPU() time.Duration
}

// inprocFleet is a fleet in the test process.
type inprocFleet struct{ *enginesim.Fleet }

func (f inprocFleet) Count() (int, int) {
	all, _ := f.Fleet.Count()
	return all, f.Listeners()
}

func (inprocFleet) CPU() time.Duration { return 0 }

// procFleet is a fleet of child processes.
type procFleet struct {
	t     *testing.T
	procs []*fleetProc
	addrs []string
}

type fleetProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func (f *procFleet) Addrs() []string { return f.addrs }

func (f *procFleet) Count() (containers, streams int) {
	for i, p := range f.procs {
		var a, s int
		if _, err := fmt.Fprintln(p.in, "count"); err != nil {
			f.t.Fatalf("fleet process %d: %v", i, err)
		}
		line, err := p.out.ReadString('\n')
		if err == nil {
			_, err = fmt.Sscan(line, &a, &s)
		}
		if err != nil {
			f.t.Fatalf("fleet process %d: count: %v (%q)", i, err, line)
		}
		containers, streams = containers+a, streams+s
	}
	return containers, streams
}

func (f *procFleet) CPU() time.Duration {
	var d time.Duration
	for _, p := range f.procs {
		d += cpuTime(p.cmd.Process.Pid)
	}
	return d
}

// PIDs are the fleet processes' ids.
func (f *procFleet) PIDs() []int {
	out := make([]int, len(f.procs))
	for i, p := range f.procs {
		out[i] = p.cmd.Process.Pid
	}
	return out
}

// startFleet starts the run's engines: in the test process when
// cfg.perFleet is 0, else in processes of cfg.perFleet engines each.
func startFleet(t *testing.T, cfg config) fleet {
	if cfg.perFleet <= 0 {
		f, err := enginesim.StartFleet(cfg.engines, func(i int) enginesim.Options {
			return simOptions(i, cfg.running, cfg.stopped, cfg.images)
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return inprocFleet{f}
	}
	dir := t.TempDir()
	f := &procFleet{t: t}
	var ready []chan error
	for first := 0; first < cfg.engines; first += cfg.perFleet {
		n := min(cfg.perFleet, cfg.engines-first)
		p, ch := startFleetProc(t, poolFleetEnv+"="+fmt.Sprintf("%s,%d,%d,%d,%d,%d", dir, first, n, cfg.running, cfg.stopped, cfg.images))
		f.procs, ready = append(f.procs, p), append(ready, ch)
	}
	for i, ch := range ready {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("fleet process %d: %v", i, err)
			}
		case <-time.After(5 * time.Minute):
			t.Fatalf("fleet process %d not ready after 5 min", i)
		}
	}
	for first := 0; first < cfg.engines; first += cfg.perFleet {
		b, err := os.ReadFile(filepath.Join(dir, fleetFile(first)))
		if err != nil {
			t.Fatal(err)
		}
		f.addrs = append(f.addrs, strings.Fields(string(b))...)
	}
	if len(f.addrs) != cfg.engines {
		t.Fatalf("fleet processes serve %d engines, want %d", len(f.addrs), cfg.engines)
	}
	return f
}

func fleetFile(first int) string { return fmt.Sprintf("fleet%05d", first) }

// startFleetProc starts one fleet process (this test binary with env, a
// NAME=spec assignment, set: TestMain); its channel says when it is ready.
func startFleetProc(t *testing.T, env string) (*fleetProc, chan error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close() // the fleet ends when its stdin does
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	p := &fleetProc{cmd: cmd, in: in, out: bufio.NewReader(out)}
	ch := make(chan error, 1)
	go func() {
		line, err := p.out.ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("fleet said %q", line)
		}
		ch <- err
	}()
	return p, ch
}

// runPoolFleet is a fleet process: it starts its engines, writes their
// addresses to dir/fleetNNNNN, says "ready", then answers "count" on stdin
// with "<containers> <event streams>" until its stdin ends.
func runPoolFleet(spec string) int {
	dir, n, err := parseFleetSpec(poolFleetEnv, spec, "dir,first,n,running,stopped,images", 5)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	first := n[0]
	raiseOwnNoFile()
	fl, err := enginesim.StartFleet(n[1], func(i int) enginesim.Options { return simOptions(first+i, n[2], n[3], n[4]) })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer fl.Close()
	body := strings.Join(fl.Addrs(), "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, fleetFile(first)), []byte(body), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "count" {
			all, _ := fl.Count()
			fmt.Println(all, fl.Listeners())
		}
	}
	return 0
}

// cpuTime is a process's user+system CPU time from /proc/<pid>/stat (0 if unknown).
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14: utime
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15: stime
	const clkTck = 100                       // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

// openFDs counts a process's open descriptors (-1 if unknown).
func openFDs(pid int) int {
	if pid <= 0 {
		return -1
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}
