package dockerapi

import (
	"encoding/json"
	"io"
	"net/http"
)

// createExec forwards an exec create to the container's engine and
// remembers which engine holds the new exec instance.
func (s *Server) createExec(w http.ResponseWriter, r *http.Request, p params) error {
	t, _, ref, err := s.b.Containers.ResolveContainer(r.Context(), p["id"])
	if err != nil {
		return err
	}
	resp, err := roundTrip(r, t, "/containers/"+ref+"/exec")
	if err != nil || resp == nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 == 2 {
		var ex struct {
			ID string `json:"Id"`
		}
		if json.Unmarshal(b, &ex) == nil && ex.ID != "" {
			s.b.Execs.ExecCreated(t, ex.ID)
		}
	}
	copyHeader(w.Header(), resp.Header)
	s.setServerHeaders(w.Header())
	w.Header().Del("Content-Length")
	w.WriteHeader(resp.StatusCode)
	_, err = w.Write(b)
	return err
}

func (s *Server) startExec(w http.ResponseWriter, r *http.Request, p params) error {
	t, err := s.b.Execs.ResolveExec(r.Context(), p["id"])
	if err != nil {
		return err
	}
	return s.hijack(w, r, t, "/exec/"+p["id"]+"/start")
}

func (s *Server) execForward(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p params) error {
		t, err := s.b.Execs.ResolveExec(r.Context(), p["id"])
		if err != nil {
			return err
		}
		_, err = s.forward(w, r, t, "/exec/"+p["id"]+"/"+action)
		return err
	}
}
