package dockerapi

import (
	"net/http"
	"strings"

	"github.com/shoal-dev/shoal/internal/authz"
)

// uiRule guards the web console: looking needs a viewer; what the console
// then does through the API (scale, rollback, exec) is authorized there,
// call by call, under the same identity.
var uiRule = routeRule{authz.Read, "use the web console"}

// isUIPath reports whether path is the web console's (/ui or under /ui/).
func isUIPath(path string) bool { return path == "/ui" || strings.HasPrefix(path, "/ui/") }

// serveUI authorizes the caller and hands the request to the console with
// the version prefix stripped and the identity in its context.
func (s *Server) serveUI(w http.ResponseWriter, r *http.Request, path string) {
	if _, err := s.authorize(r, "GET /ui", uiRule, nil); err != nil {
		writeError(w, err)
		return
	}
	r.URL.Path = path
	s.UI.ServeHTTP(w, r)
}
