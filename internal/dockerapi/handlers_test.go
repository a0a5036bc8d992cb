package dockerapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/volume"
	"github.com/shoal-dev/shoal/internal/backend"
)

// Each noun's handlers are tested over a small fake of its interface
// only; the embedded nil interface panics (500) on anything else.

type fakeContainers struct {
	Containers
	list       backend.ContainerList
	gotList    backend.ContainerListOptions
	gotCreate  backend.ContainerCreateRequest
	gotPrune   backend.PruneOptions
	renameSeen bool
}

func (f *fakeContainers) ListContainers(_ context.Context, o backend.ContainerListOptions) (backend.ContainerList, error) {
	f.gotList = o
	return f.list, nil
}

func (f *fakeContainers) CreateContainer(_ context.Context, r backend.ContainerCreateRequest) (*container.CreateResponse, error) {
	f.gotCreate = r
	return &container.CreateResponse{ID: "abc", Warnings: []string{}}, nil
}

func (f *fakeContainers) ResolveContainer(_ context.Context, ref string) (Target, string, string, error) {
	if ref == "known" {
		return nil, "abc", ref, nil
	}
	return nil, "", "", errdefs.ErrNotFound.WithMessage("No such container: " + ref)
}

func (f *fakeContainers) CheckRename(context.Context, string, string) (func(), error) {
	f.renameSeen = true
	return nil, errdefs.ErrConflict.WithMessage("taken")
}

func (f *fakeContainers) PruneContainers(_ context.Context, o backend.PruneOptions) (*container.PruneReport, error) {
	f.gotPrune = o
	return &container.PruneReport{ContainersDeleted: []string{}}, nil
}

type fakeImages struct {
	Images
	gotList backend.ImageListOptions
	gotTag  backend.ImageTagOptions
	gotRm   backend.ImageRemoveOptions
}

func (f *fakeImages) ListImages(_ context.Context, o backend.ImageListOptions) ([]backend.Object, error) {
	f.gotList = o
	return []backend.Object{{"Id": json.RawMessage(`"sha256:1"`), "Containers": json.RawMessage(`-1`)}}, nil
}

func (f *fakeImages) TagImage(_ context.Context, name string, o backend.ImageTagOptions) error {
	f.gotTag = o
	return nil
}

func (f *fakeImages) RemoveImage(_ context.Context, name string, o backend.ImageRemoveOptions) ([]image.DeleteResponse, error) {
	f.gotRm = o
	return nil, errdefs.ErrNotFound.WithMessage("No such image: " + name)
}

type fakeNetworks struct {
	Networks
	gotCreate backend.ObjectCreateRequest
}

func (f *fakeNetworks) ListNetworks(context.Context, backend.ListOptions) ([]backend.Object, error) {
	return nil, nil
}

func (f *fakeNetworks) CreateNetwork(_ context.Context, r backend.ObjectCreateRequest) (backend.Object, error) {
	f.gotCreate = r
	return backend.Object{"Id": json.RawMessage(`"n1"`), "Warning": json.RawMessage(`""`)}, nil
}

func (f *fakeNetworks) ResolveNetwork(_ context.Context, ref string) (Target, string, error) {
	return nil, "", errdefs.ErrNotFound.WithMessage("network " + ref + " not found")
}

type fakeVolumes struct {
	Volumes
	gotCreate backend.ObjectCreateRequest
}

func (f *fakeVolumes) ListVolumes(context.Context, backend.ListOptions) (*backend.VolumeList, error) {
	return &backend.VolumeList{Volumes: []backend.Object{{"Name": json.RawMessage(`"node1/v"`)}}, Warnings: []string{}}, nil
}

func (f *fakeVolumes) CreateVolume(_ context.Context, r backend.ObjectCreateRequest) (backend.Object, error) {
	f.gotCreate = r
	return backend.Object{"Name": json.RawMessage(`"v"`)}, nil
}

func (f *fakeVolumes) PruneVolumes(context.Context, backend.PruneOptions) (*volume.PruneReport, error) {
	return &volume.PruneReport{VolumesDeleted: []string{"v1", "v2"}, SpaceReclaimed: 5}, nil
}

type fakeEvents struct{ got backend.EventsOptions }

func (f *fakeEvents) Events(_ context.Context, o backend.EventsOptions, w io.Writer) error {
	f.got = o
	return nil
}

