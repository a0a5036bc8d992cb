// Package dockerapi serves the Docker Engine API: it decodes requests,
// handles API versions, routes each call to the Backend, forwards calls an
// engine owns (hijacking attach and exec streams), and turns errors into
// Docker's JSON errors through one table.
package dockerapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/swarm"
)

// Versions shoal speaks to clients.
const (
	APIVersion    = "1.56"
	MinAPIVersion = "1.40"
)

// Backend is what the API needs from the cluster manager.
type Backend interface {
	Info(ctx context.Context) (any, error)
	KernelVersion() string

	// Containers.
	// ListContainers returns the writer of the JSON list, or why not.
	ListContainers(ctx context.Context, q url.Values) (func(io.Writer) error, error)
	CreateContainer(ctx context.Context, name, platform, clientVersion string, body []byte) (*container.CreateResponse, error)
	// ResolveContainer finds the engine holding ref (ID, prefix, name,
	// node/name): the container's ID ("" if no engine has it: then t is
	// any engine, to answer the 404 in its words) and the reference to put
	// in the engine's path.
	ResolveContainer(ctx context.Context, ref string) (t Target, id, pathRef string, err error)
	// ContainerChanged refreshes shoal's view after a forwarded call changed it.
	ContainerChanged(ctx context.Context, t Target, id string, removed bool)
	// InspectNode describes the node of t for the "Node" field of inspect.
	InspectNode(t Target) any
	// CheckRename reserves newName for id, or says it is taken; release ends the reservation.
	CheckRename(ctx context.Context, id, newName string) (release func(), err error)
	PruneContainers(ctx context.Context, q url.Values) (*container.PruneReport, error)

	// Exec instances.
	ExecCreated(t Target, execID string)
	ResolveExec(ctx context.Context, id string) (Target, error)

	// Images.
	ListImages(ctx context.Context, version string, q url.Values) (any, error)
	ResolveImage(ctx context.Context, name string) (Target, error)
	LoadImage(ctx context.Context, body io.Reader, q url.Values, w io.Writer) error
	PullImage(ctx context.Context, q url.Values, auth string, w io.Writer) error
	// ImportImage imports (POST /images/create?fromSrc=...) on every healthy engine.
	ImportImage(ctx context.Context, body io.Reader, q url.Values, w io.Writer) error
	// ImagesChanged refreshes shoal's view of t's images after a forwarded change.
	ImagesChanged(t Target)
	// AnyEngine is a healthy engine for calls any engine can answer (search).
	AnyEngine() (Target, error)
	// PlaceBuild chooses the engine for a build from the constraint:...
	// build args, and returns the query without them.
	PlaceBuild(ctx context.Context, q url.Values) (Target, url.Values, error)
	TagImage(ctx context.Context, name string, q url.Values) error
	RemoveImage(ctx context.Context, name string, q url.Values) ([]image.DeleteResponse, error)

	// Networks and volumes (per node).
	ListNetworks(ctx context.Context, version string, q url.Values) (any, error)
	ListVolumes(ctx context.Context, version string, q url.Values) (any, error)
	CreateNetwork(ctx context.Context, version string, body []byte) (any, error)
	CreateVolume(ctx context.Context, version string, body []byte) (any, error)
	ResolveNetwork(ctx context.Context, ref string) (Target, string, error)
	ResolveVolume(ctx context.Context, ref string) (Target, string, error)
	ResolveNetworkFor(ctx context.Context, network, container string) (t Target, networkID, containerID string, err error)
	ObjectsChanged(t Target)

	// Pool-wide.
	Prune(ctx context.Context, version, path string, q url.Values) (any, error)
	DiskUsage(ctx context.Context, version string, q url.Values) (any, error)
	Events(ctx context.Context, version string, q url.Values, w io.Writer) error

	// Nodes.
	Nodes(ctx context.Context, q url.Values) ([]swarm.Node, error)
	Node(ctx context.Context, ref string) (*swarm.Node, error)
}

// Server is the Docker API HTTP handler.
type Server struct {
	// Debug serves Go's profiles under /debug/pprof/, as dockerd -D does.
	Debug   bool
	b       Backend
	log     *slog.Logger
	rt      router
	version string
}

