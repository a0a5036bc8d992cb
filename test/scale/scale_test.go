// Package scale measures shoal against a fleet of simulated engines
// (internal/enginesim): time to load the fleet, latency of run -d, info,
// ps and ps -a with sequential calls, and the manager's memory, idle CPU,
// open descriptors and goroutines.
//
// TestScaleSmall (20 engines × 10 containers) and TestScaleFleetSmall (the
// same over two fleet processes) always run. The full sizes run only with
// SHOAL_SCALE=1:
//
//	SHOAL_SCALE=1 go test -count=1 -v -timeout 30m -run '^TestScale1000$' ./test/scale/
//	SHOAL_SCALE=1 go test -count=1 -v -timeout 30m -run '^TestScale10000$' ./test/scale/
//
// SHOAL_SCALE_PER_FLEET=n runs the fleet in child processes of n engines
// each (TestScale10000: 2,000 by default; one process may hold only 20,000
// open files here). SHOAL_SCALE_IDLE is how long shoal's idle CPU is
// measured once loaded (default 30s). scripts/bench-scale.sh runs both sizes.
//
// SHOAL_SCALE_INPROC=1 runs shoal inside the test process instead of as a
// binary, so `go test -cpuprofile/-memprofile` profiles it (the simulated
// engines' own functions are in package enginesim and easy to tell apart).
package scale

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// apiPrefix is the version the measuring client speaks (docker CLI 29).
const apiPrefix = "/v1.52"

// Targets from DESIGN.md at 1,000 engines / 30,000 containers, and from
// issue 16 at 10,000 engines / 300,000 containers.
type targetSet struct {
	run, info, ps time.Duration
	rss           int64
	idleCPU       float64 // share of one core
	fdsPerEngine  float64
}

var (
	targets1000  = targetSet{run: 50 * time.Millisecond, info: 20 * time.Millisecond, ps: 100 * time.Millisecond, rss: 124 << 20, idleCPU: 0.25, fdsPerEngine: 2}
	targets10000 = targetSet{run: 50 * time.Millisecond, info: 50 * time.Millisecond, rss: 1200 << 20, idleCPU: 0.25, fdsPerEngine: 2}
)

type config struct {
	engines, running, stopped, images int
	runs, samples, psSamples          int           // run -d count; info and ps count; ps -a count
	perFleet                          int           // engines per fleet process (0: in the test process)
	settle, idle                      time.Duration // idle CPU etc. are measured for idle after settle
	inproc                            bool
	targets                           targetSet
}

func TestScaleSmall(t *testing.T) {
	runScale(t, config{engines: 20, running: 7, stopped: 3, images: 3, runs: 20, samples: 20, psSamples: 20,
		settle: 1600 * time.Millisecond, idle: 200 * time.Millisecond, inproc: inproc(), targets: targets1000})
}

// TestScaleFleetSmall is the fleet-in-child-processes mode in small: two
// processes of 15 engines, and the fleet's own counts of containers and
// event streams checked from outside.
func TestScaleFleetSmall(t *testing.T) {
	runScale(t, config{engines: 30, running: 4, stopped: 1, images: 2, runs: 10, samples: 10, psSamples: 10,
		perFleet: 15, settle: 1600 * time.Millisecond, idle: 500 * time.Millisecond, targets: targets1000})
}

func TestScale1000(t *testing.T) {
	if os.Getenv("SHOAL_SCALE") != "1" {
		t.Skip("set SHOAL_SCALE=1 to run 1,000 simulated engines")
	}
	runScale(t, config{
		engines: envInt("SHOAL_SCALE_ENGINES", 1000), running: 24, stopped: 6, images: 10,
		runs: envInt("SHOAL_SCALE_RUNS", 300), samples: envInt("SHOAL_SCALE_SAMPLES", 200), psSamples: envInt("SHOAL_SCALE_PS_SAMPLES", 200),
		perFleet: envInt("SHOAL_SCALE_PER_FLEET", 0), settle: 2 * time.Second, idle: envDuration("SHOAL_SCALE_IDLE", 30*time.Second),
		inproc: inproc(), targets: targets1000,
	})
}

