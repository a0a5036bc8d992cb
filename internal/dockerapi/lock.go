package dockerapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"

	"github.com/shoal-dev/shoal/internal/backend"
)

// Autolock: swarm update --autolock, swarm unlock-key and swarm unlock,
// and the API a manager serves while it waits to be unlocked.

// Locker is autolock on a manager of the built-in cluster; the Swarm
// backend implements it when it has one. (swarm update's autolock and
// rotateManagerUnlockKey reach the cluster through UpdateSwarm.)
type Locker interface {
	// UnlockKey is the current unlock key, "" when autolock is off.
	UnlockKey(ctx context.Context) (string, error)
}

// Unlocker unlocks a locked manager (docker swarm unlock): it fails with
// dockerd's errors for a malformed or wrong key and returns once the
// manager serves its full API.
type Unlocker interface {
	Unlock(ctx context.Context, key string) error
	// Unlocked says whether the right key was given and the manager is
	// starting (info then says "pending").
	Unlocked() bool
}

// errSwarmLocked is dockerd's answer to every swarm call on a locked manager.
var errSwarmLocked = errdefs.ErrUnavailable.WithMessage(`Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.`)

// errStarting answers the calls of a manager unlocked but not serving yet.
var errStarting = errdefs.ErrUnavailable.WithMessage("This manager is unlocked and starting: its store waits for a quorum of managers (unlock the other managers if they are locked too).")

// errNotLocked is dockerd's answer to an unlock of a manager that runs.
var errNotLocked = errdefs.ErrConflict.WithMessage("swarm is not locked")

func (s *Server) locker() (Locker, error) {
	sb, err := s.swarmBackend()
	if err != nil {
		return nil, err
	}
	l, ok := sb.(Locker)
	if !ok {
		return nil, errNotManager
	}
	return l, nil
}

// lockRoutes are the autolock routes of a running manager.
func (s *Server) lockRoutes() {
	s.rt.handle("GET", "/swarm/unlockkey", s.getUnlockKey)
	s.rt.handle("POST", "/swarm/unlock", func(http.ResponseWriter, *http.Request, params) error {
		if _, err := s.swarmBackend(); err != nil {
			return err
		}
		return errNotLocked
	})
}

func (s *Server) getUnlockKey(w http.ResponseWriter, r *http.Request, _ params) error {
	l, err := s.locker()
	if err != nil {
		return err
	}
	key, err := l.UnlockKey(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, swarm.UnlockKeyResponse{UnlockKey: key})
}

// LockedNode is what a locked manager's /info says of it.
type LockedNode struct {
	Hostname string
	NodeAddr string
}

// NewLocked is the API of a manager whose keys are locked: _ping,
// version, info (Swarm.LocalNodeState "locked") and swarm unlock; every
// other call gets dockerd's 503 asking for docker swarm unlock. Routes are
// authorized as the full API's (unlock, unclassified, is an admin's call);
// set Authz to the full API's policy.
func NewLocked(u Unlocker, node LockedNode, version string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := Backends{System: lockedSystem{node: node, version: version, u: u}, Swarm: lockedSwarm{u: u}}
	s := &Server{b: b, log: log, version: version, MaxBodyBytes: DefaultMaxBodyBytes}
	rt := &s.rt
	rt.handle("GET", "/_ping", s.ping)
	rt.handle("HEAD", "/_ping", s.ping)
	rt.handle("GET", "/version", s.getVersion)
	rt.handle("GET", "/info", s.getInfo)
	rt.handle("POST", "/swarm/unlock", s.unlock(u))
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "DELETE"} {
		rt.handle(m, "/{path*}", func(http.ResponseWriter, *http.Request, params) error { return lockedErr(u) })
	}
	s.authorizeRoutes()
	rt.limitBodies(s.limitBody)
	return s
}

func (s *Server) unlock(u Unlocker) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ params) error {
		var req swarm.UnlockRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
			return badRequest("invalid unlock request: " + err.Error())
		}
		if err := u.Unlock(r.Context(), req.UnlockKey); err != nil {
			s.log.Warn("swarm unlock refused", "remote", r.RemoteAddr, "err", err)
			return err
		}
		s.log.Info("swarm unlocked", "remote", r.RemoteAddr)
		w.WriteHeader(http.StatusOK)
		return nil
	}
}

// lockedErr is the answer to the calls a locked manager does not serve.
func lockedErr(u Unlocker) error {
	if u.Unlocked() {
		return errStarting
	}
	return errSwarmLocked
}

// lockedSystem answers version and info for a locked manager.
type lockedSystem struct {
	node    LockedNode
	version string
	u       Unlocker
}

func (l lockedSystem) Info(context.Context) (json.RawMessage, error) {
	host := l.node.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	info := system.Info{
		Name: host, ServerVersion: "shoal/" + l.version, OSType: runtime.GOOS, Architecture: runtime.GOARCH,
		NCPU: runtime.NumCPU(), OperatingSystem: "shoal", KernelVersion: l.KernelVersion(),
		Swarm: swarm.Info{NodeAddr: l.node.NodeAddr, LocalNodeState: swarm.LocalNodeStateLocked, Error: errSwarmLocked.Error()},
	}
	if l.u.Unlocked() {
		info.Swarm.LocalNodeState, info.Swarm.Error = swarm.LocalNodeStatePending, ""
	}
	return json.Marshal(info)
}

func (lockedSystem) KernelVersion() string { return "" }

func (l lockedSystem) DiskUsage(context.Context, backend.DiskUsageOptions) (backend.Report, error) {
	return nil, lockedErr(l.u)
}

func (l lockedSystem) FederationNodes(context.Context) (json.RawMessage, error) {
	return nil, lockedErr(l.u)
}

// lockedSwarm is the _ping header's swarm state of a locked manager.
type lockedSwarm struct{ u Unlocker }

func (l lockedSwarm) Swarm(context.Context) (*swarm.Swarm, error) { return nil, lockedErr(l.u) }

func (l lockedSwarm) UpdateSwarm(context.Context, backend.SwarmUpdate) error { return lockedErr(l.u) }

func (l lockedSwarm) SwarmStatus() (string, bool) {
	if l.u.Unlocked() {
		return string(swarm.LocalNodeStatePending), false
	}
	return string(swarm.LocalNodeStateLocked), false
}

func (l lockedSwarm) LeaveSwarm(context.Context, bool) error { return lockedErr(l.u) }
