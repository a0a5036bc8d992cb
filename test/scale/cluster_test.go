package scale

// The built-in cluster at scale (issue 16, point 6): `shoal init` (the
// binary, as an operator runs it) with simulated engines behind its
// nodes, measured as TestScale1000 measures `shoal manage`: time until
// every node is up with its containers, run -d, info and ps -a p50/p99,
// the manager's RSS, and what one `docker inspect nosuch` costs the
// engines.
//
// The nodes: 1,000 `shoal join` processes would not fit on a 2-core
// machine (each a Go process of its own, ~20 MiB). Each node here is what
// `shoal join --token T --engine tcp://<sim>` runs — cluster.New, Start
// (the join: token, CSR, certificate) and Run (the tunnel agent to the
// managers, the node's self and overlay loops, task files) — but many of
// them run in the test process, each with its own data dir and simulated
// engine. The manager sees exactly what it would of separate processes:
// one TLS tunnel, one certificate and one node record per node.
//
// TestClusterSmall (10 nodes) always runs and checks the outcome only;
// the full size runs with SHOAL_SCALE=1:
//
//	SHOAL_SCALE=1 go test -count=1 -v -timeout 30m -run TestCluster1000 ./test/scale/

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-dev/shoal/internal/cluster"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/test/shoaltest"
)

func TestClusterSmall(t *testing.T) {
	runCluster(t, config{engines: 10, running: 3, stopped: 1, images: 2, runs: 10, samples: 10, idle: time.Second})
}

func TestCluster1000(t *testing.T) {
	if os.Getenv("SHOAL_SCALE") != "1" {
		t.Skip("set SHOAL_SCALE=1 to run 1,000 simulated engines behind built-in cluster nodes")
	}
	runCluster(t, config{
		engines: envInt("SHOAL_SCALE_ENGINES", 1000), running: 24, stopped: 6, images: 10,
		runs: envInt("SHOAL_SCALE_RUNS", 300), samples: envInt("SHOAL_SCALE_SAMPLES", 200), idle: 20 * time.Second,
	})
}

// countingSim is a simulated engine that counts the container lookups it
// is asked for (GET /containers/{ref}/json).
type countingSim struct {
	*enginesim.Engine
	srv      *http.Server
	ln       net.Listener
	inspects *atomic.Int64
}

func startCountingFleet(t *testing.T, cfg config) ([]*countingSim, *atomic.Int64) {
	inspects := &atomic.Int64{}
	fleet, err := enginesim.StartFleet(cfg.engines, func(i int) enginesim.Options {
		return enginesim.Options{
			Name: fmt.Sprintf("node%04d", i), NCPU: 2 << (i % 4), MemTotal: int64(4<<(i%4)) << 30,
			Labels:     []string{"zone=z" + strconv.Itoa(i%3), "disk=" + []string{"ssd", "hdd"}[i%2]},
			Containers: cfg.running, Stopped: cfg.stopped, Images: cfg.images,
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	out := make([]*countingSim, len(fleet.Engines))
	for i, e := range fleet.Engines {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cs := &countingSim{Engine: e, ln: ln, inspects: inspects}
		cs.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := r.URL.Path; strings.HasSuffix(p, "/json") && strings.Contains(p, "/containers/") && !strings.HasSuffix(p, "/containers/json") {
				inspects.Add(1)
			}
			e.ServeHTTP(w, r)
		})}
		go cs.srv.Serve(ln)
		t.Cleanup(func() { cs.srv.Close() })
		out[i] = cs
	}
	return out, inspects
}

func (c *countingSim) addr() string { return c.ln.Addr().String() }

