package scale

// Federation at scale: members (real `shoal manage` processes) over fleets
// of simulated engines, and one top shoal over the members. The fleets run
// in child processes (this test binary started again with fleetEnv set:
// TestMain), a thousand engines or so each, because one process may hold
// only 20,000 open files here and each engine holds a listener and its
// member's connections.
//
// TestFederationSmall (3 members × 4 engines) always runs and checks what
// the top shows and where its run -d lands; it asserts no timing. The
// measured sizes run only when asked:
//
//	SHOAL_FED_MEMBERS=100 SHOAL_FED_ENGINES=100 go test -count=1 -v -timeout 30m -run '^TestFederationScale$' ./test/scale/
//
// (scripts/bench-federation.sh runs it at several sizes.)

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/test/shoaltest"
)

// fleetEnv, when set, makes this test binary a fleet process instead of
// running tests: "dir,first,members,engines,running,stopped,images".
const fleetEnv = "SHOAL_SCALE_FLEET"

func TestMain(m *testing.M) {
	if spec := os.Getenv(fleetEnv); spec != "" {
		os.Exit(runFleet(spec))
	}
	if spec := os.Getenv(poolFleetEnv); spec != "" {
		os.Exit(runPoolFleet(spec))
	}
	os.Exit(m.Run())
}

// fedConfig is one federation under test.
type fedConfig struct {
	members, engines          int // members, engines per member
	running, stopped, images  int // per engine
	perFleet                  int // members' engines per fleet process
	runs, samples, psSamples  int // at the top
	memberRuns, memberSamples int // at one member, for the level below
	memberFlags               []string
}

func (c fedConfig) leaves() int     { return c.members * c.engines }
func (c fedConfig) containers() int { return c.leaves() * (c.running + c.stopped) }

// TestFederationSmall: a top over 3 members of 4 simulated engines sees
// every leaf, adds up every container, and places run -d through a member
// onto a leaf (stacked names member/engine/name).
func TestFederationSmall(t *testing.T) {
	r := runFederation(t, fedConfig{members: 3, engines: 4, running: 4, stopped: 1, images: 3, perFleet: 2,
		runs: 6, samples: 3, psSamples: 3, memberRuns: 2, memberSamples: 2})
	if r.perMember == nil || len(r.perMember) < 2 {
		t.Errorf("6 run -d at the top landed on members %v: want them spread over more than one", r.perMember)
	}
}

func TestFederationScale(t *testing.T) {
	members := envInt("SHOAL_FED_MEMBERS", 0)
	if members == 0 {
		t.Skip("set SHOAL_FED_MEMBERS (and SHOAL_FED_ENGINES, default 100) to measure a federation of simulated engines")
	}
	cfg := fedConfig{
		members: members, engines: envInt("SHOAL_FED_ENGINES", 100), running: 24, stopped: 6, images: 10,
		perFleet: envInt("SHOAL_FED_PER_FLEET", 1000),
		runs:     envInt("SHOAL_FED_RUNS", 100), samples: envInt("SHOAL_FED_SAMPLES", 50),
		psSamples: envInt("SHOAL_FED_PS_SAMPLES", 10), memberRuns: 50, memberSamples: 50,
	}
	if f := os.Getenv("SHOAL_FED_MEMBER_FLAGS"); f != "" {
		cfg.memberFlags = strings.Fields(f)
	}
	runFederation(t, cfg)
}

// fedResult is what runFederation saw, for the small test's checks.
type fedResult struct {
	perMember map[string]int // run -d at the top: containers per member
}