type fakeNodes struct{}

func (fakeNodes) Nodes(context.Context, backend.Filters) ([]swarm.Node, error) {
	return []swarm.Node{}, nil
}
func (fakeNodes) UpdateNode(context.Context, string, uint64, swarm.NodeSpec) error {
	return errdefs.ErrNotImplemented
}
func (fakeNodes) RemoveNode(context.Context, string, bool) error { return errdefs.ErrNotImplemented }
func (fakeNodes) Node(_ context.Context, ref string) (*swarm.Node, error) {
	return nil, errdefs.ErrNotFound.WithMessage("node " + ref + " not found")
}

type fakeSystem struct{ System }

func (fakeSystem) Info(context.Context) (json.RawMessage, error) {
	return json.RawMessage(`{"Name":"shoal"}`), nil
}

type fakeBuilds struct{ Builds }

// rawEntry is a container list entry: its JSON fields after Status.
type rawEntry string

func (r rawEntry) AppendJSON(buf []byte, status string) []byte {
	s, _ := json.Marshal(status)
	return append(append(append(append(buf, `{"Status":`...), s...), ','), r+"}"...)
}

func call(s *Server, method, path, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec
}

// wantError checks a Docker JSON error answer.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, code int, msgPrefix string) {
	t.Helper()
	var m struct{ Message string }
	if rec.Code != code || json.Unmarshal(rec.Body.Bytes(), &m) != nil || !strings.HasPrefix(m.Message, msgPrefix) ||
		rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("got %d %q (%s); want %d Docker JSON error %q...", rec.Code, rec.Body.String(), rec.Header().Get("Content-Type"), code, msgPrefix)
	}
}

func TestContainersHandlers(t *testing.T) {
	f := &fakeContainers{list: backend.ContainerList{{Status: "Up", Entry: rawEntry(`"Id":"a"`)}, {Status: "Exited", Entry: rawEntry(`"Id":"b"`)}}}
	s := NewServer(Backends{Containers: f}, "test", nil)

	wantError(t, call(s, "GET", `/containers/json?filters={bad`, ""), 400, "invalid filter: ")
	wantError(t, call(s, "GET", `/containers/json?filters={"foo":["x"]}`, ""), 400, "invalid filter 'foo'")
	wantError(t, call(s, "GET", `/containers/json?filters={"status":{"bogus":true}}`, ""), 400, "invalid filter 'status=bogus'")
	wantError(t, call(s, "POST", `/containers/prune?filters=[`, ""), 400, "invalid filter: ")

	rec := call(s, "GET", `/v1.41/containers/json?all=1&size=true&limit=2&since=x&before=y&filters={"name":["web"]}`, "")
	if rec.Code != 200 || rec.Body.String() != `[{"Status":"Up","Id":"a"},{"Status":"Exited","Id":"b"}]`+"\n" {
		t.Errorf("list: %d %q", rec.Code, rec.Body.String())
	}
	want := backend.ContainerListOptions{All: true, Size: true, Limit: 2, Since: "x", Before: "y", Filters: backend.Filters{"name": {"web"}}}
	if !reflect.DeepEqual(f.gotList, want) {
		t.Errorf("list options %+v, want %+v", f.gotList, want)
	}
	f.list = nil
	if rec := call(s, "GET", "/containers/json?all=no", ""); rec.Body.String() != "[]\n" || f.gotList.All {
		t.Errorf("empty list: %q, all=%v", rec.Body.String(), f.gotList.All)
	}

	wantError(t, call(s, "POST", "/containers/create?name=a/b", `{"Image":"x"}`), 400, "Invalid container name (a/b)")
	wantError(t, call(s, "POST", "/containers/create", " "), 400, "invalid JSON: request body is empty")
	wantError(t, call(s, "POST", "/containers/create", "{"), 400, "invalid JSON: ")
	wantError(t, call(s, "POST", "/containers/create", `{"Env":[]}`), 400, "no image specified")
	body := `{"Image":"busybox","Env":["constraint:node==n1"],"HostConfig":{"Memory":64,"Unmodelled":true}}`
	rec = call(s, "POST", "/v1.44/containers/create?name=/web&platform=linux", body)
	if rec.Code != 201 || rec.Body.String() != `{"Id":"abc","Warnings":[]}`+"\n" {
		t.Errorf("create: %d %q", rec.Code, rec.Body.String())
	}
	g := f.gotCreate
	if g.Name != "web" || g.Platform != "linux" || g.Version != "1.44" || string(g.Body) != body ||
		g.Config.Image != "busybox" || g.Config.HostConfig == nil || g.Config.HostConfig.Memory != 64 {
		t.Errorf("create request %+v", g)
	}

	wantError(t, call(s, "GET", "/containers/nope/json", ""), 404, "No such container: nope")
	wantError(t, call(s, "POST", "/containers/node1/nope/stop", ""), 404, "No such container: node1/nope")
	wantError(t, call(s, "POST", "/containers/known/rename?name=", ""), 400, "Neither old nor new names may be empty")
	wantError(t, call(s, "POST", "/containers/known/rename?name=a%20b", ""), 400, "Invalid container name (a b)")
	if f.renameSeen {
		t.Error("an invalid new name reached the backend")
	}
	wantError(t, call(s, "POST", "/containers/known/rename?name=web2", ""), 409, "taken")
}

