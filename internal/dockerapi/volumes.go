package dockerapi

import (
	"net/http"
)

func (s *Server) listVolumes(w http.ResponseWriter, r *http.Request, _ params) error {
	opts, err := listOptions(r)
	if err != nil {
		return err
	}
	v, err := s.b.Volumes.ListVolumes(r.Context(), opts)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *Server) createVolume(w http.ResponseWriter, r *http.Request, _ params) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := objectCreateRequest(r, body, false)
	if err != nil {
		return err
	}
	v, err := s.b.Volumes.CreateVolume(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, v)
}

func (s *Server) volumeForward(w http.ResponseWriter, r *http.Request, p params) error {
	t, name, err := s.b.Volumes.ResolveVolume(r.Context(), p["name"])
	if err != nil {
		return err
	}
	status, err := s.forward(w, r, t, "/volumes/"+name)
	if err == nil && r.Method == http.MethodDelete && status/100 == 2 {
		s.b.Volumes.ObjectsChanged(t)
	}
	return err
}
