package dockerapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
)

// fakeServices records what the handlers pass and holds services by ID
// (= name) with labels.
type fakeServices struct {
	labels map[string]map[string]string // service ID → labels
	tty    bool

	gotSpec    swarm.ServiceSpec
	gotAuth    string
	gotFilters backend.Filters
	gotStatus  bool
	gotDefault bool
	gotUpdate  backend.ServiceUpdate
	gotLogs    backend.ServiceLogsOptions
	gotTask    bool
	removed    string
}

func (f *fakeServices) CreateService(_ context.Context, spec swarm.ServiceSpec, auth string) (swarm.ServiceCreateResponse, error) {
	f.gotSpec, f.gotAuth = spec, auth
	return swarm.ServiceCreateResponse{ID: "new"}, nil
}

func (f *fakeServices) Services(_ context.Context, fl backend.Filters, status bool) ([]swarm.Service, error) {
	f.gotFilters, f.gotStatus = fl, status
	return []swarm.Service{}, nil
}

func (f *fakeServices) Service(_ context.Context, ref string, defaults bool) (swarm.Service, error) {
	f.gotDefault = defaults
	labels, ok := f.labels[ref]
	if !ok {
		return swarm.Service{}, errdefs.ErrNotFound.WithMessage("service " + ref + " not found")
	}
	return swarm.Service{ID: ref, Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: ref, Labels: labels}}}, nil
}

func (f *fakeServices) UpdateService(_ context.Context, ref string, o backend.ServiceUpdate) (swarm.ServiceUpdateResponse, error) {
	f.gotUpdate = o
	return swarm.ServiceUpdateResponse{}, nil
}

func (f *fakeServices) RemoveService(_ context.Context, ref string) error {
	f.removed = ref
	return nil
}

func (f *fakeServices) Tasks(_ context.Context, fl backend.Filters) ([]swarm.Task, error) {
	f.gotFilters = fl
	return []swarm.Task{}, nil
}

func (f *fakeServices) Task(_ context.Context, ref string) (swarm.Task, error) {
	if ref == "t-web" {
		return swarm.Task{ID: ref, ServiceID: "web"}, nil
	}
	if ref == "t-db" {
		return swarm.Task{ID: ref, ServiceID: "db"}, nil
	}
	return swarm.Task{}, errdefs.ErrNotFound.WithMessage("task " + ref + " not found")
}

func (f *fakeServices) Logs(_ context.Context, ref string, task bool, o backend.ServiceLogsOptions) (bool, func(io.Writer) error, error) {
	f.gotLogs, f.gotTask = o, task
	return f.tty, func(w io.Writer) error {
		_, err := w.Write([]byte("frames"))
		return err
	}, nil
}

func newServicesServer(f *fakeServices) *Server {
	s := NewServer(Backends{}, "test", nil)
	s.Services = f
	return s
}

func callSvc(s http.Handler, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	s.ServeHTTP(rec, r)
	return rec
}

func message(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var m struct{ Message string }
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q is not Docker JSON: %v", rec.Body, err)
	}
	return m.Message
}

func TestServiceCallsWithoutStore(t *testing.T) {
	s := NewServer(Backends{}, "test", nil)
	for _, p := range []string{"GET /services", "GET /v1.41/services/web", "POST /services/create", "POST /services/web/update?version=1",
		"DELETE /services/web", "GET /services/web/logs?stdout=1", "GET /tasks", "GET /tasks/x", "GET /tasks/x/logs?stdout=1"} {
		method, path, _ := strings.Cut(p, " ")
		rec := callSvc(s, method, path, "")
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(message(t, rec), "shoal manage with its --data-dir") {
			t.Errorf("%s: %d %s", p, rec.Code, rec.Body)
		}
	}
}

