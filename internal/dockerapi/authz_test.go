package dockerapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/authz"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/replica"
)

// A route added without a class would be admin-only by accident: every
// route must be in routeRules, and routeRules must name no route that
// does not exist.
func TestEveryRouteIsClassified(t *testing.T) {
	s := NewServer(Backends{}, "test", nil)
	served := map[string]bool{}
	for _, rt := range s.rt.routes {
		served[rt.key] = true
		if _, ok := routeRules[rt.key]; !ok {
			t.Errorf("route %q has no class in routeRules", rt.key)
		}
	}
	for key := range routeRules {
		if !served[key] {
			t.Errorf("routeRules classifies %q, which is not served", key)
		}
	}
	if r := ruleOf("POST /brand/new"); r.class != authz.Admin {
		t.Errorf("an unclassified route is %v, want admin", r.class)
	}
}

// Reads a viewer must not make: they hand out file contents or a shell.
func TestViewerReadsExcludeContents(t *testing.T) {
	for _, key := range []string{
		"GET /containers/{id*}/archive", "HEAD /containers/{id*}/archive", "GET /containers/{id*}/export",
		"GET /containers/{id*}/attach/ws", "GET /images/get", "GET /images/{name*}/get",
	} {
		if c := routeRules[key].class; c < authz.Operate {
			t.Errorf("%s is %v: a viewer could read file contents", key, c)
		}
	}
	for key, r := range routeRules {
		if strings.HasPrefix(key, "POST /swarm/") || strings.HasPrefix(key, "POST /nodes/") || strings.HasPrefix(key, "DELETE /nodes/") {
			if r.class != authz.Admin {
				t.Errorf("%s is %v, want admin", key, r.class)
			}
		}
	}
}

// verifiedAs is a client certificate as a TLS handshake verified it.
func verifiedAs(cn string, ous ...string) *tls.ConnectionState {
	leaf := &x509.Certificate{Subject: pkix.Name{CommonName: cn, OrganizationalUnit: ous}}
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf}}}
}

func callAs(s http.Handler, cs *tls.ConnectionState, method, path, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.TLS = cs
	s.ServeHTTP(rec, r)
	return rec
}

var (
	viewer   = verifiedAs("vera", "shoal-viewer")
	operator = verifiedAs("otto", "shoal-operator")
	admin    = verifiedAs("ada", "shoal-admin")
	webOp    = verifiedAs("wes", "shoal-operator", "scope:team=web")
)

// scopedContainers holds containers with labels; lists honour the id and
// label filters as the manager does.
type scopedContainers struct {
	Containers
	labels  map[string]map[string]string // ID (= name) → labels
	gotList backend.ContainerListOptions
	created []byte
}

func (f *scopedContainers) ResolveContainer(_ context.Context, ref string) (Target, string, string, error) {
	if _, ok := f.labels[ref]; ok {
		return nil, ref, ref, nil
	}
	return nil, "", ref, nil
}

func (f *scopedContainers) ListContainers(_ context.Context, o backend.ContainerListOptions) (backend.ContainerList, error) {
	f.gotList = o
	var out backend.ContainerList
	for id, l := range f.labels {
		if ids := o.Filters["id"]; len(ids) > 0 && ids[0] != id {
			continue
		}
		in := true
		for _, kv := range o.Filters["label"] {
			k, v, _ := strings.Cut(kv, "=")
			in = in && l[k] == v
		}
		if in {
			out = append(out, backend.ListedContainer{Status: "Up", Entry: rawEntry(`"Id":"` + id + `"`)})
		}
	}
	return out, nil
}

func (f *scopedContainers) CreateContainer(_ context.Context, r backend.ContainerCreateRequest) (*container.CreateResponse, error) {
	return &container.CreateResponse{ID: "new", Warnings: []string{}}, nil
}