// TestScale10000: 10,000 engines / 300,000 containers, the fleet in five
// processes of 2,000 engines.
func TestScale10000(t *testing.T) {
	if os.Getenv("SHOAL_SCALE") != "1" {
		t.Skip("set SHOAL_SCALE=1 to run 10,000 simulated engines")
	}
	runScale(t, config{
		engines: envInt("SHOAL_SCALE_ENGINES", 10000), running: 24, stopped: 6, images: 10,
		runs: envInt("SHOAL_SCALE_RUNS", 300), samples: envInt("SHOAL_SCALE_SAMPLES", 200), psSamples: envInt("SHOAL_SCALE_PS_SAMPLES", 20),
		perFleet: envInt("SHOAL_SCALE_PER_FLEET", 2000), settle: 2 * time.Second, idle: envDuration("SHOAL_SCALE_IDLE", 30*time.Second),
		inproc: inproc(), targets: targets10000,
	})
}

func inproc() bool { return os.Getenv("SHOAL_SCALE_INPROC") == "1" }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func runScale(t *testing.T, cfg config) {
	raiseNoFile(t)
	total := cfg.engines * (cfg.running + cfg.stopped)
	var r strings.Builder
	fmt.Fprintf(&r, "load average at start %s\n", loadavg())
	t0 := time.Now()
	fl := startFleet(t, cfg)
	fmt.Fprintf(&r, "%d simulated engines with %d containers started in %v (%d per fleet process; 0: in the test process)\n",
		cfg.engines, total, since(t0), cfg.perFleet)

	list := filepath.Join(t.TempDir(), "engines")
	if err := os.WriteFile(list, []byte(strings.Join(fl.Addrs(), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !cfg.inproc {
		shoaltest.Binary(t) // built before the clock starts
	}
	t1 := time.Now()
	base, pid := startShoal(t, "file://"+list, cfg.inproc)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	t.Cleanup(hc.CloseIdleConnections)
	waitLoaded(t, hc, base, cfg.engines, total, 10*time.Minute)
	load := time.Since(t1)
	fmt.Fprintf(&r, "shoal shows %d healthy nodes and %d containers after %v\n", cfg.engines, total, load.Round(time.Millisecond))
	if all, streams := fl.Count(); streams != cfg.engines || all != total {
		t.Errorf("the fleet holds %d containers and %d open event streams, want %d and %d", all, streams, total, cfg.engines)
	}
	rssLoaded := rss(pid)
	idle := measureIdle(t, hc, base, pid, fl, cfg)
	prof := newProfiler(t, cfg.inproc, hc, base)
	prof.heap("heap-loaded")

	// Warm-up, then the measured runs, each kind in its own sequential loop.
	for range 3 {
		runDetached(t, hc, base)
		get(t, hc, base+apiPrefix+"/info")
		get(t, hc, base+apiPrefix+"/containers/json")
	}
	stop := prof.cpu("cpu-run")
	runs := measure(cfg.runs, func() { runDetached(t, hc, base) })
	stop()
	stop = prof.cpu("cpu-info")
	infos := measure(cfg.samples, func() { get(t, hc, base+apiPrefix+"/info") })
	stop()
	stop = prof.cpu("cpu-ps-running")
	var psRunning []byte
	pssRunning := measure(cfg.psSamples, func() { psRunning = get(t, hc, base+apiPrefix+"/containers/json") })
	stop()
	var psBody []byte
	get(t, hc, base+apiPrefix+"/containers/json?all=1")
	stop = prof.cpu("cpu-ps")
	pss := measure(cfg.psSamples, func() { psBody = get(t, hc, base+apiPrefix+"/containers/json?all=1") })
	stop()
	// The same ps -a from a client process of its own (curl, as the
	// docker CLI is one), when shoal runs in its own: the test process
	// reads each answer whole into its heap, shared with the fleet's
	// processes' two cores, and its own collections join shoal's time.
	var curlPss []time.Duration
	if pid > 0 {
		curlPss = measureCurl(t, cfg.psSamples, base+apiPrefix+"/containers/json?all=1")
	}
	prof.heap("heap-after")
	rssAfter, hwm := rss(pid), hwm(pid)

	checkLists(t, psRunning, psBody, cfg.engines*cfg.running+cfg.runs+3, total+cfg.runs+3)
	if all, _ := fl.Count(); all != total+cfg.runs+3 {
		t.Errorf("the fleet holds %d containers, want %d", all, total+cfg.runs+3)
	}

	tg := cfg.targets
	fmt.Fprintf(&r, "engines %d, containers %d, shoal in-process %v, load %v, ps -a body %.1f MiB, ps body %.1f MiB\n",
		cfg.engines, total, cfg.inproc, load.Round(time.Millisecond), float64(len(psBody))/(1<<20), float64(len(psRunning))/(1<<20))
	fmt.Fprintf(&r, "%-12s %6s %9s %9s %9s %9s\n", "call", "n", "p50", "p99", "max", "target p99")
	row := func(name string, d []time.Duration, target time.Duration) {
		p99 := pct(d, 0.99)
		fmt.Fprintf(&r, "%-12s %6d %9s %9s %9s", name, len(d), ms(pct(d, 0.50)), ms(p99), ms(d[len(d)-1]))
		if target > 0 {
			fmt.Fprintf(&r, " %9s %s", ms(target), verdict(p99 <= target))
		}
		fmt.Fprintln(&r)
	}
	row("run -d", runs, tg.run)
	row("info", infos, tg.info)
	row("ps", pssRunning, 0)
	row("ps -a", pss, tg.ps)
	if len(curlPss) > 0 {
		row("ps -a (curl)", curlPss, tg.ps)
	}
	if pid > 0 {
		fmt.Fprintf(&r, "shoal RSS after loading %.1f MiB (target %d MiB) %s; after the runs %.1f MiB; peak (VmHWM) %.1f MiB\n",
			mib(rssLoaded), tg.rss>>20, verdict(rssLoaded <= tg.rss), mib(rssAfter), mib(hwm))
		fmt.Fprintf(&r, "shoal idle over %v: CPU %.1f%% of one core (target %.0f%%) %s; fleet processes %.1f%%\n",
			cfg.idle, 100*idle.cpu, 100*tg.idleCPU, verdict(idle.cpu <= tg.idleCPU), 100*idle.fleetCPU)
		perEngine := float64(idle.fds) / float64(cfg.engines)
		// An event stream and at most one idle connection per engine, and
		// shoal's own few (listeners, logs, its store).
		fdTarget := int(tg.fdsPerEngine)*cfg.engines + ownFDs
		fmt.Fprintf(&r, "shoal open descriptors %d (%.2f per engine; target at most %d: %.0f per engine + %d) %s, max seen while idle %d; goroutines %d (%.2f per engine)\n",
			idle.fds, perEngine, fdTarget, tg.fdsPerEngine, ownFDs, verdict(max(idle.maxFDs, idle.fds) <= fdTarget), idle.maxFDs,
			idle.goroutines, float64(idle.goroutines)/float64(cfg.engines))
	}
	fmt.Fprintf(&r, "load average at the end %s\n", loadavg())
	t.Log("\n" + r.String())
	if out := os.Getenv("SHOAL_SCALE_REPORT"); out != "" {
		_ = os.WriteFile(out, []byte(r.String()), 0o644)
	}
}

// ownFDs is what shoal holds open besides its engines' connections.
const ownFDs = 64

// checkLists checks ps (running only) and ps -a list as many as the fleet holds.
func checkLists(t *testing.T, running, all []byte, wantRunning, wantAll int) {
	for _, l := range []struct {
		name string
		body []byte
		want int
	}{{"ps", running, wantRunning}, {"ps -a", all, wantAll}} {
		var ps []container.Summary
		if err := json.Unmarshal(l.body, &ps); err != nil {
			t.Fatalf("%s answer: %v", l.name, err)
		}
		if len(ps) != l.want {
			t.Errorf("%s lists %d containers, want %d", l.name, len(ps), l.want)
		}
	}
}

// idleFigures are shoal's costs while nobody calls it.
type idleFigures struct {
	cpu, fleetCPU float64 // shares of one core
	fds, maxFDs   int
	goroutines    int
}

// measureIdle watches shoal for cfg.idle once loaded: its CPU time from
// /proc/<pid>/stat, its open descriptors (sampled every 100 ms: pings open
// and close connections) and its goroutines.
func measureIdle(t *testing.T, hc *http.Client, base string, pid int, fl fleet, cfg config) idleFigures {
	var f idleFigures
	if pid <= 0 {
		return f
	}
	hc.CloseIdleConnections() // the waiting's own connection is not shoal's
	// The loads' connections idle out first (client.go IdleConnTimeout).
	time.Sleep(cfg.settle)
	c0, fc0, t0 := cpuTime(pid), fl.CPU(), time.Now()
	if dir := os.Getenv("SHOAL_SCALE_PROFILE"); dir != "" {
		// shoal's own CPU profile of the idle period (-D).
		b := get(t, hc, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, int(cfg.idle.Seconds())))
		_ = os.WriteFile(filepath.Join(dir, "cpu-idle.pprof"), b, 0o644)
	}
	for time.Since(t0) < cfg.idle {
		f.maxFDs = max(f.maxFDs, openFDs(pid))
		time.Sleep(100 * time.Millisecond)
	}
	wall := time.Since(t0)
	f.cpu = float64(cpuTime(pid)-c0) / float64(wall)
	f.fleetCPU = float64(fl.CPU()-fc0) / float64(wall)
	f.fds = openFDs(pid)
	f.goroutines = goroutines(t, hc, base)
	return f
}

// goroutines reads the total from shoal's goroutine profile (-D).
func goroutines(t *testing.T, hc *http.Client, base string) int {
	g := get(t, hc, base+"/debug/pprof/goroutine?debug=1")
	first, _, _ := strings.Cut(string(g), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(first, "goroutine profile: total "))
	if err != nil {
		t.Fatalf("goroutine profile starts %q", first)
	}
	return n
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// measure calls f n times and returns the sorted durations.
func measure(n int, f func()) []time.Duration {
	d := make([]time.Duration, n)
	start := time.Now()
	var slow []string
	for i := range d {
		t := time.Now()
		f()
		d[i] = time.Since(t)
		slow = append(slow, fmt.Sprintf("%.2fs:%s", t.Sub(start).Seconds(), ms(d[i])))
	}
	if os.Getenv("SHOAL_SCALE_TRACE") != "" {
		fmt.Fprintln(os.Stderr, strings.Join(slow, " "))
	}
	slices.Sort(d)
	return d
}

// pct is the nearest-rank percentile of sorted durations.
func pct(d []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(d)))) - 1
	return d[max(i, 0)]
}

