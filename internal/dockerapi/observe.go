package dockerapi

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// RequestObserver is told of every API call once it is answered (the
// metrics). route is the route's pattern as registered ("/containers/{id*}/json"),
// never the raw path, so that it names a bounded set; calls that match no
// route count as "other".
type RequestObserver interface {
	ObserveRequest(method, route string, status int, d time.Duration)
}

// Routes that are not in the router.
const (
	routeOther = "other"
	routePprof = "/debug/pprof"
	routeUI    = "/ui" // the web console's pages and its own API
)

// statusHijacked is the status a hijacked call (attach, exec start) is
// counted with, whatever it then wrote on the raw connection.
const statusHijacked = http.StatusSwitchingProtocols

// observed is what observe learns of one request while it is served.
type observed struct {
	route string
	who   string // the client's identity, once identified
	role  string
}

type callKey struct{}

// observe starts watching one request for the RequestObserver and the
// debug request log; done is deferred by ServeHTTP. Without either it
// costs nothing.
func (s *Server) observe(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request, func()) {
	debug := s.log.Enabled(r.Context(), slog.LevelDebug)
	if s.Observer == nil && !debug {
		return w, r, func() {}
	}
	start := time.Now()
	c := &observed{route: routeOther}
	switch _, p := splitVersion(r.URL.Path); {
	case strings.HasPrefix(p, "/debug/pprof"):
		c.route = routePprof
	case isUIPath(p):
		c.route = routeUI
	}
	rec := &statusRecorder{ResponseWriter: w}
	r = r.WithContext(context.WithValue(r.Context(), callKey{}, c))
	return rec, r, func() {
		d := time.Since(start)
		status := rec.status()
		if s.Observer != nil {
			s.Observer.ObserveRequest(r.Method, c.route, status, d)
		}
		if debug {
			s.log.Debug("api request", "method", r.Method, "route", c.route, "status", status,
				"duration", d, "client", c.who, "role", c.role)
		}
	}
}

// noteRoute wraps a route's handler so that observe learns the route and
// who called it.
func (s *Server) noteRoute(key string, h handlerFunc) handlerFunc {
	_, pattern, _ := strings.Cut(key, " ")
	return func(w http.ResponseWriter, r *http.Request, p params) error {
		if c, ok := r.Context().Value(callKey{}).(*observed); ok {
			c.route = pattern
			id := identity(r)
			c.who, c.role = id.Name, id.Role.String()
		}
		return h(w, r, p)
	}
}

// statusRecorder notes the status a handler answered with. It keeps the
// writer's other abilities (flush, hijack, deadlines) reachable through
// Unwrap, as http.ResponseController expects.
type statusRecorder struct {
	http.ResponseWriter
	code     int
	hijacked bool
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps the writer a http.Flusher for code that asserts it.
func (w *statusRecorder) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack notes that the call took its connection over.
func (w *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, buf, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return conn, buf, err
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusRecorder) status() int {
	switch {
	case w.code != 0:
		return w.code
	case w.hijacked:
		return statusHijacked
	}
	return http.StatusOK
}
