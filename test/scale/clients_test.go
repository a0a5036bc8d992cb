package scale

// Many clients: concurrent clients each making a shuffled mix of run -d
// (with a memory reservation), ps, inspect and logs calls through shoal.
// It checks that no call fails and that no engine ends up holding more
// reserved memory than its MemTotal (shoal runs with its default 5%
// overcommit, too little for one more container on a full node), and
// measures throughput and each call's p50/p99.
//
// TestClientsSmall (20 clients over 10 engines) always runs and asserts
// correctness only. The full size (200 clients × 40 calls over 1,000
// engines: 2,000 run -d fill the 2,000 slots) runs only when asked:
//
//	SHOAL_SCALE=1 go test -count=1 -v -timeout 15m -run '^TestClients1000$' ./test/scale/
//
// (SHOAL_CLIENTS, SHOAL_CLIENTS_ENGINES, SHOAL_CLIENTS_CALLS change it.)

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// reservation is what each run -d reserves: a node of slots×reservation
// MemTotal takes slots of them.
const reservation = 256 << 20

type clientsConfig struct {
	engines, running int // fleet; running containers per engine before the clients
	slots            int // run -d containers an engine has room for
	clients, calls   int // concurrent clients; calls each (a quarter of each kind)
}

func TestClientsSmall(t *testing.T) {
	r := runClients(t, clientsConfig{engines: 10, running: 2, slots: 4, clients: 20, calls: 8})
	r.assertCorrect(t)
}

func TestClients1000(t *testing.T) {
	if os.Getenv("SHOAL_SCALE") != "1" {
		t.Skip("set SHOAL_SCALE=1 to run 200 clients against 1,000 simulated engines")
	}
	r := runClients(t, clientsConfig{
		engines: envInt("SHOAL_CLIENTS_ENGINES", 1000), running: 2, slots: 2,
		clients: envInt("SHOAL_CLIENTS", 200), calls: envInt("SHOAL_CLIENTS_CALLS", 40),
	})
	r.assertCorrect(t)
}

var callKinds = []string{"run -d", "ps", "inspect", "logs"}

type clientsResult struct {
	errs       []string
	overcommit []string
	placed     int
}

func (r clientsResult) assertCorrect(t *testing.T) {
	t.Helper()
	for i, e := range r.errs {
		if i == 10 {
			t.Errorf("... %d errors in all", len(r.errs))
			break
		}
		t.Error(e)
	}
	for _, o := range r.overcommit {
		t.Error(o)
	}
}