// New returns the API server for b. version is shoal's own version string.
func New(b Backend, version string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{b: b, log: log, version: version}
	s.routes()
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
	if s.Debug && strings.HasPrefix(path, "/debug/pprof") {
		r.URL.Path = path
		pprofHandler(w, r)
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
	s.log.Debug("api", "method", r.Method, "path", r.URL.Path)
	if err := h(w, r, p); err != nil {
		s.log.Debug("api error", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, err)
	}
}

// unsupported lists API areas shoal knows but does not serve yet.
func unsupported(path string) bool {
	for _, p := range []string{"/networks", "/volumes", "/build", "/commit", "/events", "/system", "/swarm", "/services",
		"/tasks", "/secrets", "/configs", "/plugins", "/session", "/distribution", "/auth", "/grpc", "/images"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

func versionLess(a, b string) bool {
	var a1, a2, b1, b2 int
	fmt.Sscanf(a, "%d.%d", &a1, &a2)
	fmt.Sscanf(b, "%d.%d", &b1, &b2)
	return a1 < b1 || (a1 == b1 && a2 < b2)
}

func (s *Server) routes() {
	rt := &s.rt
	rt.handle("GET", "/_ping", s.ping)
	rt.handle("HEAD", "/_ping", s.ping)
	rt.handle("GET", "/version", s.getVersion)
	rt.handle("GET", "/info", s.getInfo)

	rt.handle("GET", "/containers/json", s.listContainers)
	rt.handle("POST", "/containers/create", s.createContainer)
	rt.handle("POST", "/containers/prune", s.pruneContainers)
	rt.handle("GET", "/containers/{id*}/json", s.inspectContainer)
	for _, a := range []string{"top", "logs", "stats", "changes", "export", "archive"} {
		rt.handle("GET", "/containers/{id*}/"+a, s.containerForward(a, false))
	}
	rt.handle("HEAD", "/containers/{id*}/archive", s.containerForward("archive", false))
	rt.handle("PUT", "/containers/{id*}/archive", s.containerForward("archive", false))
	for _, a := range []string{"start", "stop", "restart", "kill", "pause", "unpause", "update"} {
		rt.handle("POST", "/containers/{id*}/"+a, s.containerForward(a, true))
	}
	for _, a := range []string{"resize", "wait"} {
		rt.handle("POST", "/containers/{id*}/"+a, s.containerForward(a, false))
	}
	rt.handle("POST", "/containers/{id*}/rename", s.renameContainer)
	rt.handle("POST", "/containers/{id*}/attach", s.attachContainer("attach"))
	rt.handle("GET", "/containers/{id*}/attach/ws", s.attachContainer("attach/ws"))
	rt.handle("POST", "/containers/{id*}/exec", s.createExec)
	rt.handle("DELETE", "/containers/{id*}", s.removeContainer)

	rt.handle("POST", "/exec/{id}/start", s.startExec)
	rt.handle("POST", "/exec/{id}/resize", s.execForward("resize"))
	rt.handle("GET", "/exec/{id}/json", s.execForward("json"))

	rt.handle("GET", "/images/json", s.listImages)
	rt.handle("POST", "/images/load", s.loadImage)
	rt.handle("POST", "/images/create", s.createImage)
	rt.handle("GET", "/images/{name*}/json", s.imageForward("json"))
	rt.handle("GET", "/images/{name*}/history", s.imageForward("history"))
	rt.handle("GET", "/images/{name*}/get", s.imageForward("get"))
	rt.handle("POST", "/images/{name*}/push", s.imageForward("push"))
	rt.handle("GET", "/images/search", s.anyEngine("/images/search"))
	rt.handle("POST", "/auth", s.anyEngine("/auth"))
	rt.handle("GET", "/distribution/{name*}/json", s.distribution)
	rt.handle("POST", "/commit", s.commit)
	rt.handle("POST", "/build", s.build)
	rt.handle("GET", "/images/get", s.saveImages)
	rt.handle("POST", "/images/{name*}/tag", s.tagImage)
	rt.handle("DELETE", "/images/{name*}", s.removeImage)

	rt.handle("GET", "/networks", s.listNetworks)
	rt.handle("POST", "/networks/create", s.createNetwork)
	rt.handle("POST", "/networks/prune", s.prune("/networks/prune"))
	rt.handle("GET", "/networks/{id*}", s.networkForward)
	rt.handle("DELETE", "/networks/{id*}", s.networkForward)
	rt.handle("POST", "/networks/{id*}/connect", s.networkConnect("connect"))
	rt.handle("POST", "/networks/{id*}/disconnect", s.networkConnect("disconnect"))
	rt.handle("GET", "/volumes", s.listVolumes)
	rt.handle("POST", "/volumes/create", s.createVolume)
	rt.handle("POST", "/volumes/prune", s.prune("/volumes/prune"))
	rt.handle("GET", "/volumes/{name*}", s.volumeForward)
	rt.handle("DELETE", "/volumes/{name*}", s.volumeForward)
	rt.handle("POST", "/images/prune", s.prune("/images/prune"))
	rt.handle("POST", "/build/prune", s.prune("/build/prune"))
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
}