func TestImagesHandlers(t *testing.T) {
	f := &fakeImages{}
	s := NewServer(Backends{Images: f, Builds: fakeBuilds{}}, "test", nil)
	wantError(t, call(s, "GET", "/images/json?filters=nope", ""), 400, "invalid filter: ")
	wantError(t, call(s, "POST", "/build?buildargs={", ""), 400, "invalid buildargs: ")
	rec := call(s, "GET", `/v1.41/images/json?all=1&digests=true&filters={"dangling":{"true":true}}`, "")
	if rec.Code != 200 || rec.Body.String() != `[{"Containers":-1,"Id":"sha256:1"}]`+"\n" {
		t.Errorf("list: %d %q", rec.Code, rec.Body.String())
	}
	want := backend.ImageListOptions{Version: "1.41", All: true, Digests: true, Filters: backend.Filters{"dangling": {"true"}}}
	if !reflect.DeepEqual(f.gotList, want) {
		t.Errorf("list options %+v, want %+v", f.gotList, want)
	}
	if rec := call(s, "POST", "/images/busybox/tag?repo=r&tag=t", ""); rec.Code != 201 || f.gotTag != (backend.ImageTagOptions{Repo: "r", Tag: "t"}) {
		t.Errorf("tag: %d %+v", rec.Code, f.gotTag)
	}
	wantError(t, call(s, "DELETE", "/images/nope?force=1&noprune=1", ""), 404, "No such image: nope")
	if !f.gotRm.Force || f.gotRm.Query.Get("noprune") != "1" {
		t.Errorf("remove options %+v", f.gotRm)
	}
	wantError(t, call(s, "POST", "/images/create", ""), 400, "fromImage or fromSrc is required")
}

func TestNetworksAndVolumesHandlers(t *testing.T) {
	n, v := &fakeNetworks{}, &fakeVolumes{}
	s := NewServer(Backends{Networks: n, Volumes: v}, "test", nil)
	wantError(t, call(s, "GET", "/networks?filters={", ""), 400, "invalid filter: ")
	wantError(t, call(s, "GET", "/volumes?filters={", ""), 400, "invalid filter: ")
	wantError(t, call(s, "POST", "/networks/create", "{"), 400, "invalid JSON: ")
	wantError(t, call(s, "POST", "/networks/create", `{"Driver":"bridge"}`), 400, "network name is required")
	wantError(t, call(s, "POST", "/volumes/create", "{"), 400, "invalid JSON: ")
	wantError(t, call(s, "POST", "/networks/prune?filters={", ""), 400, "invalid filter: ")
	wantError(t, call(s, "GET", "/networks/nope", ""), 404, "network nope not found")
	wantError(t, call(s, "POST", "/networks/nope/connect", `{}`), 400, "a container is required")

	if rec := call(s, "GET", "/networks", ""); rec.Code != 200 || rec.Body.String() != "[]\n" {
		t.Errorf("empty network list: %d %q", rec.Code, rec.Body.String())
	}
	rec := call(s, "POST", "/v1.41/networks/create", `{"Name":"node1/net","Driver":"bridge"}`)
	if rec.Code != 201 || rec.Body.String() != `{"Id":"n1","Warning":""}`+"\n" {
		t.Errorf("network create: %d %q", rec.Code, rec.Body.String())
	}
	if n.gotCreate.Name != "node1/net" || n.gotCreate.Version != "1.41" || string(n.gotCreate.Body["Driver"]) != `"bridge"` {
		t.Errorf("network create request %+v", n.gotCreate)
	}
	if rec := call(s, "POST", "/volumes/create", ""); rec.Code != 201 || v.gotCreate.Name != "" || v.gotCreate.Body == nil {
		t.Errorf("volume create without a body: %d %+v", rec.Code, v.gotCreate)
	}
	// The prune report is dockerd's, in its field order.
	if rec := call(s, "POST", "/volumes/prune", ""); rec.Body.String() != `{"VolumesDeleted":["v1","v2"],"SpaceReclaimed":5}`+"\n" {
		t.Errorf("volume prune %q", rec.Body.String())
	}
	// The volume list keeps dockerd's shape: Volumes, then Warnings.
	if rec := call(s, "GET", "/volumes", ""); rec.Body.String() != `{"Volumes":[{"Name":"node1/v"}],"Warnings":[]}`+"\n" {
		t.Errorf("volume list %q", rec.Body.String())
	}
}

