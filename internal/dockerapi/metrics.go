package dockerapi

import "net/http"

// metricsRoutes serves the Prometheus metrics (Server.Metrics) at
// /metrics, behind the API's TLS, identity and authorization (viewers may
// scrape: it shows counts and latencies, no object they could not list).
func (s *Server) metricsRoutes() {
	s.rt.handle("GET", "/metrics", s.serveMetrics)
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, _ params) error {
	if s.Metrics == nil {
		return notFound("page not found")
	}
	s.Metrics.ServeHTTP(w, r)
	return nil
}
