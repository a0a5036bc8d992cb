package dockerapi

import (
	"encoding/json"
	"net/http"
)

func (s *Server) listNetworks(w http.ResponseWriter, r *http.Request, _ params) error {
	v, err := s.b.ListNetworks(r.Context(), apiVersion(r), r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) listVolumes(w http.ResponseWriter, r *http.Request, _ params) error {
	v, err := s.b.ListVolumes(r.Context(), apiVersion(r), r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) createNetwork(w http.ResponseWriter, r *http.Request, _ params) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	v, err := s.b.CreateNetwork(r.Context(), apiVersion(r), body)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, v)
}

func (s *Server) createVolume(w http.ResponseWriter, r *http.Request, _ params) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	v, err := s.b.CreateVolume(r.Context(), apiVersion(r), body)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, v)
}

// networkForward serves inspect and remove on the network's node.
func (s *Server) networkForward(w http.ResponseWriter, r *http.Request, p params) error {
	t, id, err := s.b.ResolveNetwork(r.Context(), p["id"])
	if err != nil {
		return err
	}
	status, err := s.forward(w, r, t, "/networks/"+id)
	if err == nil && r.Method == http.MethodDelete && status/100 == 2 {
		s.b.ObjectsChanged(t)
	}
	return err
}

func (s *Server) volumeForward(w http.ResponseWriter, r *http.Request, p params) error {
	t, name, err := s.b.ResolveVolume(r.Context(), p["name"])
	if err != nil {
		return err
	}
	status, err := s.forward(w, r, t, "/volumes/"+name)
	if err == nil && r.Method == http.MethodDelete && status/100 == 2 {
		s.b.ObjectsChanged(t)
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
		t, netID, cid, err := s.b.ResolveNetworkFor(r.Context(), p["id"], cref)
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
			s.b.ContainerChanged(r.Context(), t, cid, false)
		}
		return err
	}
}

func (s *Server) prune(path string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ params) error {
		v, err := s.b.Prune(r.Context(), apiVersion(r), path, r.URL.Query())
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) diskUsage(w http.ResponseWriter, r *http.Request, _ params) error {
	v, err := s.b.DiskUsage(r.Context(), apiVersion(r), r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, _ params) error {
	fw := s.streamJSON(w)
	return fw.finish(s.b.Events(r.Context(), apiVersion(r), r.URL.Query(), fw))
}
