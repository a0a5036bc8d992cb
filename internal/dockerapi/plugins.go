package dockerapi

import (
	"net/http"
)

// listPlugins is docker plugin ls: every engine's plugins, each with the
// node it is on (as listed networks and volumes are). Installing and
// managing plugins is per engine: address the engine itself for that.
func (s *Server) listPlugins(w http.ResponseWriter, r *http.Request, _ params) error {
	if s.b.Plugins == nil {
		return errNotImplemented(r.Method, "/plugins")
	}
	list, err := s.b.Plugins.ListPlugins(r.Context(), apiVersion(r), r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}
