package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/metrics"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// shoal is a manager and its API over simulated engines, with metrics.
type shoal struct {
	fleet *enginesim.Fleet
	pool  *engine.Pool
	m     *metrics.Metrics
	mgr   *manager.Manager
	api   *httptest.Server
}

func startShoal(t *testing.T, engines int) *shoal {
	t.Helper()
	fleet, err := enginesim.StartFleet(engines, func(i int) enginesim.Options {
		return enginesim.Options{Containers: 2, Stopped: 1, Images: 1}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close() })
	m := metrics.New(metrics.Config{Version: "test", Commit: "abc123"})
	pool := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond, FailureRetry: 1, Timeout: 2 * time.Second}, nil)
	m.WatchPool(pool)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = pool.Run(ctx) }()
	go func() { _ = m.FollowEvents(pool)(ctx) }()
	pool.Update(fleet.Addrs())
	mgr := manager.New(manager.Config{Pool: pool, Placer: m.Placer(scheduler.New(scheduler.Spread{}, scheduler.Options{}))})
	go func() { _ = mgr.Run(ctx) }()
	api := dockerapi.New(mgr, "test", nil)
	api.Metrics, api.Observer = m.Handler(), m
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	waitUntil(t, "every engine healthy", func() bool { return len(pool.Healthy()) == engines })
	return &shoal{fleet: fleet, pool: pool, m: m, mgr: mgr, api: srv}
}

// scrape gets /metrics through the API and parses it.
func (s *shoal) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(s.api.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func (s *shoal) post(t *testing.T, path, body string) int {
	t.Helper()
	resp, err := http.Post(s.api.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// value is the value of the family's sample whose labels include want
// (a counter, gauge or untyped; a histogram's sample count); false if
// there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.Metric {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.Label {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func wantValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, ok func(float64) bool) {
	t.Helper()
	v, found := value(fams, name, labels)
	if !found {
		t.Errorf("%s%v: missing", name, labels)
		return
	}
	if !ok(v) {
		t.Errorf("%s%v = %v", name, labels, v)
	}
}

func equals(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func positive(v float64) bool                { return v > 0 }

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// The pool's figures are read from the caches at scrape time: engines by
// state, each engine's containers by state, its calls; an engine that
// stops answering turns unhealthy and its failed calls are counted.
func TestPoolMetrics(t *testing.T) {
	s := startShoal(t, 3)
	fams := s.scrape(t)
	wantValue(t, fams, "shoal_engines", map[string]string{"state": "healthy"}, equals(3))
	wantValue(t, fams, "shoal_engines", map[string]string{"state": "unhealthy"}, equals(0))
	for _, e := range s.fleet.Engines {
		node := map[string]string{"engine": e.Addr(), "node": e.Name()}
		wantValue(t, fams, "shoal_engine_healthy", node, equals(1))
		wantValue(t, fams, "shoal_containers", map[string]string{"engine": e.Addr(), "node": e.Name(), "state": "running"}, equals(2))
		wantValue(t, fams, "shoal_containers", map[string]string{"engine": e.Addr(), "node": e.Name(), "state": "exited"}, equals(1))
		wantValue(t, fams, "shoal_engine_call_duration_seconds", map[string]string{"engine": e.Addr()}, positive)
	}
	wantValue(t, fams, "shoal_build_info", map[string]string{"version": "test", "commit": "abc123"}, equals(1))
	for _, f := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if fams[f] == nil {
			t.Errorf("no %s", f)
		}
	}

	gone := s.fleet.Engines[0]
	gone.Close()
	waitUntil(t, "the closed engine is unhealthy and a call to it failed", func() bool {
		fams = s.scrape(t)
		v, _ := value(fams, "shoal_engine_call_errors_total", map[string]string{"engine": gone.Addr()})
		return len(s.pool.Healthy()) == 2 && v > 0
	})
	wantValue(t, fams, "shoal_engines", map[string]string{"state": "unhealthy"}, equals(1))
	wantValue(t, fams, "shoal_engine_healthy", map[string]string{"engine": gone.Addr()}, equals(0))
	wantValue(t, fams, "shoal_engine_call_errors_total", map[string]string{"engine": gone.Addr()}, positive)
}

// An engine's event is counted and its fan-in lag measured.
func TestEventFanInLag(t *testing.T) {
	s := startShoal(t, 1)
	sim := s.fleet.Engines[0]
	id, err := sim.Create(enginesim.CreateSpec{Image: "busybox", Name: "lagged"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.StartContainer(id); err != nil {
		t.Fatal(err)
	}
	var fams map[string]*dto.MetricFamily
	waitUntil(t, "two events measured", func() bool {
		fams = s.scrape(t)
		v, _ := value(fams, "shoal_event_fanin_lag_seconds", nil)
		return v >= 2
	})
	wantValue(t, fams, "shoal_engine_events_total", nil, func(v float64) bool { return v >= 2 })
	lag := fams["shoal_event_fanin_lag_seconds"].Metric[0].Histogram
	if mean := lag.GetSampleSum() / float64(lag.GetSampleCount()); mean < 0 || mean > 5 {
		t.Errorf("mean lag %vs", mean)
	}
}

// API calls are counted by route pattern and status; placements by
// outcome, with the filter that refused every node.
func TestAPIAndPlacementMetrics(t *testing.T) {
	s := startShoal(t, 2)
	if code := s.post(t, "/v1.45/containers/create?name=web", `{"Image":"busybox"}`); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	if code := s.post(t, "/v1.45/containers/create?name=nowhere", `{"Image":"busybox","Env":["constraint:zone==nowhere"]}`); code < 400 {
		t.Fatalf("create with an unmet constraint: %d", code)
	}
	resp, err := http.Get(s.api.URL + "/containers/no-such-container/json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var fams map[string]*dto.MetricFamily
	// A call is counted once answered: just after its client has the answer.
	waitUntil(t, "the calls are counted", func() bool {
		fams = s.scrape(t)
		get, _ := value(fams, "shoal_api_request_duration_seconds", map[string]string{"method": "GET", "route": "/containers/{id*}/json"})
		post, _ := value(fams, "shoal_api_request_duration_seconds", map[string]string{"method": "POST", "route": "/containers/create"})
		return get == 1 && post == 2
	})
	wantValue(t, fams, "shoal_api_requests_total", map[string]string{"method": "POST", "route": "/containers/create", "status": "201"}, equals(1))
	wantValue(t, fams, "shoal_api_requests_total", map[string]string{"method": "GET", "route": "/containers/{id*}/json", "status": "404"}, equals(1))
	wantValue(t, fams, "shoal_api_request_duration_seconds", map[string]string{"method": "POST", "route": "/containers/create"}, equals(2))
	wantValue(t, fams, "shoal_placements_total", map[string]string{"outcome": "placed", "filter": ""}, equals(1))
	wantValue(t, fams, "shoal_placements_total", map[string]string{"outcome": "no_fit", "filter": "constraint"}, equals(1))
	wantValue(t, fams, "shoal_placement_rejected_nodes_total", map[string]string{"filter": "constraint"}, equals(2))
	wantValue(t, fams, "shoal_placement_duration_seconds", nil, equals(2))
	for name := range fams {
		if strings.Contains(name, "no-such-container") {
			t.Errorf("a raw path made it into a metric: %s", name)
		}
	}
	if f := fams["shoal_api_requests_total"]; f != nil {
		for _, m := range f.Metric {
			if s := fmt.Sprint(m.Label); strings.Contains(s, "no-such-container") {
				t.Errorf("a raw path made it into a label: %s", s)
			}
		}
	}
}