func TestEventsNodesSystemHandlers(t *testing.T) {
	ev := &fakeEvents{}
	s := NewServer(Backends{Events: ev, Nodes: fakeNodes{}, System: fakeSystem{}}, "test", nil)
	wantError(t, call(s, "GET", "/events?since=yesterday", ""), 400, `invalid value for since: "yesterday" is not a unix timestamp`)
	wantError(t, call(s, "GET", "/events?filters=x", ""), 400, "invalid filter: ")
	if rec := call(s, "GET", `/v1.50/events?since=1.5&until=2&filters={"type":["node"]}`, ""); rec.Code != 200 {
		t.Errorf("events: %d %q", rec.Code, rec.Body.String())
	}
	want := backend.EventsOptions{Version: "1.50", Since: "1.5", Until: "2", Filters: backend.Filters{"type": {"node"}}}
	if !reflect.DeepEqual(ev.got, want) {
		t.Errorf("events options %+v, want %+v", ev.got, want)
	}
	wantError(t, call(s, "GET", "/nodes?filters={", ""), 400, "invalid filter: ")
	wantError(t, call(s, "GET", "/nodes/nope", ""), 404, "node nope not found")
	if rec := call(s, "GET", "/info", ""); rec.Body.String() != `{"Name":"shoal"}`+"\n" {
		t.Errorf("info %q", rec.Body.String())
	}
	// Without a swarm backend, swarm calls answer as outside a swarm.
	wantError(t, call(s, "GET", "/swarm", ""), 503, "This node is not a swarm manager.")
}

// The "Node" of container inspect keeps classic Swarm's field order.
func TestNodeSummaryShape(t *testing.T) {
	b, _ := json.Marshal(&backend.NodeSummary{ID: "i", IP: "1.2.3.4", Addr: "1.2.3.4:2375", Name: "n1", Cpus: 2, Memory: 8, Labels: map[string]string{}})
	if string(b) != `{"ID":"i","IP":"1.2.3.4","Addr":"1.2.3.4:2375","Name":"n1","Cpus":2,"Memory":8,"Labels":{}}` {
		t.Errorf("node summary %s", b)
	}
}

func TestParseFilters(t *testing.T) {
	for _, raw := range []string{`{"name":{"web":true},"label":{"a=b":true}}`, `{"name":["web"],"label":["a=b"]}`} {
		f, err := parseFilters(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f["name"], []string{"web"}) || !reflect.DeepEqual(f["label"], []string{"a=b"}) {
			t.Errorf("%s → %v", raw, f)
		}
	}
	if _, err := parseFilters(`{bad`); !errdefs.IsInvalidArgument(err) {
		t.Errorf("malformed filters: %v, want an invalid-argument error", err)
	}
}

// fakeTarget is an engine served by an httptest server.
type fakeTarget struct{ srv *httptest.Server }

func (f fakeTarget) Name() string                  { return "node1" }
func (f fakeTarget) APIPath(_, path string) string { return "/v1.41" + path }
func (f fakeTarget) Do(r *http.Request) (*http.Response, error) {
	r.URL.Scheme, r.URL.Host = "http", f.srv.Listener.Addr().String()
	return f.srv.Client().Transport.RoundTrip(r)
}
func (f fakeTarget) Dial(ctx context.Context) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, "tcp", f.srv.Listener.Addr().String())
}

