package metrics

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/engine"
)

func (m *Metrics) defineEngines() {
	m.engineCalls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shoal_engine_call_duration_seconds",
		Help:    "Time until an engine answered a call shoal made to it (its headers), by engine address.",
		Buckets: engineBuckets,
	}, []string{"engine"})
	m.engineErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_engine_call_errors_total",
		Help: "Calls to an engine that failed (no answer, or a 5xx), by engine address.",
	}, []string{"engine"})
	m.events = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shoal_engine_events_total",
		Help: "Events the engines sent that reached the pool's event bus.",
	})
	m.eventLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "shoal_event_fanin_lag_seconds",
		Help:    "Time from an event's time on its engine to its publication on the pool's event bus (engine clocks' skew included).",
		Buckets: lagBuckets,
	})
	m.reg.MustRegister(m.engineCalls, m.engineErrors, m.events, m.eventLag)
}

// EngineCall counts one call to an engine (an engine.CallObserver).
func (m *Metrics) EngineCall(addr string, d time.Duration, status int, err error) {
	m.engineCalls.WithLabelValues(addr).Observe(seconds(d))
	if err != nil || status >= 500 {
		m.engineErrors.WithLabelValues(addr).Inc()
	}
}

// WatchPool makes the metrics report the pool: its engine calls, and at
// each scrape its engines by state and their containers by state, read
// from the caches.
func (m *Metrics) WatchPool(p *engine.Pool) {
	p.ObserveCalls(m.EngineCall)
	m.reg.MustRegister(poolCollector{pool: p})
}

// FollowEvents measures the event fan-in lag until ctx ends (run it as a
// component): it follows the pool's bus as one more subscriber.
func (m *Metrics) FollowEvents(p *engine.Pool) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		for ctx.Err() == nil {
			sub := p.Subscribe(ctx)
			for ev := range sub.C() {
				m.event(ev)
			}
			if !errors.Is(sub.Err(), engine.ErrSubscriberTooSlow) {
				break
			}
		}
		return nil
	}
}

func (m *Metrics) event(ev engine.Event) {
	if ev.IsState() {
		return
	}
	m.events.Inc()
	at := time.Unix(0, ev.Message.TimeNano)
	if ev.Message.TimeNano == 0 {
		at = time.Unix(ev.Message.Time, 0)
	}
	m.eventLag.Observe(max(seconds(ev.Time.Sub(at)), 0))
}

var (
	descEngines = prometheus.NewDesc("shoal_engines",
		"Engines of the pool by state (healthy, unhealthy, pending).", []string{"state"}, nil)
	descEngineUp = prometheus.NewDesc("shoal_engine_healthy",
		"1 while the engine is healthy, else 0; by engine address and node name.", []string{"engine", "node"}, nil)
	descContainers = prometheus.NewDesc("shoal_containers",
		"Containers in the pool's caches by engine address, node name and state (running, exited, ...).", []string{"engine", "node", "state"}, nil)
)

// poolCollector reads the pool's caches at each scrape: nothing is kept
// up to date between scrapes, and a scrape of 1,000 engines takes a few
// milliseconds (docs/benchmarks.md).
type poolCollector struct{ pool *engine.Pool }

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEngines
	ch <- descEngineUp
	ch <- descContainers
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	states := map[engine.State]int{engine.Healthy: 0, engine.Unhealthy: 0, engine.Pending: 0}
	for _, e := range c.pool.Engines() {
		st, _ := e.State()
		states[st]++
		up := 0.0
		if st == engine.Healthy {
			up = 1
		}
		name := e.Name()
		ch <- prometheus.MustNewConstMetric(descEngineUp, prometheus.GaugeValue, up, e.Addr, name)
		byState := map[string]int{}
		for _, ct := range e.Containers() {
			byState[ct.State]++
		}
		for state, n := range byState {
			ch <- prometheus.MustNewConstMetric(descContainers, prometheus.GaugeValue, float64(n), e.Addr, name, state)
		}
	}
	for st, n := range states {
		ch <- prometheus.MustNewConstMetric(descEngines, prometheus.GaugeValue, float64(n), strings.ToLower(st.String()))
	}
}
