// Package scale measures shoal against a fleet of simulated engines
// (internal/enginesim): time to load the fleet, latency of run -d, info and
// ps -a with sequential calls, and the manager's memory.
//
// TestScaleSmall (20 engines × 10 containers) always runs. The full size
// (1,000 engines × 30 containers) runs only with SHOAL_SCALE=1:
//
//	SHOAL_SCALE=1 go test -count=1 -v -timeout 30m -run TestScale1000 ./test/scale/
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

	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/test/shoaltest"
)

// apiPrefix is the version the measuring client speaks (docker CLI 29).
const apiPrefix = "/v1.52"

// Targets from DESIGN.md, at 1,000 engines / 30,000 containers.
var targets = struct {
	run, info, ps time.Duration
	rss           int64
}{50 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond, 124 << 20}

type config struct {
	engines, running, stopped, images int
	runs, samples                     int // run -d count; info and ps -a count
	inproc                            bool
}

func TestScaleSmall(t *testing.T) {
	runScale(t, config{engines: 20, running: 7, stopped: 3, images: 3, runs: 20, samples: 20, inproc: inproc()})
}

func TestScale1000(t *testing.T) {
	if os.Getenv("SHOAL_SCALE") != "1" {
		t.Skip("set SHOAL_SCALE=1 to run 1,000 simulated engines")
	}
	runScale(t, config{
		engines: envInt("SHOAL_SCALE_ENGINES", 1000), running: 24, stopped: 6, images: 10,
		runs: envInt("SHOAL_SCALE_RUNS", 300), samples: envInt("SHOAL_SCALE_SAMPLES", 200), inproc: inproc(),
	})
}

func inproc() bool { return os.Getenv("SHOAL_SCALE_INPROC") == "1" }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func runScale(t *testing.T, cfg config) {
	raiseNoFile(t)
	total := cfg.engines * (cfg.running + cfg.stopped)
	t0 := time.Now()
	fleet, err := enginesim.StartFleet(cfg.engines, func(i int) enginesim.Options {
		return enginesim.Options{
			NCPU: 2 << (i % 4), MemTotal: int64(4<<(i%4)) << 30,
			Labels:     []string{"zone=z" + strconv.Itoa(i%3), "disk=" + []string{"ssd", "hdd"}[i%2]},
			Containers: cfg.running, Stopped: cfg.stopped, Images: cfg.images,
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	t.Logf("%d simulated engines with %d containers started in %v", cfg.engines, total, time.Since(t0).Round(time.Millisecond))

	list := filepath.Join(t.TempDir(), "engines")
	if err := os.WriteFile(list, []byte(strings.Join(fleet.Addrs(), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	base, pid := startShoal(t, "file://"+list, cfg.inproc)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	t.Cleanup(hc.CloseIdleConnections)
	waitLoaded(t, hc, base, cfg.engines, total, 10*time.Minute)
	load := time.Since(t1)
	t.Logf("shoal shows %d healthy nodes and %d containers after %v", cfg.engines, total, load.Round(time.Millisecond))
	if n := fleet.Listeners(); n != cfg.engines {
		t.Errorf("%d event streams open on the fleet, want %d", n, cfg.engines)
	}
	rssLoaded := rss(pid)
	prof := newProfiler(t, cfg.inproc, hc, base)
	prof.heap("heap-loaded")

	// Warm-up, then the measured runs, each kind in its own sequential loop.
	for range 3 {
		runDetached(t, hc, base)
		get(t, hc, base+apiPrefix+"/info")
		get(t, hc, base+apiPrefix+"/containers/json?all=1")
	}
	stop := prof.cpu("cpu-run")
	runs := measure(cfg.runs, func() { runDetached(t, hc, base) })
	stop()
	stop = prof.cpu("cpu-info")
	infos := measure(cfg.samples, func() { get(t, hc, base+apiPrefix+"/info") })
	stop()
	var psBody []byte
	stop = prof.cpu("cpu-ps")
	pss := measure(cfg.samples, func() { psBody = get(t, hc, base+apiPrefix+"/containers/json?all=1") })
	stop()
	prof.heap("heap-after")
	rssAfter, hwm := rss(pid), hwm(pid)

	var ps []container.Summary
	if err := json.Unmarshal(psBody, &ps); err != nil {
		t.Fatalf("ps -a answer: %v", err)
	}
	if want := total + cfg.runs + 3; len(ps) != want {
		t.Errorf("ps -a lists %d containers, want %d", len(ps), want)
	}
	if all, _ := fleet.Count(); all != total+cfg.runs+3 {
		t.Errorf("the fleet holds %d containers, want %d", all, total+cfg.runs+3)
	}

	var r strings.Builder
	fmt.Fprintf(&r, "engines %d, containers %d, shoal in-process %v, load %v, ps -a body %.1f MiB\n",
		cfg.engines, total, cfg.inproc, load.Round(time.Millisecond), float64(len(psBody))/(1<<20))
	fmt.Fprintf(&r, "%-8s %6s %9s %9s %9s %9s\n", "call", "n", "p50", "p99", "max", "target p99")
	row := func(name string, d []time.Duration, target time.Duration) {
		p99 := pct(d, 0.99)
		fmt.Fprintf(&r, "%-8s %6d %9s %9s %9s %9s %s\n", name, len(d), ms(pct(d, 0.50)), ms(p99), ms(d[len(d)-1]), ms(target), verdict(p99 <= target))
	}
	row("run -d", runs, targets.run)
	row("info", infos, targets.info)
	row("ps -a", pss, targets.ps)
	if pid > 0 {
		fmt.Fprintf(&r, "shoal RSS after loading %.1f MiB (target %d MiB) %s; after the runs %.1f MiB; peak (VmHWM) %.1f MiB\n",
			mib(rssLoaded), targets.rss>>20, verdict(rssLoaded <= targets.rss), mib(rssAfter), mib(hwm))
	}
	t.Log("\n" + r.String())
	if out := os.Getenv("SHOAL_SCALE_REPORT"); out != "" {
		_ = os.WriteFile(out, []byte(r.String()), 0o644)
	}
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
	args := []string{"manage", "--log-level", "warn"}
	if os.Getenv("SHOAL_SCALE_PROFILE") != "" {
		args = append(args, "--debug")
	}
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
		p.t.Logf("%s: shoal %s", name, first)
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
