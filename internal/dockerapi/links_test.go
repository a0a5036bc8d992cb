package dockerapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// linkContainers resolves links only; a container lookup is a failure.
type linkContainers struct {
	Containers
	t       Target
	gotLink string
	changed string
}

func (f *linkContainers) ResolveLink(_ context.Context, ref string) (Target, string, string, error) {
	f.gotLink = ref
	return f.t, "parentid", "web/db", nil
}

func (f *linkContainers) ContainerChanged(_ context.Context, _ Target, id string, removed bool) {
	if !removed {
		f.changed = id
	}
}

// `docker rm --link /web/db` (DELETE /containers/web/db?link=1) names a
// parent and a link alias, not a node and a container: it goes to the
// parent's engine as parent/alias, and the parent is refreshed.
func TestRemoveLinkRoute(t *testing.T) {
	var gotPath, gotLink string
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotLink = r.URL.Path, r.URL.Query().Get("link")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer engine.Close()
	f := &linkContainers{t: fakeTarget{engine}}
	s := NewServer(Backends{Containers: f}, "test", nil)
	rec := call(s, "DELETE", "/v1.41/containers/web/db?link=1", "")
	if rec.Code != http.StatusNoContent || gotPath != "/v1.41/containers/web/db" || gotLink != "1" {
		t.Fatalf("rm --link: %d %s; engine got %s link=%q", rec.Code, rec.Body, gotPath, gotLink)
	}
	if f.gotLink != "web/db" {
		t.Errorf("ResolveLink got %q", f.gotLink)
	}
	if f.changed != "parentid" {
		t.Errorf("parent refreshed: %q", f.changed)
	}
}
