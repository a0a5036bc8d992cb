package dockerapi

import (
	"encoding/json"
	"net/http"

	"github.com/shoal-dev/shoal/internal/authz"
	"github.com/shoal-dev/shoal/internal/backend"
)

func (s *Server) listNetworks(w http.ResponseWriter, r *http.Request, _ params) error {
	opts, err := listOptions(r)
	if err != nil {
		return err
	}
	list, err := s.b.Networks.ListNetworks(r.Context(), opts)
	if err != nil {
		return err
	}
	if list == nil {
		list = []backend.Object{}
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) createNetwork(w http.ResponseWriter, r *http.Request, _ params) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := objectCreateRequest(r, body, true)
	if err != nil {
		return err
	}
	v, err := s.b.Networks.CreateNetwork(r.Context(), req)
	if err != nil {
		var labels map[string]string
		_ = json.Unmarshal(req.Body["Labels"], &labels) // absent: none
		s.undoRefusedStack(r.Context(), labels, err)    // stacks.go
		return err
	}
	return writeJSON(w, http.StatusCreated, v)
}

// networkForward serves inspect and remove on the network's node.
func (s *Server) networkForward(w http.ResponseWriter, r *http.Request, p params) error {
	if done, err := s.clusterNetwork(w, r, p["id"]); done { // networks_cluster.go
		return err
	}
	t, id, err := s.b.Networks.ResolveNetwork(r.Context(), p["id"])
	if err != nil {
		return err
	}
	if who, ok := authz.From(r.Context()); ok && who.Scoped() && r.Method == http.MethodGet {
		return s.scopedNetwork(w, r, t, id, who)
	}
	status, err := s.forward(w, r, t, "/networks/"+id)
	if err == nil && r.Method == http.MethodDelete && status/100 == 2 {
		s.b.Networks.ObjectsChanged(t)
	}
	return err
}

// networkConnect serves connect and disconnect: the network is looked up
// on the container's node.
func (s *Server) networkConnect(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p params) error {
		body, err := readBody(r)
		if err != nil {
			return err
		}
		var req map[string]json.RawMessage
		if err := json.Unmarshal(body, &req); err != nil {
			return badRequest("invalid JSON: " + err.Error())
		}
		var cref string
		_ = json.Unmarshal(req["Container"], &cref)
		if cref == "" {
			return badRequest("a container is required")
		}
		t, netID, cid, err := s.b.Networks.ResolveNetworkFor(r.Context(), p["id"], cref)
		if err != nil {
			return err
		}
		req["Container"], _ = json.Marshal(cid)
		if body, err = json.Marshal(req); err != nil {
			return err
		}
		r.Body = http.NoBody
		r2 := r.Clone(r.Context())
		r2.Body = readCloser(body)
		r2.ContentLength = int64(len(body))
		status, err := s.forward(w, r2, t, "/networks/"+netID+"/"+action)
		if err == nil && status/100 == 2 {
			// the container's view lists its networks
			s.b.Containers.ContainerChanged(r.Context(), t, cid, false)
		}
		return err
	}
}
