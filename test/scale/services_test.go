package scale

// Services at scale (issue 16, point 5): one replicated service over a
// fleet of simulated engines under `shoal manage` (with its data dir, so
// services exist), through the Docker API as the docker CLI drives it:
// create, scale up, scale down and a rolling update, each timed until
// the service has converged (ServiceStatus.RunningTasks at the desired
// count, the update "completed", and exactly that many task containers
// running on the fleet).
//
// TestServicesSmall (20 engines, 100 tasks) always runs and checks the
// outcome only. The full size (1,000 engines, a 10,000-task service
// scaled to 12,000 then 8,000, updated 100 at a time) runs with
// SHOAL_SCALE=1:
//
//	SHOAL_SCALE=1 go test -count=1 -v -timeout 30m -run TestServices10k ./test/scale/

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

type svcConfig struct {
	engines                      int
	replicas, scaleUp, scaleDown uint64
	parallelism                  uint64
	inproc                       bool
	limit                        time.Duration // for each phase to converge
}

func TestServicesSmall(t *testing.T) {
	runServices(t, svcConfig{engines: 20, replicas: 100, scaleUp: 150, scaleDown: 60, parallelism: 20,
		inproc: inproc(), limit: 2 * time.Minute})
}

func TestServices10k(t *testing.T) {
	if os.Getenv("SHOAL_SCALE") != "1" {
		t.Skip("set SHOAL_SCALE=1 to run a 10,000-task service over 1,000 simulated engines")
	}
	n := uint64(envInt("SHOAL_SCALE_TASKS", 10000))
	runServices(t, svcConfig{engines: envInt("SHOAL_SCALE_ENGINES", 1000), replicas: n, scaleUp: n * 6 / 5, scaleDown: n * 4 / 5,
		parallelism: uint64(envInt("SHOAL_SCALE_PARALLELISM", 100)), inproc: inproc(), limit: 8 * time.Minute})
}

// svcClient drives one service through shoal's API.
type svcClient struct {
	t     *testing.T
	hc    *http.Client
	base  string
	fleet *enginesim.Fleet
	id    string
}

func runServices(t *testing.T, cfg svcConfig) {
	raiseNoFile(t)
	fleet, list := startListedFleet(t, cfg.engines, func(i int) enginesim.Options {
		return enginesim.Options{NCPU: 8, MemTotal: 32 << 30, Images: 1, Labels: []string{"zone=z" + strconv.Itoa(i%3)}}
	})
	t0 := time.Now()
	base, pid := startShoal(t, "file://"+list, cfg.inproc)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}
	t.Cleanup(hc.CloseIdleConnections)
	waitLoaded(t, hc, base, cfg.engines, 0, 5*time.Minute)
	t.Logf("shoal manages %d simulated engines after %v", cfg.engines, time.Since(t0).Round(time.Millisecond))
	c := &svcClient{t: t, hc: hc, base: base, fleet: fleet}

	phase := func(what string, want uint64, do func()) {
		t.Helper()
		passes := c.passes()
		do()
		took := c.converge(what, want, strings.HasPrefix(what, "rolling"), cfg.limit)
		after := c.passes()
		line := fmt.Sprintf("%s: converged in %v; %.0f reconcile passes, mean %.1f ms", what, took.Round(time.Millisecond),
			after.count-passes.count, 1000*(after.sum-passes.sum)/max(after.count-passes.count, 1))
		if pid != 0 {
			line += fmt.Sprintf("; shoal RSS %.0f MiB", mib(rss(pid)))
		}
		t.Log(line)
	}
	phase(fmt.Sprintf("create of %d tasks", cfg.replicas), cfg.replicas, func() { c.create(cfg.replicas, cfg.parallelism) })
	c.checkSpread(cfg.engines, cfg.replicas)
	phase(fmt.Sprintf("scale %d -> %d", cfg.replicas, cfg.scaleUp), cfg.scaleUp, func() {
		c.update(func(s *swarm.ServiceSpec) { s.Mode.Replicated.Replicas = &cfg.scaleUp })
	})
	phase(fmt.Sprintf("scale %d -> %d", cfg.scaleUp, cfg.scaleDown), cfg.scaleDown, func() {
		c.update(func(s *swarm.ServiceSpec) { s.Mode.Replicated.Replicas = &cfg.scaleDown })
	})
	phase(fmt.Sprintf("rolling update of %d tasks, parallelism %d", cfg.scaleDown, cfg.parallelism), cfg.scaleDown, func() {
		c.update(func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Env = append(s.TaskTemplate.ContainerSpec.Env, "GENERATION=2")
		})
	})
	c.checkUpdated(cfg.scaleDown)
	c.checkSpread(cfg.engines, cfg.scaleDown)
}

func (c *svcClient) do(method, path string, body any) []byte {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+apiPrefix+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode >= 300 {
		c.t.Fatalf("%s %s: %d %s %v", method, path, resp.StatusCode, out, err)
	}
	return out
}

