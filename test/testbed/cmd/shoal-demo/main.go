// Command shoal-demo starts a local shoal cluster on real dockerd engines
// (each in its own network namespace, see package testbed) and tears it down.
//
//	shoal-demo up   [--shoal ./bin/shoal] [--state /tmp/shoal-demo/state.json] [--no-shoal] [--federation]
//	shoal-demo down [--state /tmp/shoal-demo/state.json]
//	shoal-demo status
//
// `up` prints `export DOCKER_HOST=...` (and commented examples) on stdout,
// so `eval "$(shoal-demo up)"` works. Everything keeps running after `up`
// returns; `down` stops it. Requires root.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/test/testbed"
)

// demoPrefix names every object of the demo's testbed (netns sd??????-1 ...).
const demoPrefix = "sd"

type state struct {
	Dir   string        `json:"dir"`
	Bed   *testbed.Bed  `json:"bed"`
	Shoal *shoalProcess `json:"shoal,omitempty"`
	// Members are the member shoals under Shoal (--federation).
	Members   []*shoalProcess `json:"members,omitempty"`
	DockerEnv string          `json:"docker_host"`
	Started   time.Time       `json:"started"`
}

type shoalProcess struct {
	PID    int      `json:"pid"`
	Binary string   `json:"binary"`
	Args   []string `json:"args"`
	Log    string   `json:"log"`
	Socket string   `json:"socket"`
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(os.Args[2:])
	case "down":
		err = down(os.Args[2:])
	case "status":
		err = status(os.Args[2:])
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "shoal-demo: unknown command %q\n", os.Args[1])
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shoal-demo:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: shoal-demo up|down|status [flags]   (run "shoal-demo up -h" for flags)`)
	os.Exit(2)
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func up(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	shoalBin := fs.String("shoal", "./bin/shoal", "path to the shoal binary")
	statePath := fs.String("state", "/tmp/shoal-demo/state.json", "state file")
	noShoal := fs.Bool("no-shoal", false, "only start the engines")
	listen := fs.String("listen", "tcp://127.0.0.1:2375", "address shoal serves the Docker API on")
	engines := fs.Int("engines", 3, "number of engines")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for shoal's /_ping")
	federation := fs.Bool("federation", false, "two member shoals (siteA over 2 engines, siteB over 1) and the shoal on --listen over them")
	fs.Parse(args)
	if os.Geteuid() != 0 {
		return errors.New("must run as root")
	}
	dir := filepath.Dir(*statePath)
	if old, err := readState(*statePath); err == nil {
		if old.Bed != nil && old.Bed.Alive() {
			return fmt.Errorf("a demo is already up (state %s); run `shoal-demo down` first", *statePath)
		}
		logf("removing leftovers of an earlier demo")
		teardown(old)
	}
	testbed.Reap(demoPrefix)
	var bin string
	if !*noShoal {
		var err error
		if bin, err = filepath.Abs(*shoalBin); err != nil {
			return err
		}
		if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("shoal binary %s not found or not executable (build it: go build -o bin/shoal ./cmd/shoal, or pass --no-shoal)", bin)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	zones := []string{"a", "b", "c"}
	storage := []string{"ssd", "disk"}
	opts := testbed.Options{
		Engines: *engines,
		Prefix:  demoPrefix,
		Dir:     filepath.Join(dir, "bed"),
		Logf:    logf,
	}
	for i := 0; i < *engines; i++ {
		opts.Labels = append(opts.Labels, map[string]string{
			"zone":    zones[i%len(zones)],
			"storage": storage[i%len(storage)],
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	bed, err := testbed.Start(ctx, opts)
	if err != nil {
		return err
	}
	st := &state{Dir: dir, Bed: bed, Started: time.Now().UTC()}
	fail := func(err error) error {
		logf("up failed; tearing down")
		teardown(st)
		return err
	}
	if err := writeState(*statePath, st); err != nil {
		return fail(err)
	}
	if err := bed.LoadBusyboxAll(ctx); err != nil {
		return fail(err)
	}
	logf("engines up, busybox loaded in %s", time.Since(t0).Round(time.Millisecond))
	if *federation && *engines < 2 {
		return errors.New("--federation needs at least 2 engines")
	}
	if !*noShoal {
		var members []string
		if *federation {
			ms, err := startMembers(st, *statePath, bin, *wait)
			if err != nil {
				return fail(err)
			}
			members = ms
		}
		sock := filepath.Join(dir, "shoal.sock")
		os.Remove(sock)
		nodes := members
		if !*federation {
			for _, e := range bed.Engines {
				nodes = append(nodes, strings.TrimPrefix(e.TCPAddr, "tcp://"))
			}
		}
		sp := &shoalProcess{
			Binary: bin,
			Args:   []string{"manage", "-H", *listen, "-H", "unix://" + sock, "--data-dir", filepath.Join(dir, "manage"), "nodes://" + strings.Join(nodes, ",")},
			Log:    filepath.Join(dir, "shoal.log"),
			Socket: sock,
		}
		if err := startShoal(sp); err != nil {
			return fail(err)
		}
		st.Shoal = sp
		st.DockerEnv = *listen
		if err := writeState(*statePath, st); err != nil {
			return fail(err)
		}
		if err := waitPing(*listen, sp, *wait); err != nil {
			return fail(fmt.Errorf("%w\n--- tail of %s ---\n%s", err, sp.Log, testbed.Tail(sp.Log, 20)))
		}
		logf("shoal pid %d answers on %s (log %s)", sp.PID, *listen, sp.Log)
	}
	logf("demo up in %s; state in %s", time.Since(t0).Round(time.Millisecond), *statePath)
	for _, e := range bed.Engines {
		fmt.Printf("# %s  %s  labels %v  (DOCKER_HOST=%s)\n", e.Hostname, e.IP, e.Labels, e.TCPAddr)
	}
	if *noShoal {
		fmt.Printf("export DOCKER_HOST=%s\n", bed.Engines[0].TCPAddr)
	} else if *federation {
		printFederation(st, *listen)
	} else {
		fmt.Printf("export DOCKER_HOST=%s\n", *listen)
		fmt.Println("# docker info")
		fmt.Println("# docker run -d --name web -e constraint:zone==b busybox httpd -f -p 8080")
		fmt.Println("# docker ps -a")
		fmt.Println("# docker service create --name web --replicas 3 --no-resolve-image busybox httpd -f -p 8080")
		fmt.Println("# docker service scale web=6; docker service ps web   (or: scripts/demo-services.sh)")
	}
	fmt.Printf("# tear down: shoal-demo down --state %s\n", *statePath)
	return nil
}

func startShoal(sp *shoalProcess) error {
	logFile, err := os.OpenFile(sp.Log, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(sp.Binary, sp.Args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = filepath.Dir(sp.Log)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	sp.PID = cmd.Process.Pid
	cmd.Process.Release()
	return nil
}

func waitPing(addr string, sp *shoalProcess, timeout time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second}
	url := "http://" + strings.TrimPrefix(addr, "tcp://") + "/_ping"
	if strings.HasPrefix(addr, "unix://") {
		sock := strings.TrimPrefix(addr, "unix://")
		c.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}
		url = "http://shoal/_ping"
	}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if !alive(sp.PID) {
			return fmt.Errorf("shoal (pid %d) exited", sp.PID)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("shoal does not answer %s after %s: %v", url, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func down(args []string) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	statePath := fs.String("state", "/tmp/shoal-demo/state.json", "state file")
	fs.Parse(args)
	st, err := readState(*statePath)
	if errors.Is(err, os.ErrNotExist) {
		logf("no state at %s; removing any leftovers of demo runs", *statePath)
		return testbed.Reap(demoPrefix)
	}
	if err != nil {
		return err
	}
	if err := teardown(st); err != nil {
		return err
	}
	os.Remove(*statePath)
	os.Remove(filepath.Dir(*statePath)) // only if empty
	logf("demo down")
	return nil
}

func status(args []string) error {
	fs := flag.NewFlagSet("status", flag.ExitOnError)
	statePath := fs.String("state", "/tmp/shoal-demo/state.json", "state file")
	fs.Parse(args)
	st, err := readState(*statePath)
	if err != nil {
		return err
	}
	for _, m := range st.Members {
		fmt.Printf("member pid %d alive=%v listen=%s log=%s\n", m.PID, shoalAlive(m), m.Args[2], m.Log)
	}
	if st.Shoal != nil {
		fmt.Printf("shoal pid %d alive=%v listen=%s log=%s\n", st.Shoal.PID, shoalAlive(st.Shoal), st.DockerEnv, st.Shoal.Log)
	}
	for _, e := range st.Bed.Engines {
		fmt.Printf("%s %s pid %d alive=%v %s\n", e.Hostname, e.IP, e.PID, alive(e.PID), e.TCPAddr)
	}
	return nil
}

// teardown stops shoal (if it is still the process we started) and closes
// the testbed, then removes the demo's files.
func teardown(st *state) error {
	var errs []error
	if st.Shoal != nil {
		errs = append(errs, stopShoal(st.Shoal))
	}
	for _, m := range st.Members {
		if err := stopShoal(m); err != nil {
			errs = append(errs, err)
			continue
		}
		os.Remove(m.Log)
		os.RemoveAll(m.dataDir())
	}
	if st.Shoal != nil {
		os.Remove(st.Shoal.Socket)
		if errors.Join(errs...) == nil {
			os.Remove(st.Shoal.Log)
			os.RemoveAll(filepath.Join(st.Dir, "manage")) // its store: services of engines now gone
		}
	}
	if st.Bed != nil {
		st.Bed.SetLogf(logf)
		if err := st.Bed.Close(); err != nil {
			errs = append(errs, err)
		} else {
			os.RemoveAll(st.Bed.Dir)
		}
	}
	return errors.Join(errs...)
}

// stopShoal ends a shoal the demo started (if it is still that process):
// SIGTERM, then SIGKILL after 10 s.
func stopShoal(sp *shoalProcess) error {
	if !shoalAlive(sp) {
		return nil
	}
	syscall.Kill(sp.PID, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for alive(sp.PID) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(sp.PID) {
		syscall.Kill(sp.PID, syscall.SIGKILL)
		time.Sleep(200 * time.Millisecond)
	}
	if alive(sp.PID) {
		return fmt.Errorf("shoal pid %d survived SIGKILL", sp.PID)
	}
	return nil
}

func shoalAlive(sp *shoalProcess) bool {
	if !alive(sp.PID) {
		return false
	}
	cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", sp.PID))
	return strings.Contains(string(cl), "manage") && strings.Contains(string(cl), filepath.Base(sp.Binary))
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func readState(path string) (*state, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st := &state{}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

func writeState(path string, st *state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