func TestDenialsByRole(t *testing.T) {
	f := &scopedContainers{labels: map[string]map[string]string{"web": {"team": "web"}, "db": {"team": "db"}}}
	s := NewServer(Backends{Containers: f, Nodes: fakeNodes{}}, "test", nil)
	for _, tc := range []struct {
		who          *tls.ConnectionState
		method, path string
		body         string
		denied       string // "" when allowed, else the message
	}{
		{viewer, "POST", "/v1.45/containers/web/exec", `{"Cmd":["sh"]}`, "authorization denied: vera (viewer) may not exec into containers"},
		{viewer, "POST", "/containers/web/stop", "", "authorization denied: vera (viewer) may not stop containers"},
		{viewer, "GET", "/containers/web/archive?path=/etc", "", "authorization denied: vera (viewer) may not copy files from containers"},
		{viewer, "POST", "/containers/create", `{"Image":"busybox"}`, "authorization denied: vera (viewer) may not create containers"},
		{viewer, "GET", "/containers/json", "", ""},
		{viewer, "GET", "/nodes", "", ""},
		{operator, "POST", "/nodes/n1/update?version=1", `{}`, "authorization denied: otto (operator) may not update nodes"},
		{operator, "DELETE", "/nodes/n1", "", "authorization denied: otto (operator) may not remove nodes"},
		{operator, "POST", "/swarm/leave", "", "authorization denied: otto (operator) may not leave the swarm"},
		{operator, "POST", "/containers/create", `{"Image":"busybox","HostConfig":{"Privileged":true}}`, "authorization denied: otto (operator) may not run privileged containers"},
		{operator, "POST", "/containers/create", `{"Image":"busybox","HostConfig":{"Binds":["/:/host"]}}`, "authorization denied: otto (operator) may not bind-mount host paths (/)"},
		{operator, "POST", "/containers/create", `{"Image":"busybox","HostConfig":{"NetworkMode":"host"}}`, "authorization denied: otto (operator) may not use the host's network namespace"},
		{operator, "POST", "/containers/create", `{"Image":"busybox","HostConfig":{"CapAdd":["NET_ADMIN"]}}`, "authorization denied: otto (operator) may not add capabilities (NET_ADMIN)"},
		{operator, "POST", "/containers/web/exec", `{"Cmd":["sh"],"Privileged":true}`, "authorization denied: otto (operator) may not exec privileged processes"},
		{operator, "POST", "/containers/web/update", `{"Devices":[{"PathOnHost":"/dev/mem"}]}`, "authorization denied: otto (operator) may not give containers host devices"},
		{operator, "POST", "/volumes/create", `{"Name":"etc","DriverOpts":{"type":"none","o":"bind","device":"/etc"}}`, "authorization denied: otto (operator) may not create volumes that bind host paths or devices"},
		{operator, "POST", "/build?networkmode=host", "", "authorization denied: otto (operator) may not build with the host's network"},
		{webOp, "POST", "/containers/create", `{"Image":"busybox","Labels":{"team":"db"}}`, "authorization denied: wes (operator) may not create containers outside its scope (team=web)"},
		{webOp, "POST", "/containers/create", `{"Image":"busybox","HostConfig":{"NetworkMode":"container:db"}}`, "No such container: db"},
		{webOp, "GET", "/containers/db/json", "", "No such container: db"},
		{webOp, "POST", "/containers/db/stop", "", "No such container: db"},
		{webOp, "POST", "/commit?container=db", "", "No such container: db"},
		{webOp, "GET", "/system/df", "", "authorization denied: wes (operator) may not read disk usage (scoped to team=web)"},
		{webOp, "POST", "/volumes/prune", "", "authorization denied: wes (operator) may not prune volumes (scoped to team=web)"},
		{verifiedAs("nobody", "shoal-viewer", "scope:a=1", "scope:a=2"), "GET", "/containers/json", "", "authorization denied: nobody (none) may not list containers"},
	} {
		rec := callAs(s, tc.who, tc.method, tc.path, tc.body)
		if tc.denied == "" {
			if rec.Code == http.StatusForbidden {
				t.Errorf("%s %s: refused: %s", tc.method, tc.path, rec.Body)
			}
			continue
		}
		code := http.StatusForbidden
		if strings.HasPrefix(tc.denied, "No such") {
			code = http.StatusNotFound
		}
		var m struct{ Message string }
		if rec.Code != code || json.Unmarshal(rec.Body.Bytes(), &m) != nil || m.Message != tc.denied {
			t.Errorf("%s %s: got %d %s, want %d %q", tc.method, tc.path, rec.Code, rec.Body, code, tc.denied)
		}
	}
}

