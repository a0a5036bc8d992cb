package ui

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gorilla/websocket"

	"github.com/shoal-dev/shoal/internal/authz"
)

func get(h http.Handler, path string, hdr map[string]string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	h.ServeHTTP(rec, r)
	return rec
}

// Before a build the placeholder page is served; after one, the console,
// for every path that is not an asset (it routes by the fragment).
func TestAssets(t *testing.T) {
	before := newHandler(nil, nil, fstest.MapFS{"placeholder.html": {Data: []byte("not built")}})
	if rec := get(before, "/ui/", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), "not built") {
		t.Errorf("before a build: %d %q", rec.Code, rec.Body)
	}
	built := newHandler(nil, nil, fstest.MapFS{
		"placeholder.html": {Data: []byte("not built")},
		"index.html":       {Data: []byte("<html>console</html>")},
		"app.js":           {Data: []byte("console.log(1)")},
	})
	for path, want := range map[string]string{"/ui/": "console</html>", "/ui/app.js": "console.log", "/ui/nodes/x": "console</html>", "/ui/../../etc/passwd": "console</html>"} {
		rec := get(built, path, nil)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s: %d %q, want %q", path, rec.Code, rec.Body, want)
		}
	}
	if ct := get(built, "/ui/app.js", nil).Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("app.js Content-Type %q", ct)
	}
	if csp := get(built, "/ui/", nil).Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q: nothing may load from elsewhere", csp)
	}
	if rec := get(built, "/ui", nil); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/ui/" {
		t.Errorf("/ui: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec := get(built, "/ui/api/nope", nil); rec.Code != 404 || !strings.Contains(rec.Body.String(), `"message"`) {
		t.Errorf("/ui/api/nope: %d %q", rec.Code, rec.Body)
	}
}

// The embedded file system holds at least the placeholder, so a plain go
// build (before npm) serves a page that says what to do.
func TestEmbeddedPlaceholder(t *testing.T) {
	h := New(nil, nil)
	if rec := get(h, "/ui/", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), "console") {
		t.Errorf("/ui/: %d %q", rec.Code, rec.Body)
	}
}

// fakeAPI answers /info and /containers/json as shoal's API does, and
// records who asked.
type fakeAPI struct {
	listStatus int
	asked      []authz.Role
}

const fakeInfo = `{"Name":"shoal","ServerVersion":"shoal/1.0","Containers":3,"ContainersRunning":2,"ContainersStopped":1,"NCPU":4,"MemTotal":2048,
"DriverStatus":[["Strategy","spread"],["Nodes","2"],
 [" node1","10.0.0.1:2375"],["  └ ID","N1"],["  └ Status","Healthy"],["  └ Containers","2 (1 Running, 0 Paused, 1 Stopped)"],["  └ Reserved CPUs","0.5 / 2"],["  └ Reserved Memory","1 GiB / 1 GiB"],["  └ Labels","zone=a, ssd=1"],["  └ Error","(none)"],["  └ ServerVersion","28.0.1"],
 [" eu","10.0.0.2:2375"],["  └ ID","M1"],["  └ Status","Unhealthy"],["  └ Containers","1"],["  └ Reserved CPUs","0 / 2"],["  └ Reserved Memory","0 B / 1 GiB"],["  └ Labels",""],["  └ Kind","shoal member: 3 nodes (2 healthy)"],["  └ Error","connection refused"],["  └ ServerVersion","shoal/1.0"]],
"Warnings":["WARNING: node eu (10.0.0.2:2375) is unhealthy"]}`

const fakeList = `[
 {"Id":"aaaaaaaaaaaa1111","Names":["/node1/web"],"Image":"nginx","State":"running","Labels":{}},
 {"Id":"bbbbbbbbbbbb2222","Names":["/node1/web.1.x"],"Image":"nginx","State":"exited","Labels":{"com.docker.swarm.service.name":"web"}},
 {"Id":"cccccccccccc3333","Names":["/eu/inner1/db"],"Image":"postgres","State":"running","Labels":{}},
 {"Id":"dddddddddddd4444","Names":["/gone/x"],"Image":"nginx","State":"running","Labels":{}}
]`

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, _ := authz.From(r.Context())
	f.asked = append(f.asked, id.Role)
	switch r.URL.Path {
	case "/info":
		io.WriteString(w, fakeInfo)
	case "/containers/json":
		if r.URL.Query().Get("all") != "1" {
			http.Error(w, `{"message":"all=1 expected"}`, 400)
			return
		}
		if f.listStatus != 0 {
			w.WriteHeader(f.listStatus)
			io.WriteString(w, `{"message":"denied by the API"}`)
			return
		}
		io.WriteString(w, fakeList)
	default:
		w.WriteHeader(404)
		io.WriteString(w, `{"message":"page not found"}`)
	}
}

func mapAs(h http.Handler, role authz.Role, gz bool) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/ui/api/map", nil)
	if gz {
		r.Header.Set("Accept-Encoding", "gzip")
	}
	r = r.WithContext(authz.With(r.Context(), authz.Identity{Name: "vera", Role: role}))
	h.ServeHTTP(rec, r)
	return rec
}

