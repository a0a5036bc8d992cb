package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a dockerd started by this process (so we can reap it).
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start (re)starts engine i's dockerd with the same data root and waits for
// it to answer /_ping on its unix socket. It is a no-op if it is running.
func (b *Bed) Start(ctx context.Context, i int) error {
	e := b.Engines[i]
	if e.PID > 0 && pidAlive(e.PID) {
		return nil
	}
	if !netnsExists(e.Netns) {
		return fmt.Errorf("testbed: engine %d: namespace %s is gone", i, e.Netns)
	}
	os.Remove(e.Socket)
	// A containerd killed together with its dockerd may linger as a zombie
	// (its new parent reaps lazily); dockerd would take the stale pid file
	// for a running containerd and time out waiting for its socket.
	if containerdPID(e) == 0 {
		os.Remove(filepath.Join(e.ExecRoot, "containerd", "containerd.pid"))
	}
	logf, err := os.OpenFile(e.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== testbed: starting %s in netns %s as %s at %s\n", strings.Join(e.Args, " "), e.Netns, e.Hostname, time.Now().Format(time.RFC3339Nano))
	// nsenter and unshare (without --fork) exec, and so does sh: the PID we
	// start is dockerd's. Not `ip netns exec`: it remounts /sys and hides
	// the cgroup mounts dockerd needs.
	argv := append([]string{"--net=/run/netns/" + e.Netns, "--", "unshare", "--uts", "--",
		"sh", "-c", `hostname "$0" && exec "$@"`, e.Hostname}, e.Args...)
	cmd := exec.Command("nsenter", argv...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = e.Dir
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testbed: engine %d: %w", i, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	e.proc = p
	e.PID = cmd.Process.Pid
	timeout := b.opts.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	if err := waitPing(ctx, e, p, timeout); err != nil {
		b.stopPID(e, 5*time.Second)
		return fmt.Errorf("testbed: engine %d (%s): %w\n--- tail of %s ---\n%s", i, e.Hostname, err, e.LogPath, Tail(e.LogPath, 30))
	}
	b.log("testbed %s: engine %d %s (%s) pid %d up in %s", b.ID, i, e.Hostname, e.IP, e.PID, time.Since(t0).Round(time.Millisecond))
	return nil
}

func waitPing(ctx context.Context, e *Engine, p *proc, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := unixClient(e.Socket)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://docker/_ping", nil)
		resp, err := c.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(body) == "OK" {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("dockerd exited: %v", p.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("no answer to /_ping on %s after %s: %v", e.Socket, timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}}
}

// Stop sends SIGTERM to engine i's dockerd, waits (up to 20 s, dockerd stops
// its containers first) and then SIGKILLs it and its containerd.
func (b *Bed) Stop(i int) error {
	return b.stopPID(b.Engines[i], 20*time.Second)
}

// Kill SIGKILLs engine i's dockerd and its containerd (a crash). Container
// shims and containers keep running, as after a dockerd crash.
func (b *Bed) Kill(i int) error {
	e := b.Engines[i]
	var pids []int
	if isOurDockerd(e) {
		pids = append(pids, e.PID)
	}
	if cp := containerdPID(e); cp > 0 {
		pids = append(pids, cp)
	}
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	for _, p := range pids {
		waitGone(p, e.proc, 5*time.Second)
	}
	return nil
}

// Pause stops engine i's dockerd with SIGSTOP: a hung engine, whose kernel
// still accepts connections while nothing answers. Resume it with Resume.
func (b *Bed) Pause(i int) error {
	return b.signal(i, syscall.SIGSTOP)
}

// Resume continues engine i's dockerd after Pause (SIGCONT).
func (b *Bed) Resume(i int) error {
	return b.signal(i, syscall.SIGCONT)
}

func (b *Bed) signal(i int, sig syscall.Signal) error {
	e := b.Engines[i]
	if !isOurDockerd(e) {
		return fmt.Errorf("testbed: engine %d: dockerd is not running", i)
	}
	return syscall.Kill(e.PID, sig)
}

func (b *Bed) stopPID(e *Engine, timeout time.Duration) error {
	if !isOurDockerd(e) {
		return nil
	}
	cpid := containerdPID(e)
	syscall.Kill(e.PID, syscall.SIGTERM)
	if !waitGone(e.PID, e.proc, timeout) {
		b.log("testbed %s: engine %d pid %d ignored SIGTERM for %s; SIGKILL", b.ID, e.Index, e.PID, timeout)
		syscall.Kill(e.PID, syscall.SIGKILL)
		waitGone(e.PID, e.proc, 5*time.Second)
	}
	if cpid > 0 && pidAlive(cpid) {
		if !waitGone(cpid, nil, 3*time.Second) {
			syscall.Kill(cpid, syscall.SIGKILL)
			waitGone(cpid, nil, 5*time.Second)
		}
	}
	if pidAlive(e.PID) {
		return fmt.Errorf("testbed: engine %d: dockerd pid %d survived SIGKILL", e.Index, e.PID)
	}
	return nil
}

// isOurDockerd reports whether e.PID is still the dockerd we started.
func isOurDockerd(e *Engine) bool {
	if e.PID <= 0 || !pidAlive(e.PID) {
		return false
	}
	cl := cmdline(e.PID)
	return strings.Contains(cl, "dockerd") && strings.Contains(cl, e.ExecRoot)
}

// containerdPID returns the PID of the containerd that engine e's dockerd
// started (from its pid file, verified against the command line), or 0.
func containerdPID(e *Engine) int {
	data, err := os.ReadFile(filepath.Join(e.ExecRoot, "containerd", "containerd.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 || !pidAlive(pid) {
		return 0
	}
	if cl := cmdline(pid); !strings.Contains(cl, "containerd") || !strings.Contains(cl, e.ExecRoot) {
		return 0
	}
	return pid
}

// waitGone waits until pid has exited (or is a zombie).
func waitGone(pid int, p *proc, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if p != nil && p.cmd.Process.Pid == pid {
			select {
			case <-p.done:
				return true
			default:
			}
		} else if !pidAlive(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pidAlive reports whether pid exists and is not a zombie.
func pidAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return false
	}
	return data[i+2] != 'Z' && data[i+2] != 'X'
}

func cmdline(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(string(data), "\x00", " ")
}

func ppid(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func allPIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, d := range ents {
		if n, err := strconv.Atoi(d.Name()); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// netnsInode returns the inode of a named network namespace, or 0.
func netnsInode(name string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+name, &st); err != nil {
		return 0
	}
	return st.Ino
}

func procNetnsInode(pid int) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
		return 0
	}
	return st.Ino
}

// bedProcesses returns every live process that belongs to the Bed: those in
// one of its network namespaces (dockerd, containerd, shims, host-network
// containers, docker-proxy), those whose command line names one of its exec
// roots (shims), and all their descendants (containers).
func (b *Bed) bedProcesses() []int {
	inodes := map[uint64]bool{}
	for _, e := range b.Engines {
		if ino := netnsInode(e.Netns); ino != 0 {
			inodes[ino] = true
		}
	}
	pids := allPIDs()
	self := os.Getpid()
	mine := map[int]bool{}
	for _, p := range pids {
		if p == self || !pidAlive(p) {
			continue
		}
		if inodes[procNetnsInode(p)] {
			mine[p] = true
			continue
		}
		cl := cmdline(p)
		for _, e := range b.Engines {
			if e.ExecRoot != "" && strings.Contains(cl, e.ExecRoot+"/") || (e.PID == p && isOurDockerd(e)) {
				mine[p] = true
				break
			}
		}
	}
	// descendants
	for changed := true; changed; {
		changed = false
		for _, p := range pids {
			if !mine[p] && p != self && mine[ppid(p)] && pidAlive(p) {
				mine[p] = true
				changed = true
			}
		}
	}
	out := make([]int, 0, len(mine))
	for p := range mine {
		out = append(out, p)
	}
	return out
}

// killContainers SIGKILLs the descendants of the Bed's containerd shims.
func (b *Bed) killContainers() {
	pids := allPIDs()
	shims := map[int]bool{}
	for _, p := range pids {
		cl := cmdline(p)
		if !strings.Contains(cl, "containerd-shim") {
			continue
		}
		for _, e := range b.Engines {
			if e.ExecRoot != "" && strings.Contains(cl, e.ExecRoot+"/") {
				shims[p] = true
			}
		}
	}
	if len(shims) == 0 {
		return
	}
	victims := map[int]bool{}
	for changed := true; changed; {
		changed = false
		for _, p := range pids {
			pp := ppid(p)
			if !victims[p] && !shims[p] && (shims[pp] || victims[pp]) {
				victims[p] = true
				changed = true
			}
		}
	}
	for p := range victims {
		syscall.Kill(p, syscall.SIGKILL)
	}
	deadline := time.Now().Add(2 * time.Second)
	for p := range victims {
		for pidAlive(p) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// killBedProcesses SIGKILLs every process of the Bed and waits for them.
func (b *Bed) killBedProcesses() error {
	var left []int
	for round := 0; round < 5; round++ {
		ps := b.bedProcesses()
		if len(ps) == 0 {
			return nil
		}
		for _, p := range ps {
			syscall.Kill(p, syscall.SIGKILL)
		}
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			left = left[:0]
			for _, p := range ps {
				if pidAlive(p) {
					left = append(left, p)
				}
			}
			if len(left) == 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("testbed: processes survived SIGKILL: %v", left)
	}
	return nil
}

// Tail returns the last n lines of the file at path (for logs shown when
// something fails), or the read error's text.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cleanEnv is the environment for dockerd: the host's minus DOCKER_*.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DOCKER_") || strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func joinErrs(errs []error) error { return errors.Join(errs...) }