func runFederation(t *testing.T, cfg fedConfig) fedResult {
	raiseNoFile(t)
	var r strings.Builder
	fmt.Fprintf(&r, "federation: %d members × %d engines = %d leaves, %d containers; load average at start %s\n",
		cfg.members, cfg.engines, cfg.leaves(), cfg.containers(), loadavg())

	dir := t.TempDir()
	t0 := time.Now()
	fleets := startFleets(t, dir, cfg)
	fmt.Fprintf(&r, "fleets: %d processes started %d engines in %v\n", len(fleets), cfg.leaves(), since(t0))

	shoaltest.Binary(t) // built before the clock starts
	t1 := time.Now()
	members := startMembers(t, dir, cfg)
	fmt.Fprintf(&r, "members: all %d loaded (%d healthy engines, %d containers each) %v after the first started (in batches of %d, flags %v)\n",
		cfg.members, cfg.engines, cfg.engines*(cfg.running+cfg.stopped), since(t1), envInt("SHOAL_FED_MEMBER_BATCH", 10), cfg.memberFlags)

	list := filepath.Join(dir, "members")
	addrs := make([]string, len(members))
	for i, m := range members {
		addrs[i] = m.Addr
	}
	if err := os.WriteFile(list, []byte(strings.Join(addrs, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t2 := time.Now()
	top := shoaltest.Start(t, shoaltest.Options{Name: "top", Args: []string{"manage", "--log-level", "warn", "--data-dir", "", "--name", "top", "file://" + list}})
	base := "http://" + top.Addr
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	t.Cleanup(hc.CloseIdleConnections)
	waitShoalLoaded(t, hc, base, cfg.leaves(), cfg.containers(), 10*time.Minute)
	fmt.Fprintf(&r, "top: %d healthy leaves and %d containers %v after it started\n", cfg.leaves(), cfg.containers(), since(t2))
	rssTop := rss(top.PID())

	// The top, then one member alone (the level below), each warmed up first.
	fmt.Fprintf(&r, "%-14s %6s %9s %9s %9s  load average\n", "call", "n", "p50", "p99", "max")
	row := func(name string, d []time.Duration) {
		fmt.Fprintf(&r, "%-14s %6d %9s %9s %9s  %s\n", name, len(d), ms(pct(d, 0.50)), ms(pct(d, 0.99)), ms(d[len(d)-1]), loadavg())
	}
	var ids []string
	for range 3 {
		ids = append(ids, runDetached(t, hc, base))
		get(t, hc, base+apiPrefix+"/info")
	}
	row("top run -d", measure(cfg.runs, func() { ids = append(ids, runDetached(t, hc, base)) }))
	row("top info", measure(cfg.samples, func() { get(t, hc, base+apiPrefix+"/info") }))
	get(t, hc, base+apiPrefix+"/containers/json?all=1")
	var psBody []byte
	row("top ps -a", measure(cfg.psSamples, func() { psBody = get(t, hc, base+apiPrefix+"/containers/json?all=1") }))
	res := checkTopList(t, psBody, cfg.containers()+len(ids), ids)

	mbase := "http://" + members[0].Addr
	for range 3 {
		runDetached(t, hc, mbase)
		get(t, hc, mbase+apiPrefix+"/info")
		get(t, hc, mbase+apiPrefix+"/containers/json?all=1")
	}
	row("member run -d", measure(cfg.memberRuns, func() { runDetached(t, hc, mbase) }))
	row("member info", measure(cfg.memberSamples, func() { get(t, hc, mbase+apiPrefix+"/info") }))
	row("member ps -a", measure(cfg.memberSamples, func() { get(t, hc, mbase+apiPrefix+"/containers/json?all=1") }))

	fmt.Fprintf(&r, "ps -a at the top: %.1f MiB\n", float64(len(psBody))/(1<<20))
	fmt.Fprintf(&r, "RSS top: %.1f MiB after loading, %.1f MiB after the calls (peak %.1f MiB)\n", mib(rssTop), mib(rss(top.PID())), mib(hwm(top.PID())))
	var mr []int64
	for _, m := range members {
		mr = append(mr, rss(m.PID()))
	}
	fmt.Fprintf(&r, "RSS members: %s\n", spreadMiB(mr))
	var fr []int64
	for _, f := range fleets {
		fr = append(fr, rss(f.Process.Pid))
	}
	fmt.Fprintf(&r, "RSS fleet processes: %s\n", spreadMiB(fr))
	fmt.Fprintf(&r, "load average at the end %s\n", loadavg())
	t.Log("\n" + r.String())
	if out := os.Getenv("SHOAL_SCALE_REPORT"); out != "" {
		_ = os.WriteFile(out, []byte(r.String()), 0o644)
	}
	return res
}

// checkTopList checks the top's ps -a: every container once, and each run
// from the top under a stacked name /<member>/<engine>/<name>.
func checkTopList(t *testing.T, body []byte, want int, ids []string) fedResult {
	var ps []container.Summary
	if err := json.Unmarshal(body, &ps); err != nil {
		t.Fatalf("ps -a answer: %v", err)
	}
	if len(ps) != want {
		t.Errorf("ps -a at the top lists %d containers, want %d", len(ps), want)
	}
	mine := map[string]bool{}
	for _, id := range ids {
		mine[id] = true
	}
	res := fedResult{perMember: map[string]int{}}
	found := 0
	for _, c := range ps {
		if !mine[c.ID] {
			continue
		}
		found++
		if len(c.Names) != 1 || strings.Count(c.Names[0], "/") != 3 || c.State != container.StateRunning {
			t.Errorf("container %.12s run from the top: names %v state %s, want one /<member>/<engine>/<name>, running", c.ID, c.Names, c.State)
			continue
		}
		res.perMember[strings.Split(c.Names[0], "/")[1]]++
	}
	if found != len(ids) {
		t.Errorf("ps -a at the top lists %d of the %d containers it ran", found, len(ids))
	}
	return res
}

// startFleets starts the simulated engines in child processes of perFleet
// engines each and waits until every one wrote its members' address lists.
func startFleets(t *testing.T, dir string, cfg fedConfig) []*exec.Cmd {
	per := max(cfg.perFleet/cfg.engines, 1) // members per fleet process
	var cmds []*exec.Cmd
	var ready []chan error
	for first := 0; first < cfg.members; first += per {
		n := min(per, cfg.members-first)
		spec := fmt.Sprintf("%s,%d,%d,%d,%d,%d,%d", dir, first, n, cfg.engines, cfg.running, cfg.stopped, cfg.images)
		p, ch := startFleetProc(t, fleetEnv+"="+spec)
		cmds, ready = append(cmds, p.cmd), append(ready, ch)
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
	return cmds
}

// runFleet is a fleet process: it starts the engines of its members,
// writes each member's address list to dir/mNNN, says "ready" and runs
// until its stdin ends.
func runFleet(spec string) int {
	dir, n, err := parseFleetSpec(fleetEnv, spec, "dir,first,members,engines,running,stopped,images", 6)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	first, members, engines := n[0], n[1], n[2]
	raiseOwnNoFile()
	fleet, err := enginesim.StartFleet(members*engines, func(i int) enginesim.Options {
		return enginesim.Options{
			Name: fmt.Sprintf("e%03d", i%engines), NCPU: 2 << (i % 4), MemTotal: int64(4<<(i%4)) << 30,
			Labels:     []string{"zone=z" + strconv.Itoa(i%3), "disk=" + []string{"ssd", "hdd"}[i%2]},
			Containers: n[3], Stopped: n[4], Images: n[5],
		}
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer fleet.Close()
	addrs := fleet.Addrs()
	for m := range members {
		path := filepath.Join(dir, memberName(first+m))
		body := strings.Join(addrs[m*engines:(m+1)*engines], "\n") + "\n"
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

func memberName(i int) string { return fmt.Sprintf("m%03d", i) }

// startMembers starts one `shoal manage` per member over its engines, in
// batches of SHOAL_FED_MEMBER_BATCH (default 10), each batch once the one
// before has loaded: 100 members loading 10,000 engines at once on 2 cores
// time each other out (every engine's first contact waits behind the
// others' and fails), and members are not all started at once in practice.
func startMembers(t *testing.T, dir string, cfg fedConfig) []*shoaltest.Shoal {
	batch := envInt("SHOAL_FED_MEMBER_BATCH", 10)
	members := make([]*shoaltest.Shoal, 0, cfg.members)
	for first := 0; first < cfg.members; first += batch {
		members = append(members, startBatch(t, dir, cfg, first, min(batch, cfg.members-first))...)
	}
	return members
}

func startBatch(t *testing.T, dir string, cfg fedConfig, first, n int) []*shoaltest.Shoal {
	members := make([]*shoaltest.Shoal, n)
	for i := range members {
		name := memberName(first + i)
		args := append([]string{"manage", "--log-level", "warn", "--data-dir", "", "--name", name}, cfg.memberFlags...)
		members[i] = shoaltest.Start(t, shoaltest.Options{Name: name, NoWait: true,
			Args: append(args, "file://"+filepath.Join(dir, name))})
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	per := cfg.engines * (cfg.running + cfg.stopped)
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = shoalLoaded(hc, "http://"+m.Addr, cfg.engines, per, 10*time.Minute)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %s: %v", memberName(first+i), err)
		}
	}
	return members
}

func waitShoalLoaded(t *testing.T, hc *http.Client, base string, leaves, containers int, limit time.Duration) {
	t.Helper()
	if err := shoalLoaded(hc, base, leaves, containers, limit); err != nil {
		t.Fatal(err)
	}
}

// shoalLoaded waits until the shoal at base says leaves healthy leaves at
// /_shoal/nodes and counts containers in /info.
func shoalLoaded(hc *http.Client, base string, leaves, containers int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	healthy, cached := -1, -1
	for time.Now().Before(deadline) {
		var v engine.MemberView
		var info system.Info
		if getInto(hc, base+engine.MemberPath, &v) == nil && getInto(hc, base+apiPrefix+"/info", &info) == nil {
			healthy, cached = 0, info.Containers
			for _, n := range v.Nodes {
				if n.State == "healthy" {
					healthy++
				}
			}
			if healthy == leaves && cached == containers {
				return nil
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("after %v: %d/%d healthy leaves and %d/%d containers", limit, healthy, leaves, cached, containers)
}

func getInto(hc *http.Client, url string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Millisecond) }

// loadavg is the machine's 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// spreadMiB says min, median, max and sum of RSS figures in MiB.
func spreadMiB(v []int64) string {
	if len(v) == 0 {
		return "-"
	}
	s := slices.Clone(v)
	slices.Sort(s)
	var sum int64
	for _, x := range s {
		sum += x
	}
	return fmt.Sprintf("%d processes, min %.1f, median %.1f, max %.1f, sum %.1f MiB", len(s), mib(s[0]), mib(s[len(s)/2]), mib(s[len(s)-1]), mib(sum))
}
