// Package ui serves shoal's web console: the front end built from web/
// and embedded here, at /ui/, and the few calls it needs that the Docker
// API does not answer cheaply (a compact map of nodes and containers, and
// exec over a WebSocket). Everything else the browser asks of the Docker
// API itself, on the same origin, under the same identity.
package ui

import (
	"bytes"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// Handler serves /ui and everything under it. The dockerapi server calls
// it after it has identified and authorized the caller as a viewer.
type Handler struct {
	api    http.Handler
	log    *slog.Logger
	assets fs.FS
	index  string // "index.html", or "placeholder.html" before a build
}

// New returns the console over api, the Docker API handler: the console's
// own calls make their requests to it in-process, with the caller's
// context, so the API authorizes each as if the browser had made it.
func New(api http.Handler, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sub, _ := fs.Sub(dist, "dist")
	return newHandler(api, log, sub)
}

func newHandler(api http.Handler, log *slog.Logger, assets fs.FS) *Handler {
	h := &Handler{api: api, log: log, assets: assets, index: "index.html"}
	if _, err := fs.Stat(assets, h.index); err != nil {
		h.index = "placeholder.html"
	}
	return h
}

// ServeHTTP routes /ui, /ui/api/... and the assets.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/ui":
		http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
	case p == "/ui/api/map":
		h.serveMap(w, r)
	case strings.HasPrefix(p, "/ui/api/exec/"):
		h.serveExec(w, r, strings.TrimPrefix(p, "/ui/api/exec/"))
	case strings.HasPrefix(p, "/ui/api/"):
		writeError(w, http.StatusNotFound, "page not found")
	default:
		h.serveAsset(w, r, strings.TrimPrefix(p, "/ui/"))
	}
}

// serveAsset serves one embedded file; the console routes with the URL's
// fragment, so every other path is the index page.
func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	name = path.Clean("/" + name)[1:]
	if name == "" || name == "index.html" || name == "placeholder.html" {
		name = h.index
	} else if _, err := fs.Stat(h.assets, name); err != nil {
		name = h.index
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
	if name == h.index {
		w.Header().Set("Cache-Control", "no-cache")
	}
	b, err := fs.ReadFile(h.assets, name)
	if err != nil {
		writeError(w, http.StatusNotFound, "page not found")
		return
	}
	// ServeContent sets the type from the name and answers ranges and HEAD.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// writeError answers as the Docker API does: {"message": ...}.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = jsonEncode(w, map[string]string{"message": msg})
}
