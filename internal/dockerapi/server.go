// Package dockerapi serves the Docker Engine API: it decodes requests,
// handles API versions, routes each call to the Backend, forwards calls an
// engine owns (hijacking attach and exec streams), and turns errors into
// Docker's JSON errors through one table.
package dockerapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/shoal-dev/shoal/internal/authz"
	"github.com/shoal-dev/shoal/internal/backend"
)

// Versions shoal speaks to clients.
const (
	APIVersion    = "1.56"
	MinAPIVersion = "1.40"
)

// Server is the Docker API HTTP handler.
type Server struct {
	// Debug serves Go's profiles under /debug/pprof/, as dockerd -D does.
	Debug bool
	// MaxBodyBytes caps a request body, except on the routes that stream
	// one (load, build, import, archive upload, attach and exec); 0 is no cap.
	MaxBodyBytes int64
	b            Backends
	log          *slog.Logger
	rt           router
	version      string

	// Authz identifies clients (nil: authz.Default, certificates without
	// a role are admin); every route is authorized by its class.
	Authz *authz.Policy

	// Services serves swarm mode's services and tasks (nil: no store,
	// every service and task call answers 503).
	Services Services

	// Secrets and Configs serve swarm mode's secrets and configs (nil:
	// no store, their calls answer 503).
	Secrets Secrets
	Configs Configs

	// Streams caps the long-lived calls (attach, exec, logs -f, events,
	// uploads...) per client and in all; nil is no cap.
	Streams *StreamLimiter

	// UI serves the web console under /ui (nil: not served, 404).
	UI http.Handler

	// Metrics serves /metrics (nil: 404); Observer is told of every call
	// (observe.go).
	Metrics  http.Handler
	Observer RequestObserver
}

// New returns the API server for b. version is shoal's own version string.
func New(b Backend, version string, log *slog.Logger) *Server {
	return NewServer(All(b), version, log)
}

// NewServer returns the API server for the backends of each noun.
func NewServer(b Backends, version string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{b: b, log: log, version: version, MaxBodyBytes: DefaultMaxBodyBytes}
	s.routes()
	s.rt.wrap(s.limitStreams) // inside authorization: a denied call takes no place
	s.authorizeRoutes()
	s.rt.limitBodies(s.limitBody)
	s.rt.wrap(s.noteRoute)
	return s
}

func (s *Server) setServerHeaders(h http.Header) {
	h.Set("Api-Version", APIVersion)
	h.Set("Docker-Experimental", "false")
	h.Set("Ostype", "linux")
	h.Set("Server", "Docker/shoal-"+s.version+" (linux)")
}

// ServeHTTP strips the version prefix, checks it, routes, and writes errors.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w, r, done := s.observe(w, r) // metrics and the debug request log
	defer done()
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p)
			writeError(w, fmt.Errorf("internal error: %v", p))
		}
	}()
	v, path := splitVersion(r.URL.Path)
	s.setServerHeaders(w.Header())
	if v != "" {
		if versionLess(v, MinAPIVersion) {
			writeError(w, badRequest(fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, MinAPIVersion)))
			return
		}
		if versionLess(APIVersion, v) {
			writeError(w, badRequest(fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", v, APIVersion)))
			return
		}
	}
	r = withVersion(r, v)
	r = s.identify(r)
	if s.Debug && strings.HasPrefix(path, "/debug/pprof") {
		if err := s.authorizeDebug(r); err != nil {
			writeError(w, err)
			return
		}
		r.URL.Path = path
		pprofHandler(w, r)
		return
	}
	if s.UI != nil && isUIPath(path) {
		s.serveUI(w, r, path)
		return
	}
	method := r.Method
	h, p, found := s.rt.match(method, path)
	if h == nil && method == http.MethodHead {
		h, p, found = s.rt.match(http.MethodGet, path)
	}
	if h == nil {
		if found {
			writeError(w, errMethod(r.Method, path))
		} else if unsupported(path) {
			writeError(w, errNotImplemented(r.Method, path))
		} else {
			writeError(w, notFound("page not found"))
		}
		return
	}
	if err := h(w, r, p); err != nil {
		s.log.Debug("api error", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, err)
	}
}