func TestCreateServiceHandler(t *testing.T) {
	f := &fakeServices{}
	s := newServicesServer(f)
	rec := callSvc(s, "POST", "/v1.41/services/create", `{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}}}`, "X-Registry-Auth", "abc")
	if rec.Code != http.StatusCreated || strings.TrimSpace(rec.Body.String()) != `{"ID":"new"}` {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	if f.gotSpec.Name != "web" || f.gotSpec.TaskTemplate.ContainerSpec.Image != "busybox" || f.gotAuth != "abc" {
		t.Errorf("backend got %+v auth %q", f.gotSpec, f.gotAuth)
	}
	rec = callSvc(s, "POST", "/services/create", `{"Name":`)
	if rec.Code != http.StatusBadRequest || !strings.HasPrefix(message(t, rec), "invalid JSON: ") {
		t.Errorf("bad JSON: %d %s", rec.Code, rec.Body)
	}
	// A negative replica count does not decode into the unsigned field.
	rec = callSvc(s, "POST", "/services/create", `{"Name":"x","Mode":{"Replicated":{"Replicas":-1}}}`)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("negative replicas: %d %s", rec.Code, rec.Body)
	}
	// API < 1.44 clients may send Networks beside the task template.
	callSvc(s, "POST", "/v1.41/services/create", `{"Name":"n","Networks":[{"Target":"front"}]}`)
	if n := f.gotSpec.TaskTemplate.Networks; len(n) != 1 || n[0].Target != "front" {
		t.Errorf("legacy networks: %+v", n)
	}
}

func TestServiceQueryParameters(t *testing.T) {
	f := &fakeServices{labels: map[string]map[string]string{"web": {}}}
	s := newServicesServer(f)
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/services?status=maybe", 400, `invalid value for status: maybe: strconv.ParseBool: parsing "maybe": invalid syntax`},
		{"/services/web?insertDefaults=x", 400, `invalid value for insertDefaults: x: strconv.ParseBool: parsing "x": invalid syntax`},
		{"/services/web/logs", 400, "must specify at least one of 'stdout' or 'stderr'"},
		{"/services/web/logs?stdout=1&since=yesterday", 400, `invalid value for "since": "yesterday" is not a unix timestamp (seconds[.nanoseconds])`},
		{"/services/nope", 404, "service nope not found"},
	} {
		rec := callSvc(s, "GET", tc.path, "")
		if rec.Code != tc.code || message(t, rec) != tc.msg {
			t.Errorf("%s: %d %s", tc.path, rec.Code, rec.Body)
		}
	}
	callSvc(s, "GET", "/v1.41/services?status=true&filters="+`{"mode":{"global":true}}`, "")
	if !f.gotStatus || f.gotFilters["mode"][0] != "global" {
		t.Errorf("list: status %v filters %v", f.gotStatus, f.gotFilters)
	}
	callSvc(s, "GET", "/v1.40/services?status=true", "")
	if f.gotStatus {
		t.Error("status honoured for API 1.40 (dockerd ignores it before 1.41)")
	}
	callSvc(s, "GET", "/services/web?insertDefaults=true", "")
	if !f.gotDefault {
		t.Error("insertDefaults not passed")
	}
}

func TestUpdateServiceHandler(t *testing.T) {
	f := &fakeServices{labels: map[string]map[string]string{"web": {}}}
	s := newServicesServer(f)
	rec := callSvc(s, "POST", "/services/web/update?version=x", `{"Name":"web"}`)
	if rec.Code != 400 || message(t, rec) != `invalid service version 'x': strconv.ParseUint: parsing "x": invalid syntax` {
		t.Errorf("bad version: %d %s", rec.Code, rec.Body)
	}
	rec = callSvc(s, "POST", "/services/web/update?version=3&registryAuthFrom=elsewhere", `{"Name":"web"}`)
	if rec.Code != 400 || message(t, rec) != "invalid registryAuthFrom 'elsewhere'" {
		t.Errorf("bad registryAuthFrom: %d %s", rec.Code, rec.Body)
	}
	rec = callSvc(s, "POST", "/services/web/update?version=3&rollback=previous&registryAuthFrom=previous-spec", `{"Name":"web"}`)
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != "{}" {
		t.Fatalf("update: %d %s", rec.Code, rec.Body)
	}
	if o := f.gotUpdate; o.Version.Index != 3 || o.Rollback != "previous" || o.RegistryAuthFrom != swarm.RegistryAuthFromPreviousSpec || o.Spec.Name != "web" {
		t.Errorf("backend got %+v", o)
	}
	if rec := callSvc(s, "DELETE", "/services/web", ""); rec.Code != 200 || f.removed != "web" {
		t.Errorf("remove: %d %s, removed %q", rec.Code, rec.Body, f.removed)
	}
}

