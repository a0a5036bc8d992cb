package metrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/scheduler"
)

func (m *Metrics) definePlacement() {
	m.placements = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_placements_total",
		Help: "Container placements by outcome (placed, no_fit, no_nodes, invalid, error) and, for no_fit, the filter that rejected the most nodes.",
	}, []string{"outcome", "filter"})
	m.rejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_placement_rejected_nodes_total",
		Help: "Nodes rejected in placements that found no node, by the filter that rejected them (health, constraint, affinity, dependency, port, containerslots, resources).",
	}, []string{"filter"})
	m.placeDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "shoal_placement_duration_seconds",
		Help:    "Time the scheduler took to place a container (filters and strategy).",
		Buckets: fastBuckets,
	})
	m.placements.WithLabelValues("placed", "") // shown from the start, at 0, for rate()
	m.reg.MustRegister(m.placements, m.rejections, m.placeDuration)
}

// Placer is the scheduler as the manager uses it (manager.Placer).
type Placer interface {
	Place(req *scheduler.Request, nodes []*scheduler.Node) (*scheduler.Node, error)
}

// Placer returns next, its placements counted and timed.
func (m *Metrics) Placer(next Placer) Placer { return placer{next: next, m: m} }

type placer struct {
	next Placer
	m    *Metrics
}

func (p placer) Place(req *scheduler.Request, nodes []*scheduler.Node) (*scheduler.Node, error) {
	start := time.Now()
	n, err := p.next.Place(req, nodes)
	p.m.placeDuration.Observe(seconds(time.Since(start)))
	p.m.placed(err)
	return n, err
}

func (m *Metrics) placed(err error) {
	var nofit *scheduler.NoFitError
	switch {
	case err == nil:
		m.placements.WithLabelValues("placed", "").Inc()
	case errors.As(err, &nofit):
		m.placements.WithLabelValues("no_fit", mainReason(nofit)).Inc()
		for _, r := range nofit.Reasons {
			m.rejections.WithLabelValues(r.Filter).Add(float64(r.Nodes))
		}
	case errors.Is(err, scheduler.ErrNoNodes):
		m.placements.WithLabelValues("no_nodes", "").Inc()
	case errors.Is(err, scheduler.ErrInvalidRule):
		m.placements.WithLabelValues("invalid", "").Inc()
	default:
		m.placements.WithLabelValues("error", "").Inc()
	}
}

// mainReason is the filter that rejected the most nodes (the first in
// pipeline order on a tie).
func mainReason(e *scheduler.NoFitError) string {
	best := scheduler.Reason{}
	for _, r := range e.Reasons {
		if r.Nodes > best.Nodes {
			best = r
		}
	}
	return best.Filter
}