// freeTriple is a port whose next two are free too (the cluster port, then
// the store's client and peer ports).
func freeTriple(t *testing.T) int {
	for range 50 {
		p := shoaltest.FreePort(t)
		ok := true
		for _, q := range []int{p + 1, p + 2} {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no three free ports in a row")
	return 0
}

func runCluster(t *testing.T, cfg config) {
	raiseNoFile(t)
	perNode := cfg.running + cfg.stopped
	sims, inspects := startCountingFleet(t, cfg)
	total := cfg.engines * perNode

	dir := t.TempDir()
	clusterPort := freeTriple(t)
	clusterAddr := "127.0.0.1:" + strconv.Itoa(clusterPort)
	apiPort := shoaltest.FreePort(t)
	for apiPort >= clusterPort && apiPort <= clusterPort+2 {
		apiPort = shoaltest.FreePort(t)
	}
	t0 := time.Now()
	// The manager's own engine is sims[0]; the others join.
	logPath := "" // the test's temporary directory
	if pdir := os.Getenv("SHOAL_SCALE_PROFILE"); pdir != "" {
		logPath = filepath.Join(pdir, "cluster-init.log") // kept with the profiles
	}
	mgr := shoaltest.Start(t, shoaltest.Options{Args: []string{"init", "-H", "tcp://127.0.0.1:" + strconv.Itoa(apiPort), "--data-dir", filepath.Join(dir, "manager"),
		"--engine", "tcp://" + sims[0].addr(), "--advertise-addr", "127.0.0.1", "--listen-addr", clusterAddr,
		"--insecure-no-tlsverify", "--log-level", "info", "--debug"}, Name: "init", LogPath: logPath})
	base := "http://" + mgr.Addr
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	t.Cleanup(hc.CloseIdleConnections)
	var sw swarm.Swarm
	shoaltest.Eventually(t, time.Minute, "the worker join token", func() error {
		resp, err := hc.Get(base + apiPrefix + "/swarm")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&sw); err != nil || sw.JoinTokens.Worker == "" {
			return fmt.Errorf("no token yet (%v)", err)
		}
		return nil
	})

	t.Logf("the manager gave its join token after %v (load average %s)", time.Since(t0).Round(time.Millisecond), loadavg())
	pid := mgr.PID()
	prof := newProfiler(t, false, hc, base)
	t1 := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var nJoined atomic.Int64
	stopProgress := progress(ctx, t, hc, base, pid, &nJoined)
	joined := make(chan error, cfg.engines)
	sem := make(chan struct{}, 8) // joins at once (each a CSR signed and a node record written by the manager)
	for i := 1; i < cfg.engines; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			cl, err := joinNode(ctx, cluster.Config{
				DataDir: filepath.Join(dir, fmt.Sprintf("node%04d", i)), Engine: "tcp://" + sims[i].addr(),
				Hostname: sims[i].Name(), AdvertiseAddr: "127.0.0.1", ListenAddr: "127.0.0.1:0",
				Token: sw.JoinTokens.Worker, JoinAddr: clusterAddr,
			})
			<-sem
			if err == nil {
				nJoined.Add(1)
			}
			joined <- err
			if err != nil {
				return
			}
			defer cl.Close()
			_ = cl.Run(ctx)
		}()
	}
	for i := 1; i < cfg.engines; i++ {
		if err := <-joined; err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	joinTime := time.Since(t1)
	t.Logf("%d nodes joined in %v (load average %s)", cfg.engines-1, joinTime.Round(time.Millisecond), loadavg())
	waitLoaded(t, hc, base, cfg.engines, total, 10*time.Minute)
	load := time.Since(t0)
	stopProgress()
	t.Logf("shoal init shows %d healthy nodes and %d containers after %v (load average %s)", cfg.engines, total, load.Round(time.Millisecond), loadavg())
	rssAtLoad := rss(pid)
	if dir := os.Getenv("SHOAL_SCALE_PROFILE"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "cluster-heap-atload.pprof"), get(t, hc, base+"/debug/pprof/heap"), 0o644)
	}
	// The manager gives back what a join storm's loads left free once no
	// engine arrived and no load ended for a second (internal/run/joinmem.go
	// looks every 500 ms): RSS after loading is read once that has had
	// its time.
	time.Sleep(3 * time.Second)
	rssLoaded := rss(pid)
	anonLoaded, fileLoaded := procStatus(pid, "RssAnon:"), procStatus(pid, "RssFile:")
	if dir := os.Getenv("SHOAL_SCALE_PROFILE"); dir != "" {
		// Which mappings the RSS is in (the binary's pages, the store's
		// file, the heap's arenas).
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid)); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "cluster-smaps-loaded.txt"), b, 0o644)
		}
	}
	metricsLoaded := get(t, hc, base+"/metrics")
	writesLoaded := metric(metricsLoaded, "shoal_store_proposal_duration_seconds_count")
	if dir := os.Getenv("SHOAL_SCALE_PROFILE"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "cluster-metrics-loaded.txt"), metricsLoaded, 0o644)
	}
	prof.heap("cluster-heap-loaded")
	idle := measureClusterIdle(t, hc, base, pid, cfg.idle)

	// A lookup of a container no node has (compose's first call for each
	// service): once the caches are settled, no engine is asked whether it
	// has it; the miss goes to one engine for its own 404.
	time.Sleep(1500 * time.Millisecond) // longer than the manager's settle time (1 s)
	before := inspects.Load()
	miss := measure(5, func() { notFound(t, hc, base+apiPrefix+"/containers/nosuch/json") })
	asked := inspects.Load() - before

	for range 3 {
		runDetached(t, hc, base)
		get(t, hc, base+apiPrefix+"/info")
		get(t, hc, base+apiPrefix+"/containers/json?all=1")
	}
	runs := measure(cfg.runs, func() { runDetached(t, hc, base) })
	infos := measure(cfg.samples, func() { get(t, hc, base+apiPrefix+"/info") })
	var psBody []byte
	psProfiled := make(chan struct{})
	if dir := os.Getenv("SHOAL_SCALE_PROFILE"); dir != "" {
		// The manager's CPU while it answers the ps -a samples.
		go func() {
			defer close(psProfiled)
			cpuProfile(hc, base, filepath.Join(dir, "cluster-cpu-ps.pprof"), 5*time.Second)
		}()
	} else {
		close(psProfiled)
	}
	pss := measure(cfg.samples, func() { psBody = get(t, hc, base+apiPrefix+"/containers/json?all=1") })
	<-psProfiled
	// The same calls from a client process of its own (as docker is): the
	// test process also runs every node and engine, whose garbage its
	// reading of each 23.5 MiB answer shares a heap and GC with.
	curlPss := measureCurl(t, cfg.samples, base+apiPrefix+"/containers/json?all=1")
	rssAfter, peak := rss(pid), hwm(pid)
	prof.heap("cluster-heap-after")

	var ps []container.Summary
	if err := json.Unmarshal(psBody, &ps); err != nil {
		t.Fatalf("ps -a answer: %v", err)
	}
	if want := total + cfg.runs + 3; len(ps) != want {
		t.Errorf("ps -a lists %d containers, want %d", len(ps), want)
	}
	// At 1,000 nodes a miss also asks the engines whose periodic reload
	// began within the last second (their cache may lag): a count that
	// depends on when the reloads fall, reported, not checked.
	if asked > 5 && cfg.engines <= 100 {
		t.Errorf("5 lookups of a container no node has asked the engines %d times, want at most 5 (one 404 each)", asked)
	}

	var r strings.Builder
	fmt.Fprintf(&r, "built-in cluster: nodes %d, containers %d, joined in %v, loaded after %v, ps -a body %.1f MiB, load average %s\n",
		cfg.engines, total, joinTime.Round(time.Millisecond), load.Round(time.Millisecond), float64(len(psBody))/(1<<20), loadavg())
	fmt.Fprintf(&r, "store writes until loaded %d (%.2f per node); idle %v: store writes %.2f/s, manager CPU %.1f%% of a core\n",
		writesLoaded, float64(writesLoaded)/float64(cfg.engines), idle.wall.Round(time.Second), idle.writesPerSec, 100*idle.cpu)
	fmt.Fprintf(&r, "%-14s %6s %9s %9s %9s %9s\n", "call", "n", "p50", "p99", "max", "target p99")
	row := func(name string, d []time.Duration, target time.Duration) {
		p99 := pct(d, 0.99)
		fmt.Fprintf(&r, "%-14s %6d %9s %9s %9s %9s %s\n", name, len(d), ms(pct(d, 0.50)), ms(p99), ms(d[len(d)-1]), ms(target), verdict(p99 <= target))
	}
	row("run -d", runs, targets1000.run)
	row("info", infos, targets1000.info)
	row("ps -a", pss, targets1000.ps)
	if len(curlPss) > 0 {
		row("ps -a (curl)", curlPss, targets1000.ps)
	}
	row("inspect nosuch", miss, targets1000.run)
	fmt.Fprintf(&r, "inspect nosuch: %d engine requests for 5 lookups\n", asked)
	fmt.Fprintf(&r, "shoal RSS after loading %.1f MiB (target %d MiB) %s (%.1f MiB the moment all showed loaded, 3 s before); after the runs %.1f MiB; peak (VmHWM) %.1f MiB\n",
		mib(rssLoaded), targets1000.rss>>20, verdict(rssLoaded <= targets1000.rss), mib(rssAtLoad), mib(rssAfter), mib(peak))
	// Anonymous memory is the process's own (Go's heap, stacks and
	// runtime); file-backed is the binary's pages it has touched.
	fmt.Fprintf(&r, "RSS after loading: anonymous %.1f MiB, file-backed %.1f MiB\n", mib(anonLoaded), mib(fileLoaded))
	t.Log("\n" + r.String())
	for _, l := range strings.Split(mgr.Output(), "\n") {
		if strings.Contains(l, "loaded") {
			t.Log(l)
		}
	}
}

