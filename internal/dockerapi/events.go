package dockerapi

import "net/http"

func (s *Server) events(w http.ResponseWriter, r *http.Request, _ params) error {
	opts, err := eventsOptions(r)
	if err != nil {
		return err
	}
	fw := s.streamJSON(w)
	return fw.finish(s.b.Events.Events(r.Context(), opts, fw))
}
