package dockerapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/moby/moby/api/types/swarm"
)

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, _ params) error {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	list, err := s.b.Nodes.Nodes(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) inspectNode(w http.ResponseWriter, r *http.Request, p params) error {
	n, err := s.b.Nodes.Node(r.Context(), p["id"])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, n)
}

func (s *Server) updateNode(w http.ResponseWriter, r *http.Request, p params) error {
	q := r.URL.Query()
	version, err := strconv.ParseUint(q.Get("version"), 10, 64)
	if err != nil {
		return badRequest("invalid node version '" + q.Get("version") + "': " + err.Error())
	}
	var spec swarm.NodeSpec
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&spec); err != nil {
		return badRequest("invalid node spec: " + err.Error())
	}
	if err := s.b.Nodes.UpdateNode(r.Context(), p["id"], version, spec); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) removeNode(w http.ResponseWriter, r *http.Request, p params) error {
	force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	if err := s.b.Nodes.RemoveNode(r.Context(), p["id"], force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