// The map is /info's nodes and the container list made compact, asked of
// the API as the caller; a member shoal is marked, its containers keep
// their inner node in the name.
func TestMap(t *testing.T) {
	api := &fakeAPI{}
	h := newHandler(api, nil, fstest.MapFS{})
	rec := mapAs(h, authz.RoleViewer, true)
	if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("map: %d %q", rec.Code, rec.Body)
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m Map
	if err := json.NewDecoder(zr).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if m.Role != "viewer" || len(api.asked) != 2 || api.asked[0] != authz.RoleViewer || api.asked[1] != authz.RoleViewer {
		t.Errorf("role %q, API asked as %v: want the caller's", m.Role, api.asked)
	}
	if len(m.Nodes) != 2 {
		t.Fatalf("nodes: %+v", m.Nodes)
	}
	n1, eu := m.Nodes[0], m.Nodes[1]
	if n1.Name != "node1" || n1.Status != "Healthy" || n1.CPUs != "0.5 / 2" || strings.Join(n1.Labels, "|") != "zone=a|ssd=1" || n1.Error != "" || n1.Member {
		t.Errorf("node1: %+v", n1)
	}
	if eu.Name != "eu" || eu.Status != "Unhealthy" || !eu.Member || eu.Kind != "shoal member: 3 nodes (2 healthy)" || eu.Error != "connection refused" || len(eu.Labels) != 0 {
		t.Errorf("eu: %+v", eu)
	}
	if m.Totals.Nodes != 2 || m.Totals.Healthy != 1 || m.Totals.Running != 2 || m.Totals.CPUs != 4 {
		t.Errorf("totals: %+v", m.Totals)
	}
	want := [][]any{
		{"aaaaaaaaaaaa", "web", 0.0, "running", 0.0, ""},
		{"bbbbbbbbbbbb", "web.1.x", 0.0, "exited", 0.0, "web"},
		{"cccccccccccc", "inner1/db", 1.0, "running", 1.0, ""},
		{"dddddddddddd", "gone/x", -1.0, "running", 0.0, ""},
	}
	got, _ := json.Marshal(m.Containers)
	wantJSON, _ := json.Marshal(want)
	if string(got) != string(wantJSON) || strings.Join(m.Images, ",") != "nginx,postgres" {
		t.Errorf("containers %s images %v\nwant %s", got, m.Images, wantJSON)
	}
	if plain := mapAs(h, authz.RoleViewer, false); plain.Header().Get("Content-Encoding") != "" || !json.Valid(plain.Body.Bytes()) {
		t.Errorf("without gzip: %q", plain.Body.String()[:40])
	}
}

// What the API refuses, the map refuses, with its status and words.
func TestMapAPIError(t *testing.T) {
	h := newHandler(&fakeAPI{listStatus: http.StatusForbidden}, nil, fstest.MapFS{})
	rec := mapAs(h, authz.RoleNone, false)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "denied by the API") {
		t.Errorf("map: %d %q, want the API's 403", rec.Code, rec.Body)
	}
}

const execID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// execAPI serves POST /exec/{id}/start as shoal's API does: it hijacks the
// connection, answers 101 and then echoes what it reads in upper case.
type execAPI struct {
	body, upgrade string
	role          authz.Role
}

func (a *execAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/exec/"+execID+"/start" || r.Method != "POST" {
		w.WriteHeader(404)
		io.WriteString(w, `{"message":"No such exec instance: x"}`)
		return
	}
	b, _ := io.ReadAll(r.Body)
	a.body, a.upgrade = string(b), r.Header.Get("Upgrade")
	id, _ := authz.From(r.Context())
	a.role = id.Role
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	buf.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	buf.WriteString("ready\n")
	buf.Flush()
	go func() {
		defer conn.Close()
		sc := bufio.NewScanner(buf.Reader)
		for sc.Scan() {
			if sc.Text() == "exit" {
				return
			}
			conn.Write([]byte(strings.ToUpper(sc.Text()) + "\n"))
		}
	}()
}

// serve runs the console behind a server that identifies every caller as
// an operator, as dockerapi does before it calls the console.
func serve(t *testing.T, api http.Handler) *httptest.Server {
	h := newHandler(api, nil, fstest.MapFS{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(authz.With(r.Context(), authz.Identity{Name: "otto", Role: authz.RoleOperator})))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The exec bridge carries the hijacked stream both ways over a WebSocket,
// started in-process as the caller with a TTY.
func TestExecBridge(t *testing.T) {
	api := &execAPI{}
	srv := serve(t, api)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ui/api/exec/"+execID, http.Header{"Origin": {srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	read := func() string {
		t.Helper()
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read(); got != "ready\n" {
		t.Errorf("first message %q", got)
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte("hostname\n")); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "HOSTNAME\n" {
		t.Errorf("answer %q", got)
	}
	if !strings.Contains(api.body, `"Tty":true`) || api.upgrade != "tcp" || api.role != authz.RoleOperator {
		t.Errorf("start: body %q upgrade %q role %v", api.body, api.upgrade, api.role)
	}
	ws.WriteMessage(websocket.BinaryMessage, []byte("exit\n"))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Error("the socket stays open after the exec ended")
	}
}

// A refused start (no such exec, a viewer) is answered with the API's
// status before any upgrade; a page of another site cannot open one.
func TestExecRefused(t *testing.T) {
	api := &execAPI{}
	srv := serve(t, api)
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ui/api/exec/"
	other := strings.Repeat("f", 64)
	if _, resp, err := websocket.DefaultDialer.Dial(url+other, http.Header{"Origin": {srv.URL}}); err == nil || resp == nil || resp.StatusCode != 404 {
		t.Errorf("unknown exec: %v %v, want 404", err, resp)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(url+"nothex", nil); err == nil || resp == nil || resp.StatusCode != 404 {
		t.Errorf("malformed ID: %v %v, want 404", err, resp)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(url+execID, http.Header{"Origin": {"http://evil.example"}}); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("another origin: %v %v, want 403", err, resp)
	}
	if api.body != "" {
		t.Errorf("the exec was started for another origin: %q", api.body)
	}
	if rec := get(newHandler(&execAPI{}, nil, fstest.MapFS{}), "/ui/api/exec/"+execID, nil); rec.Code != 400 {
		t.Errorf("without an upgrade: %d", rec.Code)
	}
}
