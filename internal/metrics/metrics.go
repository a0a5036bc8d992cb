// Package metrics owns shoal's Prometheus registry and the definition of
// every metric served at /metrics. Other packages know nothing of
// Prometheus: they report through small observers (dockerapi's
// RequestObserver, the pool's CallObserver, the store's WriteObserver, the
// orchestrator's Observer) that internal/run points here, and the counts
// that already live in caches (engines, containers, tunnels, the store's
// leader) are read at scrape time.
package metrics

import (
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config describes the build, for shoal_build_info.
type Config struct {
	Version string
	Commit  string
}

// Metrics is one manager's metrics. Each metric is defined here or in
// the file of its area; docs/metrics.md lists them all.
type Metrics struct {
	reg *prometheus.Registry

	apiRequests *prometheus.CounterVec
	apiDuration *prometheus.HistogramVec

	engineCalls  *prometheus.HistogramVec
	engineErrors *prometheus.CounterVec
	events       prometheus.Counter
	eventLag     prometheus.Histogram

	placements    *prometheus.CounterVec
	rejections    *prometheus.CounterVec
	placeDuration prometheus.Histogram

	storeWrites   prometheus.Histogram
	storeFailures prometheus.Counter

	reconcile prometheus.Histogram
	services  serviceSnapshot
}

// Buckets, in seconds.
var (
	// apiBuckets span a ping to a long pull or a followed stream.
	apiBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// engineBuckets are fewer: the histogram is per engine, and a
	// thousand engines each have one.
	engineBuckets = []float64{.0025, .01, .025, .1, .25, 1, 5}
	// fastBuckets are for work done in memory (placement, reconcile).
	fastBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}
	// lagBuckets are for event fan-in and store proposals.
	lagBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
)

// New returns the metrics of one manager, registered in a registry of
// their own.
func New(c Config) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.defineAPI()
	m.defineEngines()
	m.definePlacement()
	m.defineStore()
	m.defineOrchestrator()
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "shoal_build_info",
		Help:        "Always 1; the labels say which shoal this is.",
		ConstLabels: prometheus.Labels{"version": c.Version, "commit": c.Commit, "goversion": runtime.Version()},
	}, func() float64 { return 1 }))
	return m
}

// Handler serves the metrics in Prometheus' text (or negotiated) format:
// shoal's own, and those of the process's default registry, which holds
// the Go runtime's and the process's (go_*, process_*) and, when the
// store runs, embedded etcd's (etcd_*).
func (m *Metrics) Handler() http.Handler {
	g := prometheus.Gatherers{m.reg, prometheus.DefaultGatherer}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry is shoal's own registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func seconds(d time.Duration) float64 { return d.Seconds() }
