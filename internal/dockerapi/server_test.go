package dockerapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/containerd/errdefs"
)

func TestRouterWildcards(t *testing.T) {
	var rt router
	hit := ""
	h := func(name string) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request, p params) error { hit = name; return nil }
	}
	rt.handle("GET", "/containers/json", h("list"))
	rt.handle("GET", "/containers/{id*}/json", h("inspect"))
	rt.handle("POST", "/containers/{id*}/attach", h("attach"))
	rt.handle("GET", "/containers/{id*}/attach/ws", h("ws"))
	rt.handle("DELETE", "/containers/{id*}", h("rm"))
	rt.handle("POST", "/exec/{id}/start", h("exec"))
	for _, tc := range []struct {
		method, path, want, param string
	}{
		{"GET", "/containers/json", "list", ""},
		{"GET", "/containers/abc/json", "inspect", "abc"},
		{"GET", "/containers/node1/web/json", "inspect", "node1/web"},
		{"POST", "/containers/node1/web/attach", "attach", "node1/web"},
		{"GET", "/containers/web/attach/ws", "ws", "web"},
		{"DELETE", "/containers/node1/web", "rm", "node1/web"},
		{"POST", "/exec/123/start", "exec", "123"},
	} {
		hit = ""
		hf, p, _ := rt.match(tc.method, tc.path)
		if hf == nil {
			t.Errorf("%s %s: no route", tc.method, tc.path)
			continue
		}
		_ = hf(nil, nil, p)
		if hit != tc.want || (tc.param != "" && p["id"] != tc.param) {
			t.Errorf("%s %s: got %s id=%q, want %s id=%q", tc.method, tc.path, hit, p["id"], tc.want, tc.param)
		}
	}
	if hf, _, found := rt.match("PUT", "/containers/x/json"); hf != nil || !found {
		t.Errorf("PUT on a GET route: handler %v found %v; want none, path found", hf != nil, found)
	}
	if hf, _, found := rt.match("POST", "/exec//start"); hf != nil || found {
		t.Errorf("empty single segment must not match")
	}
}

func TestSplitVersion(t *testing.T) {
	for _, tc := range []struct{ in, v, rest string }{
		{"/v1.41/containers/json", "1.41", "/containers/json"},
		{"/containers/json", "", "/containers/json"},
		{"/v1.50", "1.50", "/"},
		{"/vx/containers", "", "/vx/containers"},
	} {
		v, rest := splitVersion(tc.in)
		if v != tc.v || rest != tc.rest {
			t.Errorf("splitVersion(%q) = %q, %q; want %q, %q", tc.in, v, rest, tc.v, tc.rest)
		}
	}
}

func serve(t *testing.T, method, path string) (*httptest.ResponseRecorder, string) {
	t.Helper()
	s := NewServer(Backends{}, "test", nil) // no backends: requests that reach one panic
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	var m struct{ Message string }
	if rec.Code != 200 {
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s %s: %d body %q is not Docker JSON: %v", method, path, rec.Code, rec.Body.String(), err)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
	}
	return rec, m.Message
}

func TestServeErrorsAndVersions(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		code         int
		msg          string
	}{
		{"GET", "/_ping", 200, ""},
		{"HEAD", "/v1.41/_ping", 200, ""},
		{"GET", "/v1.24/_ping", 400, "client version 1.24 is too old. Minimum supported API version is 1.40, please upgrade your client to a newer version"},
		{"GET", "/v1.99/_ping", 400, "client version 1.99 is too new. Maximum supported API version is " + APIVersion},
		{"GET", "/v1.41/nothing/here", 404, "page not found"},
		{"GET", "/plugins", 501, "GET /plugins is not supported by shoal yet"},
		{"GET", "/secrets", 503, errNoSecrets.Error()},
		{"GET", "/services", 503, errNoServices.Error()},
		{"GET", "/v1.99999999999999999999/_ping", 400, "client version 1.99999999999999999999 is too new. Maximum supported API version is " + APIVersion},
		{"GET", "/v2.0/_ping", 400, "client version 2.0 is too new. Maximum supported API version is " + APIVersion},
		{"POST", "/v1.41/swarm/leave?force=1", 503, "This node is not part of a swarm"},
		{"POST", "/v1.50/swarm/init", 501, "docker swarm init is not supported by shoal manage: create a built-in cluster with \"shoal init\" and add hosts with \"shoal join --token\""},
		{"POST", "/v1.50/plugins/pull", 501, "POST /plugins/pull is not supported by shoal yet"},
		{"POST", "/v1.50/configs/create", 503, errNoSecrets.Error()},
		{"POST", "/v1.50/services/create", 503, errNoServices.Error()},
	} {
		rec, msg := serve(t, tc.method, tc.path)
		if rec.Code != tc.code || msg != tc.msg {
			t.Errorf("%s %s = %d %q; want %d %q", tc.method, tc.path, rec.Code, msg, tc.code, tc.msg)
		}
		if rec.Header().Get("Api-Version") != APIVersion {
			t.Errorf("%s %s: Api-Version header %q", tc.method, tc.path, rec.Header().Get("Api-Version"))
		}
	}
	rec, _ := serve(t, "GET", "/_ping")
	if rec.Body.String() != "OK" {
		t.Errorf("ping body %q", rec.Body.String())
	}
}

func TestPanicBecomesJSON500(t *testing.T) {
	// The nil System panics on Info: the client must get a 500 JSON error.
	rec, msg := serve(t, "GET", "/info")
	if rec.Code != 500 || msg == "" {
		t.Fatalf("got %d %q", rec.Code, msg)
	}
}

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{errdefs.ErrInvalidArgument.WithMessage("x"), 400},
		{errdefs.ErrNotFound.WithMessage("x"), 404},
		{errdefs.ErrConflict.WithMessage("x"), 409},
		{errdefs.ErrUnavailable.WithMessage("x"), 503},
		{errdefs.ErrNotImplemented.WithMessage("x"), 501},
		{errors.New("boom"), 500},
		{wrapped{errdefs.ErrNotFound.WithMessage("x")}, 404},
	} {
		if got := statusOf(tc.err); got != tc.want {
			t.Errorf("statusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

type wrapped struct{ err error }

func (w wrapped) Error() string { return "node1: " + w.err.Error() }
func (w wrapped) Unwrap() error { return w.err }

func TestAddField(t *testing.T) {
	got := string(addField([]byte(`{"Id":"x","Name":"/web"}`+"\n"), "Node", map[string]string{"Name": "n1"}))
	want := `{"Id":"x","Name":"/web","Node":{"Name":"n1"}}` + "\n"
	if got != want {
		t.Errorf("addField = %q, want %q", got, want)
	}
	if got := string(addField([]byte(`{}`), "A", 1)); got != `{"A":1}`+"\n" {
		t.Errorf("empty object: %q", got)
	}
	if got := string(addField([]byte(`[1]`), "A", 1)); got != `[1]` {
		t.Errorf("non-object changed: %q", got)
	}
}