func TestServiceLogsHandler(t *testing.T) {
	f := &fakeServices{labels: map[string]map[string]string{"web": {}}}
	s := newServicesServer(f)
	for _, tc := range []struct {
		path string
		tty  bool
		ct   string
	}{
		{"/v1.50/services/web/logs?stdout=1&details=1&follow=1&tail=5", false, mediaMultiplexedStream},
		{"/v1.41/services/web/logs?stdout=1", false, mediaRawStream}, // before 1.42 dockerd says raw, and multiplexes
		{"/v1.50/tasks/t-web/logs?stderr=1", true, mediaRawStream},
	} {
		f.tty = tc.tty
		rec := callSvc(s, "GET", tc.path, "")
		if rec.Code != 200 || rec.Header().Get("Content-Type") != tc.ct || rec.Body.String() != "frames" {
			t.Errorf("%s: %d %q %q", tc.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
	}
	callSvc(s, "GET", "/services/web/logs?stdout=1&details=1&follow=1&tail=5&timestamps=1&since=12.5", "")
	if o := f.gotLogs; !o.ShowStdout || o.ShowStderr || !o.Details || !o.Follow || o.Tail != "5" || !o.Timestamps || o.Since != "12.5" || f.gotTask {
		t.Errorf("backend got %+v task %v", o, f.gotTask)
	}
}

func TestServiceScopeAndHostAccess(t *testing.T) {
	f := &fakeServices{labels: map[string]map[string]string{"web": {"team": "web"}, "db": {"team": "db"}}}
	s := newServicesServer(f)
	for _, tc := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"GET", "/services/db", "", 404, "service db not found"},
		{"DELETE", "/services/db", "", 404, "service db not found"},
		{"GET", "/services/db/logs?stdout=1", "", 404, "service db not found"},
		{"POST", "/services/db/update?version=1", `{"Name":"db"}`, 404, "service db not found"},
		{"GET", "/tasks/t-db", "", 404, "task t-db not found"},
		{"POST", "/services/create", `{"Name":"x","Labels":{"team":"db"}}`, 403, "authorization denied: wes (operator) may not create services outside its scope (team=web)"},
		{"POST", "/services/create", `{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"busybox","Mounts":[{"Type":"bind","Source":"/","Target":"/host"}]}}}`, 403, "authorization denied: wes (operator) may not bind-mount host paths (/)"},
		{"POST", "/services/create", `{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"busybox","CapabilityAdd":["SYS_ADMIN"]}}}`, 403, "authorization denied: wes (operator) may not add capabilities (SYS_ADMIN)"},
		{"POST", "/services/create", `{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"busybox"},"Networks":[{"Target":"host"}]}}`, 403, "authorization denied: wes (operator) may not use the host's network namespace"},
	} {
		rec := callAs(s, webOp, tc.method, tc.path, tc.body)
		if rec.Code != tc.code || message(t, rec) != tc.msg {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, rec.Code, rec.Body)
		}
	}
	if rec := callAs(s, webOp, "GET", "/tasks/t-web", ""); rec.Code != 200 {
		t.Errorf("task in scope: %d %s", rec.Code, rec.Body)
	}
	rec := callAs(s, webOp, "POST", "/services/create", `{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}}}`)
	if rec.Code != 201 || f.gotSpec.Labels["team"] != "web" || f.gotSpec.TaskTemplate.ContainerSpec.Labels["team"] != "web" {
		t.Errorf("scoped create: %d %s, spec %+v", rec.Code, rec.Body, f.gotSpec)
	}
	callAs(s, webOp, "GET", "/tasks", "")
	if l := f.gotFilters["label"]; len(l) != 1 || l[0] != "team=web" {
		t.Errorf("scoped task list filters %v", f.gotFilters)
	}
	if rec := callAs(s, viewer, "POST", "/services/create", `{}`); rec.Code != 403 {
		t.Errorf("viewer create: %d", rec.Code)
	}
	if rec := callAs(s, admin, "POST", "/services/create", `{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"busybox","Mounts":[{"Type":"bind","Source":"/","Target":"/host"}]}}}`); rec.Code != 201 {
		t.Errorf("admin bind mount: %d %s", rec.Code, rec.Body)
	}
}