func runClients(t *testing.T, cfg clientsConfig) clientsResult {
	raiseNoFile(t)
	fleet, list := startListedFleet(t, cfg.engines, func(i int) enginesim.Options {
		return enginesim.Options{Containers: cfg.running, Images: 2, MemTotal: int64(cfg.slots) * reservation, NCPU: 4}
	})
	base, pid := startShoal(t, "file://"+list, inproc())
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.clients, DisableCompression: true}}
	t.Cleanup(hc.CloseIdleConnections)
	total := cfg.engines * cfg.running
	waitLoaded(t, hc, base, cfg.engines, total, 10*time.Minute)
	seeded := slices.Collect(func(yield func(string) bool) {
		for id := range psIDs(get(t, hc, base+apiPrefix+"/containers/json?all=1")) {
			if !yield(id) {
				return
			}
		}
	})
	runs := cfg.clients * (cfg.calls / len(callKinds))
	t.Logf("shoal loaded %d engines, %d containers; %d run -d to place in %d slots (%.0f%%); load average %s",
		cfg.engines, total, runs, cfg.engines*cfg.slots, 100*float64(runs)/float64(cfg.engines*cfg.slots), loadavg())

	var mu sync.Mutex
	lat := map[string][]time.Duration{}
	var r clientsResult
	var wg sync.WaitGroup
	if dir := os.Getenv("SHOAL_SCALE_PROFILE"); dir != "" && pid > 0 {
		go cpuProfile(hc, base, filepath.Join(dir, "clients-cpu.pprof"), 15*time.Second)
	}
	t0 := time.Now()
	for i := range cfg.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{hc: hc, base: base, rng: rand.New(rand.NewPCG(uint64(i), 16)), ids: seeded}
			kinds := make([]string, 0, cfg.calls)
			for k := range cfg.calls {
				kinds = append(kinds, callKinds[k%len(callKinds)])
			}
			c.rng.Shuffle(len(kinds), func(a, b int) { kinds[a], kinds[b] = kinds[b], kinds[a] })
			for _, k := range kinds {
				start := time.Now()
				err := c.call(k)
				d := time.Since(start)
				mu.Lock()
				lat[k] = append(lat[k], d)
				if err != nil {
					r.errs = append(r.errs, fmt.Sprintf("client %d %s: %v", i, k, err))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t0)

	for _, e := range fleet.Engines {
		res, memTotal := e.Reserved()
		r.placed += int(res / reservation)
		if res > memTotal {
			r.overcommit = append(r.overcommit, fmt.Sprintf("engine %s holds %d MiB of reservations, MemTotal %d MiB", e.Name(), res>>20, memTotal>>20))
		}
	}
	var rep strings.Builder
	calls := 0
	for _, k := range callKinds {
		calls += len(lat[k])
	}
	fmt.Fprintf(&rep, "engines %d, containers %d before, %d clients × %d calls = %d calls in %v: %.0f calls/s; load average %s\n",
		cfg.engines, total, cfg.clients, cfg.calls, calls, wall.Round(time.Millisecond), float64(calls)/wall.Seconds(), loadavg())
	fmt.Fprintf(&rep, "%-8s %6s %9s %9s %9s\n", "call", "n", "p50", "p99", "max")
	for _, k := range callKinds {
		d := lat[k]
		slices.Sort(d)
		if len(d) > 0 {
			fmt.Fprintf(&rep, "%-8s %6d %9s %9s %9s\n", k, len(d), ms(pct(d, 0.5)), ms(pct(d, 0.99)), ms(d[len(d)-1]))
		}
	}
	fmt.Fprintf(&rep, "errors %d; containers placed with a reservation %d of %d asked, in %d slots; engines over MemTotal: %d\n",
		len(r.errs), r.placed, runs, cfg.engines*cfg.slots, len(r.overcommit))
	if pid > 0 {
		fmt.Fprintf(&rep, "shoal RSS after %.1f MiB, peak (VmHWM) %.1f MiB\n", mib(rss(pid)), mib(hwm(pid)))
	}
	t.Log("\n" + rep.String())
	if out := os.Getenv("SHOAL_SCALE_REPORT"); out != "" {
		_ = os.WriteFile(out, []byte(rep.String()), 0o644)
	}
	return r
}

// client is one of the concurrent clients; it inspects and reads the logs
// of the containers it started and of those there before.
type client struct {
	hc   *http.Client
	base string
	rng  *rand.Rand
	ids  []string // the seeded containers
	mine []string // its own run -d containers
}

func (c *client) call(kind string) error {
	switch kind {
	case "run -d":
		id, err := c.run()
		if err == nil {
			c.mine = append(c.mine, id)
		}
		return err
	case "ps":
		return c.do("GET", "/containers/json", nil, http.StatusOK)
	case "inspect":
		return c.do("GET", "/containers/"+c.pick()+"/json", nil, http.StatusOK)
	default:
		return c.do("GET", "/containers/"+c.pick()+"/logs?stdout=1&stderr=1", nil, http.StatusOK)
	}
}

// pick is one of its own containers half of the time, else a seeded one.
func (c *client) pick() string {
	if len(c.mine) > 0 && c.rng.IntN(2) == 0 {
		return c.mine[c.rng.IntN(len(c.mine))]
	}
	return c.ids[c.rng.IntN(len(c.ids))]
}

// run is `docker run -d --memory-reservation 256m busybox sleep 3600`.
func (c *client) run() (string, error) {
	body, _ := json.Marshal(container.CreateRequest{
		Config: &container.Config{Image: "busybox", Cmd: []string{"sleep", "3600"}, Labels: map[string]string{}},
		HostConfig: &container.HostConfig{NetworkMode: "bridge", RestartPolicy: container.RestartPolicy{Name: "no"},
			Resources: container.Resources{MemoryReservation: reservation}},
	})
	var cr container.CreateResponse
	if err := c.doInto("POST", "/containers/create", body, http.StatusCreated, &cr); err != nil {
		return "", err
	}
	if err := c.do("POST", "/containers/"+cr.ID+"/start", nil, http.StatusNoContent); err != nil {
		return "", err
	}
	return cr.ID, nil
}

func (c *client) do(method, path string, body []byte, want int) error {
	return c.doInto(method, path, body, want, nil)
}

func (c *client) doInto(method, path string, body []byte, want int, v any) error {
	req, err := http.NewRequest(method, c.base+apiPrefix+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s %.300s", method, path, resp.Status, b)
	}
	if v != nil {
		return json.Unmarshal(b, v)
	}
	return nil
}