// A scoped client's lists (and prunes, and events) carry its scope as a
// label filter, added to its own.
func TestScopedListsAreFiltered(t *testing.T) {
	f := &scopedContainers{labels: map[string]map[string]string{"web": {"team": "web"}, "db": {"team": "db"}}}
	s := NewServer(Backends{Containers: f}, "test", nil)
	rec := callAs(s, webOp, "GET", `/containers/json?all=1&filters={"label":["tier=front"]}`, "")
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "db") {
		t.Errorf("scoped list: %d %s", rec.Code, rec.Body)
	}
	if got := slices.Sorted(slices.Values(f.gotList.Filters["label"])); !slices.Equal(got, []string{"team=web", "tier=front"}) {
		t.Errorf("label filters: %v", got)
	}
	rec = callAs(s, operator, "GET", `/containers/json?all=1`, "")
	if !strings.Contains(rec.Body.String(), "db") || len(f.gotList.Filters["label"]) != 0 {
		t.Errorf("unscoped list: %s %v", rec.Body, f.gotList.Filters)
	}
}

// tokenSwarm is a swarm manager with join tokens.
type tokenSwarm struct{}

func (tokenSwarm) SwarmStatus() (string, bool)                            { return "active", true }
func (tokenSwarm) UpdateSwarm(context.Context, backend.SwarmUpdate) error { return nil }
func (tokenSwarm) LeaveSwarm(context.Context, bool) error                 { return nil }

func (tokenSwarm) Swarm(context.Context) (*swarm.Swarm, error) {
	return &swarm.Swarm{JoinTokens: swarm.JoinTokens{Worker: "SWMTKN-1-w", Manager: "SWMTKN-1-m"}}, nil
}

// Join tokens let anyone become a node (a manager token: get the CA's key
// role): only admins see them.
func TestJoinTokensAdminsOnly(t *testing.T) {
	s := NewServer(Backends{Swarm: tokenSwarm{}}, "test", nil)
	for _, tc := range []struct {
		who  *tls.ConnectionState
		want string
	}{{admin, "SWMTKN-1-m"}, {verifiedAs("m1", "swarm-manager"), "SWMTKN-1-m"}, {operator, ""}, {viewer, ""}, {verifiedAs("w1", "swarm-worker"), ""}} {
		rec := callAs(s, tc.who, "GET", "/swarm", "")
		var sw swarm.Swarm
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &sw) != nil || sw.JoinTokens.Manager != tc.want || (tc.want == "") != (sw.JoinTokens.Worker == "") {
			t.Errorf("GET /swarm: %d %s, want manager token %q", rec.Code, rec.Body, tc.want)
		}
	}
	if rec := callAs(s, operator, "POST", "/swarm/update?version=1&rotateWorkerToken=true", "{}"); rec.Code != http.StatusForbidden {
		t.Errorf("rotate as operator: %d", rec.Code)
	}
}

func TestDebugAdminsOnly(t *testing.T) {
	s := NewServer(Backends{}, "test", nil)
	s.Debug = true
	if rec := callAs(s, operator, "GET", "/debug/pprof/", ""); rec.Code != http.StatusForbidden {
		t.Errorf("pprof as operator: %d", rec.Code)
	}
	if rec := callAs(s, admin, "GET", "/debug/pprof/", ""); rec.Code != http.StatusOK {
		t.Errorf("pprof as admin: %d", rec.Code)
	}
}

// A default role of none leaves a certificate without a role only the ping.
func TestDefaultRoleNone(t *testing.T) {
	s := NewServer(Backends{System: fakeSystem{}}, "test", nil)
	s.Authz = &authz.Policy{DefaultRole: authz.RoleNone}
	if rec := callAs(s, verifiedAs("stranger", "eng"), "GET", "/_ping", ""); rec.Code != http.StatusOK {
		t.Errorf("ping: %d", rec.Code)
	}
	if rec := callAs(s, verifiedAs("stranger", "eng"), "GET", "/info", ""); rec.Code != http.StatusForbidden {
		t.Errorf("info: %d", rec.Code)
	}
}

