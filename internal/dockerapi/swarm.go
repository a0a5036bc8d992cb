package dockerapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
)

// SwarmBackend is the optional part of a Backend that serves swarm mode's
// swarm and node-write calls (the built-in cluster).
type SwarmBackend interface {
	Swarm(ctx context.Context) (*swarm.Swarm, error)
	UpdateSwarm(ctx context.Context, version uint64, rotateWorker, rotateManager bool) error
	UpdateNode(ctx context.Context, ref string, version uint64, spec swarm.NodeSpec) error
	RemoveNode(ctx context.Context, ref string, force bool) error
	// SwarmStatus is the local node state and whether this is a manager.
	SwarmStatus() (state string, manager bool)
}

func (s *Server) swarmBackend() (SwarmBackend, error) {
	sb, ok := s.b.(SwarmBackend)
	if !ok {
		return nil, errdefs.ErrUnavailable.WithMessage("This node is not a swarm manager.")
	}
	return sb, nil
}

// swarmHeader is the _ping "Swarm" header dockerd sends, e.g. "active/manager".
func (s *Server) swarmHeader() string {
	sb, ok := s.b.(SwarmBackend)
	if !ok {
		return ""
	}
	st, mgr := sb.SwarmStatus()
	if st == string(swarm.LocalNodeStateInactive) {
		return "" // classic mode keeps answering as it always did
	}
	if mgr {
		return st + "/manager"
	}
	return st + "/worker"
}

func (s *Server) inspectSwarm(w http.ResponseWriter, r *http.Request, _ params) error {
	sb, err := s.swarmBackend()
	if err != nil {
		return err
	}
	sw, err := sb.Swarm(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sw)
}

func (s *Server) updateSwarm(w http.ResponseWriter, r *http.Request, _ params) error {
	sb, err := s.swarmBackend()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	version, err := strconv.ParseUint(q.Get("version"), 10, 64)
	if err != nil {
		return badRequest("invalid swarm version '" + q.Get("version") + "': " + err.Error())
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20)) // the spec is not editable yet
	rw, _ := strconv.ParseBool(q.Get("rotateWorkerToken"))
	rm, _ := strconv.ParseBool(q.Get("rotateManagerToken"))
	if err := sb.UpdateSwarm(r.Context(), version, rw, rm); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) updateNode(w http.ResponseWriter, r *http.Request, p params) error {
	sb, err := s.swarmBackend()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	version, err := strconv.ParseUint(q.Get("version"), 10, 64)
	if err != nil {
		return badRequest("invalid node version '" + q.Get("version") + "': " + err.Error())
	}
	var spec swarm.NodeSpec
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&spec); err != nil {
		return badRequest("invalid node spec: " + err.Error())
	}
	if err := sb.UpdateNode(r.Context(), p["id"], version, spec); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) removeNode(w http.ResponseWriter, r *http.Request, p params) error {
	sb, err := s.swarmBackend()
	if err != nil {
		return err
	}
	force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	if err := sb.RemoveNode(r.Context(), p["id"], force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// swarmInit answers `docker swarm init` (and join/leave) as dockerd does for
// a node in a swarm; a classic shoal is told how to make one.
func (s *Server) swarmInit(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ params) error {
		if sb, ok := s.b.(SwarmBackend); ok {
			if st, _ := sb.SwarmStatus(); st != string(swarm.LocalNodeStateInactive) {
				if action == "leave" {
					return errdefs.ErrNotImplemented.WithMessage("docker swarm leave is not supported by shoal yet: stop the shoal process of this node, then remove it with docker node rm")
				}
				return errdefs.ErrUnavailable.WithMessage(`This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.`)
			}
		}
		return errdefs.ErrNotImplemented.WithMessage("docker swarm " + action + " is not supported by shoal manage: create a built-in cluster with \"shoal init\" and add hosts with \"shoal join --token\"")
	}
}