// unsupported lists API areas shoal knows but does not serve yet.
func unsupported(path string) bool {
	for _, p := range []string{"/networks", "/volumes", "/build", "/commit", "/events", "/system", "/swarm",
		"/secrets", "/configs", "/plugins", "/session", "/distribution", "/auth", "/grpc", "/images"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		x, y := "", ""
		if i < len(as) {
			x = strings.TrimLeft(as[i], "0")
		}
		if i < len(bs) {
			y = strings.TrimLeft(bs[i], "0")
		}
		// Compared as digit strings, so a part too long for an int
		// (/v1.99999999999999999999/) is large, not zero.
		if len(x) != len(y) {
			return len(x) < len(y)
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func (s *Server) routes() {
	rt := &s.rt
	rt.handle("GET", "/_ping", s.ping)
	rt.handle("HEAD", "/_ping", s.ping)
	rt.handle("GET", "/version", s.getVersion)
	rt.handle("GET", "/info", s.getInfo)
	rt.handle("GET", "/_shoal/nodes", s.federationNodes)

	rt.handle("GET", "/containers/json", s.listContainers)
	rt.handle("POST", "/containers/create", s.createContainer)
	rt.handle("POST", "/containers/prune", s.pruneContainers)
	rt.handle("GET", "/containers/{id*}/json", s.inspectContainer)
	for _, a := range []string{"top", "logs", "stats", "changes", "export", "archive"} {
		rt.handle("GET", "/containers/{id*}/"+a, s.containerForward(a, false))
	}
	rt.handle("HEAD", "/containers/{id*}/archive", s.containerForward("archive", false))
	rt.handleStream("PUT", "/containers/{id*}/archive", s.containerForward("archive", false))
	for _, a := range []string{"start", "stop", "restart", "kill", "pause", "unpause", "update"} {
		rt.handle("POST", "/containers/{id*}/"+a, s.containerForward(a, true))
	}
	for _, a := range []string{"resize", "wait"} {
		rt.handle("POST", "/containers/{id*}/"+a, s.containerForward(a, false))
	}
	rt.handle("POST", "/containers/{id*}/rename", s.renameContainer)
	rt.handleStream("POST", "/containers/{id*}/attach", s.attachContainer("attach"))
	rt.handleStream("GET", "/containers/{id*}/attach/ws", s.attachContainer("attach/ws"))
	rt.handle("POST", "/containers/{id*}/exec", s.createExec)
	rt.handle("DELETE", "/containers/{id*}", s.removeContainer)

	rt.handleStream("POST", "/exec/{id}/start", s.startExec)
	rt.handle("POST", "/exec/{id}/resize", s.execForward("resize"))
	rt.handle("GET", "/exec/{id}/json", s.execForward("json"))

	rt.handle("GET", "/images/json", s.listImages)
	rt.handleStream("POST", "/images/load", s.loadImage)
	rt.handleStream("POST", "/images/create", s.createImage)
	rt.handle("GET", "/images/{name*}/json", s.imageForward("json"))
	rt.handle("GET", "/images/{name*}/history", s.imageForward("history"))
	rt.handle("GET", "/images/{name*}/get", s.imageForward("get"))
	rt.handle("POST", "/images/{name*}/push", s.imageForward("push"))
	rt.handle("GET", "/images/search", s.anyEngine("/images/search"))
	rt.handle("POST", "/auth", s.anyEngine("/auth"))
	rt.handle("GET", "/distribution/{name*}/json", s.distribution)
	rt.handle("POST", "/commit", s.commit)
	rt.handleStream("POST", "/build", s.build)
	rt.handle("GET", "/images/get", s.saveImages)
	rt.handle("POST", "/images/{name*}/tag", s.tagImage)
	rt.handle("DELETE", "/images/{name*}", s.removeImage)

	rt.handle("GET", "/networks", s.listNetworks)
	rt.handle("POST", "/networks/create", s.createNetwork)
	rt.handle("POST", "/networks/prune", s.prune(func(r *http.Request, o backend.PruneOptions) (any, error) {
		return s.b.Networks.PruneNetworks(r.Context(), o)
	}))
	rt.handle("GET", "/networks/{id*}", s.networkForward)
	rt.handle("DELETE", "/networks/{id*}", s.networkForward)
	rt.handle("POST", "/networks/{id*}/connect", s.networkConnect("connect"))
	rt.handle("POST", "/networks/{id*}/disconnect", s.networkConnect("disconnect"))
	rt.handle("GET", "/volumes", s.listVolumes)
	rt.handle("GET", "/plugins", s.listPlugins)
	rt.handle("POST", "/volumes/create", s.createVolume)
	rt.handle("POST", "/volumes/prune", s.prune(func(r *http.Request, o backend.PruneOptions) (any, error) {
		return s.b.Volumes.PruneVolumes(r.Context(), o)
	}))
	rt.handle("GET", "/volumes/{name*}", s.volumeForward)
	rt.handle("DELETE", "/volumes/{name*}", s.volumeForward)
	rt.handle("POST", "/images/prune", s.prune(func(r *http.Request, o backend.PruneOptions) (any, error) {
		return s.b.Images.PruneImages(r.Context(), o)
	}))
	rt.handle("POST", "/build/prune", s.prune(func(r *http.Request, o backend.PruneOptions) (any, error) {
		return s.b.Builds.PruneBuildCache(r.Context(), o)
	}))
	rt.handle("GET", "/system/df", s.diskUsage)
	rt.handle("GET", "/events", s.events)

	rt.handle("GET", "/nodes", s.listNodes)
	rt.handle("GET", "/nodes/{id}", s.inspectNode)
	rt.handle("POST", "/nodes/{id}/update", s.updateNode)
	rt.handle("DELETE", "/nodes/{id}", s.removeNode)
	rt.handle("GET", "/swarm", s.inspectSwarm)
	rt.handle("POST", "/swarm/init", s.swarmInit("init"))
	rt.handle("POST", "/swarm/join", s.swarmInit("join"))
	rt.handle("POST", "/swarm/leave", s.swarmInit("leave"))
	rt.handle("POST", "/swarm/update", s.updateSwarm)
	s.serviceRoutes()
	s.secretRoutes()
	s.lockRoutes()
	s.metricsRoutes()
}

// prune serves a pool-wide prune through the noun's backend; run returns
// the noun's typed report.
func (s *Server) prune(run func(*http.Request, backend.PruneOptions) (any, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ params) error {
		opts, err := pruneOptions(r)
		if err != nil {
			return err
		}
		v, err := run(r, opts)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, v)
	}
}