type fakeBuildPlacer struct {
	Builds
	t   Target
	got backend.BuildPlacement
}

// PlaceBuild takes constraint: args out, and a node/ prefix off the network.
func (f *fakeBuildPlacer) PlaceBuild(_ context.Context, req backend.BuildPlacement) (Target, backend.BuildPlacement, error) {
	f.got = req
	send := map[string]*string{}
	for k, v := range req.Args {
		if !strings.HasPrefix(k, "constraint:") {
			send[k] = v
		}
	}
	out := req
	out.Args = send
	if len(send) == len(req.Args) {
		out.Args = nil
	}
	if _, n, ok := strings.Cut(req.NetworkMode, "/"); ok {
		out.NetworkMode = n
	}
	return f.t, out, nil
}

type fakeImagesChanged struct{ Images }

func (fakeImagesChanged) ImagesChanged(Target) {}

// A build reaches the backend with its build args decoded; the engine
// gets the args the backend returns (placement rules taken out), or the
// client's query untouched.
func TestBuildArgsRewritten(t *testing.T) {
	var gotQuery url.Values
	var gotPath string
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery, gotPath = r.URL.Query(), r.URL.Path
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"stream":"ok"}`+"\n")
	}))
	defer engine.Close()
	b := &fakeBuildPlacer{t: fakeTarget{engine}}
	s := NewServer(Backends{Builds: b, Images: fakeImagesChanged{}}, "test", nil)

	args := url.QueryEscape(`{"constraint:node":"=n1","A":"1","B":null}`)
	rec := call(s, "POST", "/build?t=x&buildargs="+args, "")
	if rec.Code != 200 || rec.Body.String() != `{"stream":"ok"}`+"\n" || gotPath != "/v1.41/build" {
		t.Fatalf("build: %d %q at %s", rec.Code, rec.Body.String(), gotPath)
	}
	if v := b.got.Args["constraint:node"]; v == nil || *v != "=n1" || len(b.got.Args) != 3 || b.got.Args["B"] != nil {
		t.Errorf("backend got build args %v", b.got.Args)
	}
	if gotQuery.Get("buildargs") != `{"A":"1","B":null}` || gotQuery.Get("t") != "x" {
		t.Errorf("engine got %v", gotQuery)
	}
	call(s, "POST", "/build?t=y&buildargs="+url.QueryEscape(`{"A":"1"}`), "")
	if gotQuery.Get("buildargs") != `{"A":"1"}` || gotQuery.Get("t") != "y" {
		t.Errorf("without rules the engine got %v", gotQuery)
	}
}

// A build's cachefrom and networkmode reach the backend decoded; the
// engine gets the network mode the backend answers (without its node).
func TestBuildPlacementInputs(t *testing.T) {
	var gotQuery url.Values
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery = r.URL.Query()
		io.WriteString(w, `{"stream":"ok"}`+"\n")
	}))
	defer engine.Close()
	b := &fakeBuildPlacer{t: fakeTarget{engine}}
	s := NewServer(Backends{Builds: b, Images: fakeImagesChanged{}}, "test", nil)

	cf := url.QueryEscape(`["app:cache","base:1"]`)
	if rec := call(s, "POST", "/build?cachefrom="+cf+"&networkmode=node2%2Fbuildnet", ""); rec.Code != 200 {
		t.Fatalf("build: %d %s", rec.Code, rec.Body)
	}
	if fmt.Sprint(b.got.CacheFrom) != "[app:cache base:1]" || b.got.NetworkMode != "node2/buildnet" {
		t.Errorf("backend got %+v", b.got)
	}
	if gotQuery.Get("networkmode") != "buildnet" || gotQuery.Get("cachefrom") != `["app:cache","base:1"]` {
		t.Errorf("engine got %v", gotQuery)
	}
	call(s, "POST", "/build?cachefrom=notjson&networkmode=host", "")
	if b.got.CacheFrom != nil || b.got.NetworkMode != "host" || gotQuery.Get("cachefrom") != "notjson" || gotQuery.Get("networkmode") != "host" {
		t.Errorf("backend got %+v, engine got %v", b.got, gotQuery)
	}
}