// progress logs, every 15 s until stopped, how many nodes joined, the
// manager's store writes (committed and failed) and its RSS.
func progress(ctx context.Context, t *testing.T, hc *http.Client, base string, pid int, joined *atomic.Int64) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t0 := time.Now()
		tick := time.NewTicker(15 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			m, _ := getBody(hc, base+"/metrics")
			t.Logf("%v: %d joined; store writes %d (failed %d), mean %.0f ms; tunnels %d; RSS %.1f MiB; load %s", time.Since(t0).Round(time.Second), joined.Load(),
				metric(m, "shoal_store_proposal_duration_seconds_count"), metric(m, "shoal_store_proposal_failures_total"),
				1000*metricFloat(m, "shoal_store_proposal_duration_seconds_sum")/max(1, float64(metric(m, "shoal_store_proposal_duration_seconds_count"))),
				metric(m, "shoal_agent_tunnels"), mib(rss(pid)), loadavg())
		}
	}()
	return func() { cancel(); <-done }
}

// metricFloat reads one unlabelled Prometheus sample as a float.
func metricFloat(body []byte, name string) float64 {
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return f
		}
	}
	return 0
}

type clusterIdle struct {
	wall         time.Duration
	writesPerSec float64
	cpu          float64 // of one core
}

// measureClusterIdle watches the loaded manager for d with no client
// calls: its store writes (the nodes' heartbeats and tunnels must not
// write) and its CPU; with SHOAL_SCALE_PROFILE its CPU profile.
func measureClusterIdle(t *testing.T, hc *http.Client, base string, pid int, d time.Duration) clusterIdle {
	w0 := metric(get(t, hc, base+"/metrics"), "shoal_store_proposal_duration_seconds_count")
	c0, t0 := cpuTime(pid), time.Now()
	if dir := os.Getenv("SHOAL_SCALE_PROFILE"); dir != "" {
		cpuProfile(hc, base, filepath.Join(dir, "cluster-cpu-idle.pprof"), d)
	} else {
		time.Sleep(d)
	}
	wall := time.Since(t0)
	w1 := metric(get(t, hc, base+"/metrics"), "shoal_store_proposal_duration_seconds_count")
	return clusterIdle{wall: wall, writesPerSec: float64(w1-w0) / wall.Seconds(), cpu: float64(cpuTime(pid)-c0) / float64(wall)}
}

