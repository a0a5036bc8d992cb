package dockerapi

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Defaults of the stream caps in Limits.
const (
	// DefaultMaxStreamsPerClient caps the long-lived calls of one client
	// address as its connections are capped: a CI host running hundreds of
	// `docker run` (attach + wait each) in parallel, or a monitor
	// streaming the stats of every container, stays under it; one client
	// still cannot take every stream place.
	DefaultMaxStreamsPerClient = 1024
	// DefaultMaxStreams caps them in all, half the connection cap, so
	// that short calls always find connections.
	DefaultMaxStreams = 4096
)

// longCalls are the routes whose calls last as long as the client wants
// (hijacked attach and exec, followed logs, events, streamed stats, a
// container's wait) or as long as a large upload or download takes
// (build, load, pull, push, image save, archive and export). Each holds a
// connection, a goroutine or two and often a connection to an engine.
// The function says whether this call, by its query, is long-lived.
var longCalls = map[string]func(url.Values) bool{
	"POST /containers/{id*}/attach":   always,
	"GET /containers/{id*}/attach/ws": always,
	"POST /exec/{id}/start":           always,
	"POST /containers/{id*}/wait":     always,
	"GET /containers/{id*}/logs":      func(q url.Values) bool { return boolValue(q.Get("follow")) },
	"GET /containers/{id*}/stats": func(q url.Values) bool {
		v := q.Get("stream") // dockerd streams unless told not to
		return (v == "" || boolValue(v)) && !boolValue(q.Get("one-shot"))
	},
	"GET /services/{id}/logs":       func(q url.Values) bool { return boolValue(q.Get("follow")) },
	"GET /tasks/{id}/logs":          func(q url.Values) bool { return boolValue(q.Get("follow")) },
	"GET /events":                   always,
	"POST /build":                   always,
	"POST /images/load":             always,
	"POST /images/create":           always,
	"POST /images/{name*}/push":     always,
	"GET /images/get":               always,
	"GET /images/{name*}/get":       always,
	"GET /containers/{id*}/export":  always,
	"GET /containers/{id*}/archive": always,
	"PUT /containers/{id*}/archive": always,
}

func always(url.Values) bool { return true }

// beforeStream are the routes whose call announces a long-lived one:
// an exec create is followed by its start. They are refused, with the
// same message, when the client has no room for that stream now: clients
// show the message of a refused create, while a refused hijack reads
// only "unable to upgrade to tcp, received 503" in the docker CLI.
var beforeStream = map[string]bool{"POST /containers/{id*}/exec": true}

// limitStreams wraps the handler of a long-lived route so that each of
// its calls holds a place of s.Streams while it runs.
func (s *Server) limitStreams(key string, h handlerFunc) handlerFunc {
	if beforeStream[key] {
		return s.checkStreamRoom(h)
	}
	long, ok := longCalls[key]
	if !ok {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request, p params) error {
		if s.Streams == nil || !long(r.URL.Query()) {
			return h(w, r, p)
		}
		release, err := s.Streams.acquire(r)
		if err != nil {
			return err
		}
		defer release()
		return h(w, r, p)
	}
}

// checkStreamRoom refuses a call that announces a stream the caps would
// refuse.
func (s *Server) checkStreamRoom(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p params) error {
		if s.Streams != nil {
			release, err := s.Streams.acquire(r)
			if err != nil {
				return err
			}
			release()
		}
		return h(w, r, p)
	}
}

// StreamLimiter counts the long-lived calls in progress, per client
// address and in all. A zero cap is no cap.
type StreamLimiter struct {
	perClient, total int
	log              *slog.Logger
	q                *quota
	refused          *Refusals
}

// NewStreamLimiter returns the limiter of l's stream caps.
func NewStreamLimiter(l Limits, log *slog.Logger) *StreamLimiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &StreamLimiter{perClient: l.MaxStreamsPerClient, total: l.MaxStreams, log: log,
		q: newQuota(l.MaxStreamsPerClient, l.MaxStreams), refused: NewRefusals(10 * time.Second)}
}

// errTooManyStreams refuses a long-lived call over a cap: 503, as
// dockerd answers when it cannot serve now, before anything is hijacked.
type errTooManyStreams struct{ msg string }

func (e errTooManyStreams) Error() string { return e.msg }

func (errTooManyStreams) HTTPStatus() int { return http.StatusServiceUnavailable }

// requestClient is the address a call counts against: its client's IP;
// unix socket clients ("" here) count only in the total, as their
// connections do.
func requestClient(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// acquire takes a place for r's stream, or says which cap refuses it.
func (l *StreamLimiter) acquire(r *http.Request) (release func(), err error) {
	client := requestClient(r)
	switch l.q.take(client) {
	case clientFull:
		err = errTooManyStreams{fmt.Sprintf("too many simultaneous streams from %s: limit is %d (--max-streams-per-client)", client, l.perClient)}
	case totalFull:
		err = errTooManyStreams{fmt.Sprintf("too many simultaneous streams: limit is %d (--max-streams)", l.total)}
	}
	if err != nil {
		l.refuse(r, err)
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { l.q.give(client) }) }, nil
}

// refuse logs a refused stream at warning level, at most once per
// warnEvery, with the count refused since.
func (l *StreamLimiter) refuse(r *http.Request, why error) {
	if n, due := l.refused.Note(); due {
		l.log.Warn("API stream refused", "client", r.RemoteAddr, "call", r.Method+" "+r.URL.Path, "reason", why.Error(), "refused", n)
	}
}