func (c *svcClient) create(replicas, parallelism uint64) {
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "big"},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: "sim/image-0:latest", Command: []string{"sleep", "infinity"}},
			Resources:     &swarm.ResourceRequirements{Reservations: &swarm.Resources{MemoryBytes: 4 << 20}},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		// A short monitor: the simulated containers run at once, and the
		// figure wanted is shoal's, not the monitor's wait.
		UpdateConfig: &swarm.UpdateConfig{Parallelism: parallelism, Monitor: 10 * time.Millisecond,
			FailureAction: swarm.UpdateFailureActionPause, Order: swarm.UpdateOrderStopFirst},
	}
	var out swarm.ServiceCreateResponse
	if err := json.Unmarshal(c.do("POST", "/services/create", spec), &out); err != nil || out.ID == "" {
		c.t.Fatalf("service create: %+v %v", out, err)
	}
	c.id = out.ID
}

func (c *svcClient) service() swarm.Service {
	c.t.Helper()
	var list []swarm.Service
	q := url.Values{"status": {"true"}, "filters": {`{"id":["` + c.id + `"]}`}}
	if err := json.Unmarshal(c.do("GET", "/services?"+q.Encode(), nil), &list); err != nil || len(list) != 1 {
		c.t.Fatalf("service list: %d services, %v", len(list), err)
	}
	return list[0]
}

func (c *svcClient) update(change func(*swarm.ServiceSpec)) {
	s := c.service()
	change(&s.Spec)
	c.do("POST", fmt.Sprintf("/services/%s/update?version=%d", c.id, s.Version.Index), s.Spec)
}

// converge waits until the service runs want tasks, its update (if any,
// and if updated is set, one must have begun) is completed, and the fleet
// runs exactly want containers.
func (c *svcClient) converge(what string, want uint64, updated bool, limit time.Duration) time.Duration {
	c.t.Helper()
	began := time.Now()
	var last string
	for time.Since(began) < limit {
		// The fleet's count first: it costs shoal nothing, where listing
		// the service's status decodes every task (a load on the manager
		// that would weigh on what is measured).
		_, running := c.fleet.Count()
		if uint64(running) != want {
			last = fmt.Sprintf("%d containers running", running)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		s := c.service()
		updating := s.UpdateStatus != nil && s.UpdateStatus.State != swarm.UpdateStateCompleted || updated && s.UpdateStatus == nil
		if s.ServiceStatus != nil && s.ServiceStatus.RunningTasks == want && uint64(running) == want && !updating {
			return time.Since(began)
		}
		last = fmt.Sprintf("status %+v, update %+v, %d containers running", s.ServiceStatus, s.UpdateStatus, running)
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("%s: not converged after %v: %s", what, limit, last)
	return 0
}

// tasks lists the service's tasks meant to run.
func (c *svcClient) tasks() []swarm.Task {
	c.t.Helper()
	var list []swarm.Task
	q := url.Values{"filters": {`{"service":["` + c.id + `"],"desired-state":["running"]}`}}
	if err := json.Unmarshal(c.do("GET", "/tasks?"+q.Encode(), nil), &list); err != nil {
		c.t.Fatal(err)
	}
	return list
}

// checkSpread checks that want tasks run, one per slot, spread evenly
// (no node more than one above another: every node is alike).
func (c *svcClient) checkSpread(engines int, want uint64) {
	c.t.Helper()
	perNode, slots := map[string]int{}, map[int]bool{}
	for _, tk := range c.tasks() {
		if tk.Status.State != swarm.TaskStateRunning {
			c.t.Errorf("task %s is %s, want running", tk.ID, tk.Status.State)
		}
		if slots[tk.Slot] {
			c.t.Errorf("slot %d has two tasks meant to run", tk.Slot)
		}
		slots[tk.Slot] = true
		perNode[tk.NodeID]++
	}
	if uint64(len(slots)) != want {
		c.t.Errorf("%d tasks meant to run, want %d", len(slots), want)
	}
	lo, hi := int(want)/engines, (int(want)+engines-1)/engines
	for n, k := range perNode {
		if k < lo || k > hi {
			c.t.Errorf("node %s runs %d tasks, want %d..%d", n, k, lo, hi)
		}
	}
	if len(perNode) != min(engines, int(want)) {
		c.t.Errorf("tasks on %d nodes, want %d", len(perNode), min(engines, int(want)))
	}
}

// checkUpdated checks that every task meant to run has the updated spec.
func (c *svcClient) checkUpdated(want uint64) {
	c.t.Helper()
	n := 0
	for _, tk := range c.tasks() {
		if !containsString(tk.Spec.ContainerSpec.Env, "GENERATION=2") {
			c.t.Errorf("task %s (slot %d) still has the old spec", tk.ID, tk.Slot)
		}
		n++
	}
	if uint64(n) != want {
		c.t.Errorf("%d tasks after the update, want %d", n, want)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type histo struct{ sum, count float64 }

// passes reads the orchestrator's pass duration histogram from /metrics.
func (c *svcClient) passes() histo {
	c.t.Helper()
	var h histo
	for _, line := range strings.Split(string(get(c.t, c.hc, c.base+"/metrics")), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch name {
		case "shoal_orchestrator_reconcile_duration_seconds_sum":
			h.sum = v
		case "shoal_orchestrator_reconcile_duration_seconds_count":
			h.count = v
		}
	}
	return h
}
