// Package replica makes several shoal managers one service: they elect a
// primary through the discovery store, the primary serves the Docker API,
// and every other manager (a replica) forwards each call to it, hijacked
// attach/exec streams included, answering only /_ping and /info itself.
package replica

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// Elector campaigns for primary as me and reports each primary it observes
// (itself included) until ctx ends, then steps down. discovery.KV is one.
type Elector interface {
	Elect(ctx context.Context, me string, leader func(addr string)) error
}

// ForwardedHeader marks a request a replica forwarded. It is a hop marker,
// not a credential: anyone can set it, so it never makes a manager serve a
// request it would not serve otherwise. Only the primary serves the API
// (to everyone, marked or not); a replica forwards unmarked requests and
// refuses marked ones with 503, so two managers that disagree for a moment
// on who is primary cannot bounce a request between them, and a client
// cannot make a replica answer from its own, possibly stale, view.
// Proof of origin (an HMAC, mutual TLS) would add a shared secret to every
// manager's configuration and still guard nothing the primary does not
// already serve to any client.
const ForwardedHeader = "X-Shoal-Forwarded-By"

// Handler serves the API locally when this manager is primary and forwards
// it to the primary otherwise.
type Handler struct {
	local http.Handler
	self  string      // this manager's advertised API address
	tls   *tls.Config // to reach the primary; nil for plain TCP
	log   *slog.Logger

	mu      sync.RWMutex
	primary string // "" while unknown
	since   time.Time
	proxy   *httputil.ReverseProxy
}

// New wraps local, the API handler, for the manager advertised at self
// (host:port). tlsConf, if set, is used to reach the primary.
func New(local http.Handler, self string, tlsConf *tls.Config, log *slog.Logger) *Handler {
	return &Handler{local: local, self: self, tls: tlsConf, log: log}
}

// Run campaigns through e until ctx ends.
func (h *Handler) Run(ctx context.Context, e Elector) error {
	return e.Elect(ctx, h.self, h.SetPrimary)
}

// SetPrimary records the current primary's address.
func (h *Handler) SetPrimary(addr string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if addr == h.primary {
		return
	}
	h.primary, h.since = addr, time.Now()
	h.proxy = nil
	if addr != "" && addr != h.self {
		h.proxy = h.newProxy(addr)
	}
	role := "replica"
	if addr == h.self {
		role = "primary"
	}
	h.log.Info("replication: primary changed", "primary", addr, "role", role)
}

// Primary returns the primary's address and whether it is this manager.
func (h *Handler) Primary() (addr string, self bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.primary, h.primary != "" && h.primary == h.self
}

func (h *Handler) scheme() string {
	if h.tls != nil {
		return "https"
	}
	return "http"
}

func (h *Handler) newProxy(addr string) *httputil.ReverseProxy {
	target := &url.URL{Scheme: h.scheme(), Host: addr}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = h.tls
	tr.ResponseHeaderTimeout = 0
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
			r.Out.Header.Set(ForwardedHeader, h.self)
		},
		Transport:     tr,
		FlushInterval: -1, // logs, events, stats, pull progress stream as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			h.log.Warn("replication: forward to primary", "primary", addr, "path", r.URL.Path, "error", err)
			writeError(w, http.StatusServiceUnavailable, "shoal: primary manager "+addr+" unreachable: "+err.Error())
		},
	}
}

var (
	versionPrefix = regexp.MustCompile(`^/v[0-9]+(\.[0-9]+)?`)
	hijackPath    = regexp.MustCompile(`^/(containers/[^/]+/attach|exec/[^/]+/start)$`)
)

// ServeHTTP serves /_ping, /metrics and /info locally, the rest on the primary; a
// request already forwarded once that reaches a replica is refused.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := versionPrefix.ReplaceAllString(r.URL.Path, "")
	switch {
	case p == "/_ping", p == "/metrics": // each manager's metrics are its own
		h.local.ServeHTTP(w, r)
		return
	case p == "/info" && r.Method == http.MethodGet:
		h.serveInfo(w, r)
		return
	}
	h.mu.RLock()
	primary, proxy := h.primary, h.proxy
	h.mu.RUnlock()
	switch {
	case primary == h.self:
		h.local.ServeHTTP(w, r)
	case r.Header.Get(ForwardedHeader) != "":
		h.log.Debug("replication: refused a forwarded request", "from", r.Header.Get(ForwardedHeader), "primary", primary, "path", r.URL.Path)
		writeError(w, http.StatusServiceUnavailable, "shoal: this manager is not the primary (primary: "+orUnknown(primary)+"); retry")
	case primary == "":
		writeError(w, http.StatusServiceUnavailable, "shoal: no primary manager elected yet")
	case r.Header.Get("Upgrade") != "" || (r.Method == http.MethodPost && hijackPath.MatchString(p)):
		h.hijack(w, r, primary)
	default:
		proxy.ServeHTTP(w, r)
	}
}

func orUnknown(addr string) string {
	if addr == "" {
		return "not elected yet"
	}
	return addr
}

// serveInfo lets the local manager answer and adds its role to
// SystemStatus, as classic Swarm did ("Role", "Primary").
func (h *Handler) serveInfo(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	h.local.ServeHTTP(rec, r)
	primary, self := h.Primary()
	var info map[string]any
	if rec.code != http.StatusOK || json.Unmarshal(rec.body.Bytes(), &info) != nil {
		rec.flush(w)
		return
	}
	role := "replica"
	if self {
		role = "primary"
	}
	status, _ := info["SystemStatus"].([]any)
	status = append(status, []any{"Role", role}, []any{"Primary", primary})
	info["SystemStatus"] = status
	b, err := json.Marshal(info)
	if err != nil {
		rec.flush(w)
		return
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(rec.code)
	_, _ = w.Write(b)
}

type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }

func (r *recorder) flush(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	w.WriteHeader(r.code)
	_, _ = w.Write(r.body.Bytes())
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func (h *Handler) dial(ctx context.Context, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if h.tls == nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	c := h.tls.Clone()
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(addr)
	}
	return (&tls.Dialer{NetDialer: d, Config: c}).DialContext(ctx, "tcp", addr)
}