// Guard checks a caller where it connected (a replica) and hands the
// request on authorized; what it refuses never reaches next.
func TestGuard(t *testing.T) {
	f := &scopedContainers{labels: map[string]map[string]string{"web": {"team": "web"}, "db": {"team": "db"}}}
	s := NewServer(Backends{Containers: f}, "test", nil)
	var got *http.Request
	var gotBody string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b := make([]byte, 4096)
		n, _ := r.Body.Read(b)
		gotBody = string(b[:n])
		w.WriteHeader(http.StatusNoContent)
	})
	g := s.Guard(next)
	for _, tc := range []struct {
		who          *tls.ConnectionState
		method, path string
		body         string
	}{
		{viewer, "POST", "/v1.41/containers/web/exec", `{"Cmd":["sh"]}`},
		{operator, "POST", "/v1.41/containers/create", `{"Image":"busybox","HostConfig":{"Privileged":true}}`},
		{webOp, "POST", "/v1.41/containers/db/kill", ``},
		{operator, "GET", "/debug/pprof/heap", ``},
		{operator, "POST", "/v1.41/plugins/pull", `{}`}, // a newer primary's route: admin only
	} {
		got = nil
		rec := callAs(g, tc.who, tc.method, tc.path, tc.body)
		if rec.Code != http.StatusForbidden && rec.Code != http.StatusNotFound || got != nil {
			t.Errorf("%s %s: %d, forwarded %v", tc.method, tc.path, rec.Code, got != nil)
		}
	}
	rec := callAs(g, webOp, "POST", "/v1.41/containers/create?name=x", `{"Image":"busybox"}`)
	if rec.Code != http.StatusNoContent || got == nil || !strings.Contains(gotBody, `"team":"web"`) {
		t.Fatalf("scoped create: %d, forwarded body %q", rec.Code, gotBody)
	}
	if id, ok := authz.From(got.Context()); !ok || id.Name != "wes" || got.Context().Value(authorizedKey{}) == nil {
		t.Errorf("forwarded request: identity %+v %v, authorized %v", id, ok, got.Context().Value(authorizedKey{}))
	}
	// The local server serving a guarded request does not check it again.
	local := httptest.NewRecorder()
	s.ServeHTTP(local, got.Clone(got.Context()))
	if local.Code == http.StatusForbidden {
		t.Errorf("local server refused a guarded request: %s", local.Body)
	}
}

// hostContainers are containers on one engine, "root" privileged.
type hostContainers struct {
	Containers
	t Target
}

func (f *hostContainers) ResolveContainer(_ context.Context, ref string) (Target, string, string, error) {
	return f.t, ref + "-id", ref, nil
}

