package dockerapi

import (
	"net/http"
	"testing"

	"github.com/shoal-dev/shoal/internal/authz"
)

// The console is a viewer's to look at, under the caller's identity, with
// the version prefix stripped; without UI /ui is not served.
func TestUIViewersOnly(t *testing.T) {
	s := NewServer(Backends{}, "test", nil)
	s.Authz = &authz.Policy{DefaultRole: authz.RoleNone}
	if rec := callAs(s, viewer, "GET", "/ui/", ""); rec.Code != http.StatusNotFound {
		t.Errorf("/ui/ without a console: %d, want 404", rec.Code)
	}
	var gotPath string
	var gotRole authz.Role
	s.UI = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := authz.From(r.Context())
		gotPath, gotRole = r.URL.Path, id.Role
	})
	if rec := callAs(s, viewer, "GET", "/v1.47/ui/api/map", ""); rec.Code != http.StatusOK || gotPath != "/ui/api/map" || gotRole != authz.RoleViewer {
		t.Errorf("as viewer: %d, console got %q as %v", rec.Code, gotPath, gotRole)
	}
	gotPath = ""
	rec := callAs(s, verifiedAs("stranger", "eng"), "GET", "/ui/", "")
	if rec.Code != http.StatusForbidden || gotPath != "" {
		t.Errorf("as none: %d (console reached: %q), want 403", rec.Code, gotPath)
	}
	if rec := callAs(s, viewer, "GET", "/uix", ""); gotPath != "" || rec.Code != http.StatusNotFound {
		t.Errorf("/uix: %d, console reached: %q", rec.Code, gotPath)
	}
}

// A replica's Guard lets a viewer's console requests on to the primary,
// and no one's below a viewer.
func TestUIGuard(t *testing.T) {
	s := NewServer(Backends{}, "test", nil)
	s.Authz = &authz.Policy{DefaultRole: authz.RoleNone}
	reached := false
	g := s.Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
	if rec := callAs(g, viewer, "GET", "/ui/api/map", ""); rec.Code != http.StatusOK || !reached {
		t.Errorf("viewer through a replica: %d, reached %v", rec.Code, reached)
	}
	reached = false
	if rec := callAs(g, verifiedAs("stranger", "eng"), "GET", "/ui/", ""); rec.Code != http.StatusForbidden || reached {
		t.Errorf("role none through a replica: %d, reached %v", rec.Code, reached)
	}
}