// joinNode does what `shoal join` does before it runs: the join itself,
// which tries again by itself while the manager cannot admit the node
// for now (its store answers "no quorum" when a write takes over 5 s, on
// a loaded machine with many nodes joining).
func joinNode(ctx context.Context, cfg cluster.Config) (*cluster.Cluster, error) {
	cfg.Logger = slog.New(slog.DiscardHandler)
	cl, err := cluster.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := cl.Start(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

func notFound(t *testing.T, hc *http.Client, url string) {
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET %s: %d %.200s, want 404", url, resp.StatusCode, b)
	}
}

// measureCurl times n GETs of url by curl, a client process of its own
// reading the whole answer (curl's time_total: connect to the last byte).
// Without curl it measures nothing.
func measureCurl(t *testing.T, n int, url string) []time.Duration {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Logf("no curl: ps -a from a client process of its own not measured")
		return nil
	}
	out := make([]time.Duration, 0, n)
	for range n {
		b, err := exec.Command("curl", "-sf", "-o", "/dev/null", "-w", "%{time_total}", url).Output()
		if err != nil {
			t.Fatalf("curl %s: %v", url, err)
		}
		secs, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		if err != nil {
			t.Fatalf("curl time_total %q: %v", b, err)
		}
		out = append(out, time.Duration(secs*float64(time.Second)))
	}
	slices.Sort(out)
	return out
}