// An operator may not get a shell in, attach to or copy files of a
// container an admin gave host access: that would be the host.
func TestNoShellInHostContainers(t *testing.T) {
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.41/containers/root/json":
			fmt.Fprint(w, `{"Id":"root-id","HostConfig":{"Privileged":true,"Binds":null}}`)
		case "/v1.41/containers/web/json":
			fmt.Fprint(w, `{"Id":"web-id","HostConfig":{"Privileged":false,"Binds":["data:/data"]}}`)
		default:
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"Id":"e1"}`)
		}
	}))
	defer engine.Close()
	s := NewServer(Backends{Containers: &hostContainers{t: fakeTarget{engine}}, Execs: fakeExecs{}}, "test", nil)
	for _, tc := range []struct {
		method, path, body, denied string
	}{
		{"POST", "/containers/root/exec", `{"Cmd":["sh"]}`, "authorization denied: otto (operator) may not exec into containers that have host access"},
		{"POST", "/containers/root/attach?stream=1", ``, "authorization denied: otto (operator) may not attach to containers that have host access"},
		{"GET", "/containers/root/archive?path=/", ``, "authorization denied: otto (operator) may not copy files from containers that have host access"},
		{"PUT", "/containers/root/archive?path=/", ``, "authorization denied: otto (operator) may not copy files into containers that have host access"},
		{"GET", "/containers/root/export", ``, "authorization denied: otto (operator) may not export containers that have host access"},
		{"POST", "/containers/web/exec", `{"Cmd":["sh"]}`, ""},
	} {
		rec := callAs(s, operator, tc.method, tc.path, tc.body)
		if tc.denied == "" {
			if rec.Code != http.StatusCreated {
				t.Errorf("%s %s: %d %s", tc.method, tc.path, rec.Code, rec.Body)
			}
			continue
		}
		wantError(t, rec, http.StatusForbidden, tc.denied)
	}
	if rec := callAs(s, admin, "POST", "/containers/root/exec", `{"Cmd":["sh"]}`); rec.Code != http.StatusCreated {
		t.Errorf("admin exec: %d %s", rec.Code, rec.Body)
	}
}

type fakeExecs struct{ Execs }

func (fakeExecs) ExecCreated(Target, string) {}

// As run.Manage wires it: a replica forwards to the primary under its own
// admin certificate, so Guard must refuse before the replica forwards.
func TestGuardedReplicaForwardsOnlyAuthorizedCalls(t *testing.T) {
	var mu sync.Mutex
	var reached []string
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reached = append(reached, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, "[]")
	}))
	defer primary.Close()
	f := &scopedContainers{labels: map[string]map[string]string{"web": {"team": "web"}}}
	s := NewServer(Backends{Containers: f}, "test", nil)
	rep := replica.New(s, "127.0.0.1:1", nil, slog.New(slog.DiscardHandler))
	rep.SetPrimary(strings.TrimPrefix(primary.URL, "http://"))
	front := s.Guard(rep)

	if rec := callAs(front, viewer, "POST", "/v1.41/containers/web/exec", `{"Cmd":["sh"]}`); rec.Code != http.StatusForbidden {
		t.Errorf("viewer exec through a replica: %d %s", rec.Code, rec.Body)
	}
	if rec := callAs(front, operator, "POST", "/v1.41/containers/create", `{"Image":"busybox","HostConfig":{"Privileged":true}}`); rec.Code != http.StatusForbidden {
		t.Errorf("operator --privileged through a replica: %d %s", rec.Code, rec.Body)
	}
	if rec := callAs(front, viewer, "GET", "/v1.41/containers/json", ""); rec.Code != http.StatusOK {
		t.Errorf("viewer ps through a replica: %d %s", rec.Code, rec.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reached) != 1 || reached[0] != "GET /v1.41/containers/json" {
		t.Errorf("the primary got %v, want the list only", reached)
	}
}

// oneNetwork is a network "shared" on the engine t serves.
type oneNetwork struct {
	Networks
	t Target
}

func (n oneNetwork) ResolveNetwork(_ context.Context, ref string) (Target, string, error) {
	return n.t, "net1", nil
}

// A scoped caller's network inspect lists only its scope's containers; an
// unscoped caller's is the engine's answer.
func TestScopedNetworkInspect(t *testing.T) {
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"Name":"shared","Id":"net1","Containers":{"web":{"Name":"web","IPv4Address":"10.0.0.2/24"},"db":{"Name":"db","IPv4Address":"10.0.0.3/24"}}}`)
	}))
	defer engine.Close()
	f := &scopedContainers{labels: map[string]map[string]string{"web": {"team": "web"}, "db": {"team": "db"}}}
	s := NewServer(Backends{Containers: f, Networks: oneNetwork{t: fakeTarget{engine}}}, "test", nil)
	for _, tc := range []struct {
		who  *tls.ConnectionState
		want []string
	}{{webOp, []string{"web"}}, {operator, []string{"db", "web"}}} {
		rec := callAs(s, tc.who, "GET", "/networks/shared", "")
		var got struct {
			Name       string
			Containers map[string]json.RawMessage
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &got) != nil || got.Name != "shared" {
			t.Fatalf("network inspect: %d %s", rec.Code, rec.Body)
		}
		if ids := slices.Sorted(maps.Keys(got.Containers)); !slices.Equal(ids, tc.want) {
			t.Errorf("containers seen: %v, want %v", ids, tc.want)
		}
	}
}
