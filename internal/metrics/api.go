package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func (m *Metrics) defineAPI() {
	m.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_api_requests_total",
		Help: "Docker API calls answered, by method, route pattern and status (a hijacked attach or exec counts as 101).",
	}, []string{"method", "route", "status"})
	m.apiDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shoal_api_request_duration_seconds",
		Help:    "Time to answer a Docker API call, by method and route pattern (streams: until they end).",
		Buckets: apiBuckets,
	}, []string{"method", "route"})
	m.reg.MustRegister(m.apiRequests, m.apiDuration)
}

// ObserveRequest counts one API call (dockerapi.RequestObserver).
func (m *Metrics) ObserveRequest(method, route string, status int, d time.Duration) {
	m.apiRequests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.apiDuration.WithLabelValues(method, route).Observe(seconds(d))
}
