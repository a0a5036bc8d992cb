package run

import (
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/metrics"
)

// newMetrics makes a manager's metrics (served at /metrics on the API
// addresses, behind the API's TLS and authorization; viewers may read).
func newMetrics(version string) *metrics.Metrics {
	return metrics.New(metrics.Config{Version: version, Commit: dockerapi.GitCommit})
}

// instrument points the pool and the API at s's metrics.
func (s *stack) instrument() {
	s.metrics.WatchPool(s.pool)
	s.api.Metrics = s.metrics.Handler()
	s.api.Observer = s.metrics
}