// runDetached is what `docker run -d busybox sleep 3600` sends once the
// image is there; it returns the container's ID.
func runDetached(t *testing.T, hc *http.Client, base string) string {
	body, _ := json.Marshal(container.CreateRequest{
		Config:     &container.Config{Image: "busybox", Cmd: []string{"sleep", "3600"}, AttachStdout: false, Labels: map[string]string{}},
		HostConfig: &container.HostConfig{NetworkMode: "bridge", RestartPolicy: container.RestartPolicy{Name: "no"}, LogConfig: container.LogConfig{Config: map[string]string{}}},
	})
	resp, err := hc.Post(base+apiPrefix+"/containers/create", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var cr container.CreateResponse
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &cr) != nil || cr.ID == "" {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	resp, err = hc.Post(base+apiPrefix+"/containers/"+cr.ID+"/start", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("start: %d %s", resp.StatusCode, b)
	}
	return cr.ID
}

func get(t *testing.T, hc *http.Client, url string) []byte {
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %.200s", url, resp.StatusCode, err, b)
	}
	return b
}

// waitLoaded polls /info until every node is healthy and every container is cached.
func waitLoaded(t *testing.T, hc *http.Client, base string, nodes, containers int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	var healthy, cached int
	for time.Now().Before(deadline) {
		resp, err := hc.Get(base + apiPrefix + "/info")
		if err == nil {
			var info system.Info
			err = json.NewDecoder(resp.Body).Decode(&info)
			resp.Body.Close()
			if err == nil {
				healthy, cached = 0, info.Containers
				for _, kv := range info.DriverStatus {
					if strings.TrimSpace(kv[0]) == "└ Status" && kv[1] == "Healthy" {
						healthy++
					}
				}
				if healthy == nodes && cached == containers {
					return
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("after %v shoal shows %d/%d healthy nodes and %d/%d containers", limit, healthy, nodes, cached, containers)
}

// startShoal runs `shoal manage` on a free port and returns its base URL
// and pid (0 when in-process).
func startShoal(t *testing.T, discovery string, inproc bool) (string, int) {
	// -D serves the goroutine profile the run counts goroutines from.
	args := []string{"manage", "--log-level", "warn", "--debug"}
	s := shoaltest.Start(t, shoaltest.Options{Args: append(args, discovery), InProcess: inproc})
	return "http://" + s.Addr, s.PID()
}

// raiseNoFile lifts the soft open-files limit to the hard one: the fleet
// holds a listener and about two connections per engine, and shoal (which
// inherits the limit) as many again.
func raiseNoFile(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("open files limit %d", lim.Cur)
}

// profiler writes CPU profiles of each measured phase and heap profiles to
// $SHOAL_SCALE_PROFILE (a directory) when shoal runs in-process.
// With shoal as a binary it fetches heap and goroutine profiles from
// shoal's /debug/pprof (started with --debug) instead.
type profiler struct {
	t      *testing.T
	dir    string
	inproc bool
	hc     *http.Client
	base   string
}

func newProfiler(t *testing.T, inproc bool, hc *http.Client, base string) profiler {
	dir := os.Getenv("SHOAL_SCALE_PROFILE")
	if dir == "" {
		return profiler{t: t}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return profiler{t: t, dir: dir, inproc: inproc, hc: hc, base: base}
}

func (p profiler) heap(name string) {
	if p.dir == "" {
		return
	}
	if !p.inproc {
		b := get(p.t, p.hc, p.base+"/debug/pprof/heap?gc=1")
		_ = os.WriteFile(filepath.Join(p.dir, name+".pprof"), b, 0o644)
		g := get(p.t, p.hc, p.base+"/debug/pprof/goroutine?debug=1")
		_ = os.WriteFile(filepath.Join(p.dir, name+"-goroutines.txt"), g, 0o644)
		first, _, _ := strings.Cut(string(g), "\n")
		// The text form ends with the runtime's MemStats: where RSS goes
		// besides the heap (goroutine stacks, the runtime's own).
		var stats []string
		for _, l := range strings.Split(string(get(p.t, p.hc, p.base+"/debug/pprof/heap?debug=1")), "\n") {
			for _, k := range []string{"# HeapInuse = ", "# HeapIdle = ", "# HeapReleased = ", "# Stack = ", "# Sys = ", "# NextGC = "} {
				if strings.HasPrefix(l, k) {
					stats = append(stats, strings.TrimPrefix(l, "# "))
				}
			}
		}
		p.t.Logf("%s: shoal %s; %s", name, first, strings.Join(stats, ", "))
		return
	}
	runtime.GC()
	f, err := os.Create(filepath.Join(p.dir, name+".pprof"))
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	_ = pprof.WriteHeapProfile(f)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.t.Logf("%s: heap in use %.1f MiB, stacks %.1f MiB, goroutines %d, Sys %.1f MiB", name,
		mib(int64(ms.HeapInuse)), mib(int64(ms.StackInuse)), runtime.NumGoroutine(), mib(int64(ms.Sys)))
}

func (p profiler) cpu(name string) (stop func()) {
	if p.dir == "" || !p.inproc {
		return func() {}
	}
	f, err := os.Create(filepath.Join(p.dir, name+".pprof"))
	if err != nil {
		p.t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		p.t.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// rss and hwm read VmRSS and VmHWM of a process in bytes (0 if unknown).
func rss(pid int) int64 { return procStatus(pid, "VmRSS:") }
func hwm(pid int) int64 { return procStatus(pid, "VmHWM:") }

func procStatus(pid int, key string) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == key {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
