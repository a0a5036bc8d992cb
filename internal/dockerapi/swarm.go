package dockerapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
)

func (s *Server) swarmBackend() (Swarm, error) {
	if s.b.Swarm == nil {
		return nil, errNotManager
	}
	return s.b.Swarm, nil
}

var errNotManager = errdefs.ErrUnavailable.WithMessage("This node is not a swarm manager.")

// swarmHeader is the _ping "Swarm" header dockerd sends, e.g. "active/manager".
func (s *Server) swarmHeader() string {
	sb := s.b.Swarm
	if sb == nil {
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
	if !mayReadJoinTokens(r) {
		c := *sw // the backend's value is not ours to change
		c.JoinTokens = swarm.JoinTokens{}
		sw = &c
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
	u := backend.SwarmUpdate{Version: version}
	if u.Spec, err = swarmSpec(r.Body); err != nil {
		return err
	}
	u.RotateWorkerToken, _ = strconv.ParseBool(q.Get("rotateWorkerToken"))
	u.RotateManagerToken, _ = strconv.ParseBool(q.Get("rotateManagerToken"))
	u.RotateManagerUnlockKey, _ = strconv.ParseBool(q.Get("rotateManagerUnlockKey"))
	if err := sb.UpdateSwarm(r.Context(), u); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// swarmSpec decodes an update's spec; an empty body (shoal join-token
// --rotate sends none) changes nothing but what the flags say.
func swarmSpec(body io.Reader) (*swarm.Spec, error) {
	var spec swarm.Spec
	err := json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&spec)
	switch {
	case errors.Is(err, io.EOF):
		return nil, nil
	case err != nil:
		return nil, badRequest("invalid swarm spec: " + err.Error())
	}
	return &spec, nil
}

// errNoSwarm is dockerd's answer to leaving when there is no swarm.
var errNoSwarm = errdefs.ErrUnavailable.WithMessage("This node is not part of a swarm")

// swarmInit answers `docker swarm init` (and join/leave) as dockerd does for
// a node in a swarm; a classic shoal is told how to make one.
func (s *Server) swarmInit(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ params) error {
		if sb := s.b.Swarm; sb != nil {
			if st, _ := sb.SwarmStatus(); st != string(swarm.LocalNodeStateInactive) {
				if action == "leave" {
					if err := sb.LeaveSwarm(r.Context(), boolValue(r.URL.Query().Get("force"))); err != nil {
						return err
					}
					w.WriteHeader(http.StatusOK)
					return nil
				}
				return errdefs.ErrUnavailable.WithMessage(`This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.`)
			}
		}
		if action == "leave" {
			// dockerd's answer outside a swarm; SDKs' teardown (docker-py's
			// leave_swarm(force=True)) takes this 503 as "nothing to leave".
			return errNoSwarm
		}
		return errdefs.ErrNotImplemented.WithMessage("docker swarm " + action + " is not supported by shoal manage: create a built-in cluster with \"shoal init\" and add hosts with \"shoal join --token\"")
	}
}
