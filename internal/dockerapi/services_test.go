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
	f := &fakeServices{labels: map[string]map[string]string{"web": {"team": "web"}}}
	s := newServicesServer(f)
	rec := callSvc(s, "POST", "/v1.41/services/create", `{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"busybox"}}}`, "X-Registry-Auth", "abc")
	if rec.Code != http.StatusCreated || strings.TrimSpace(rec.Body.String()) != `{"ID":"new"}` {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	if f.gotSpec.Name != "web" || f.gotSpec.TaskTemplate.ContainerSpec.Image != "busybox" || f.gotAuth != "abc" {
		t.Errorf("backend got %+v auth %q", f.gotSpec, f.gotAuth)
	}
	// Bodies that do not decode: dockerd 20.10's words, its decoder's.
	for _, tc := range []struct{ body, msg string }{
		{`{"Name":`, "unexpected EOF"},
		{"", "got EOF while reading request body"},
		{" \n", "got EOF while reading request body"},
		{`{"Name":"x","Mode":{"Replicated":{"Replicas":-1}}}`, // unsigned on the wire
			"json: cannot unmarshal number -1 into Go struct field ReplicatedService.Mode.Replicated.Replicas of type uint64"},
	} {
		for _, path := range []string{"/services/create", "/services/web/update?version=1"} {
			rec = callSvc(s, "POST", path, tc.body)
			if rec.Code != http.StatusBadRequest || message(t, rec) != tc.msg {
				t.Errorf("POST %s %q: %d %s; want 400 %q", path, tc.body, rec.Code, rec.Body, tc.msg)
			}
			// A scoped caller's body is read first by its checks: the same words.
			rec = callAs(s, webOp, "POST", path, tc.body)
			if rec.Code != http.StatusBadRequest || message(t, rec) != tc.msg {
				t.Errorf("scoped POST %s %q: %d %s; want 400 %q", path, tc.body, rec.Code, rec.Body, tc.msg)
			}
		}
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
		{"/services/web/logs", 400, "Bad parameters: you must choose at least one stream"},
		{"/tasks/t-web/logs?stdout=0", 400, "Bad parameters: you must choose at least one stream"},
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
	// dockerd's answer without warnings (docker-py returns it as is).
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"Warnings":null}` {
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

// renderFake answers services and tasks with values that show the
// encoder's choices.
type renderFake struct {
	fakeServices
	warnings []string
}

func (f *renderFake) Service(context.Context, string, bool) (swarm.Service, error) {
	return swarm.Service{ID: "web", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "web"},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Command: []string{"sh", "-c", "a && b <x>"}}}}}, nil
}

func (f *renderFake) Services(context.Context, backend.Filters, bool) ([]swarm.Service, error) {
	s, err := f.Service(context.Background(), "web", false)
	return []swarm.Service{s}, err
}

func (f *renderFake) Tasks(context.Context, backend.Filters) ([]swarm.Task, error) {
	t, err := f.Task(context.Background(), "t")
	return []swarm.Task{t, {ID: "t2", Volumes: []swarm.VolumeAttachment{{ID: "v", Source: "s", Target: "/t"}}}}, err
}

func (f *renderFake) Task(context.Context, string) (swarm.Task, error) {
	return swarm.Task{ID: "t", Spec: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Command: []string{"a&b"}}}}, nil
}

func (f *renderFake) UpdateService(context.Context, string, backend.ServiceUpdate) (swarm.ServiceUpdateResponse, error) {
	return swarm.ServiceUpdateResponse{Warnings: f.warnings}, nil
}

// TestServiceAnswersRenderedAsDockerd: service and task answers have no
// HTML escapes, tasks no Volumes key when they have none, and an update's
// answer dockerd's Warnings (null when there are none).
func TestServiceAnswersRenderedAsDockerd(t *testing.T) {
	f := &renderFake{}
	s := newServicesServer(&f.fakeServices)
	s.Services = f
	for _, path := range []string{"/services", "/services/web", "/tasks", "/tasks/t"} {
		rec := callSvc(s, "GET", path, "")
		body := rec.Body.String()
		if rec.Code != 200 || strings.Contains(body, `\u00`) || !strings.Contains(body, "&") {
			t.Errorf("GET %s: %d %s; want & < > unescaped", path, rec.Code, body)
		}
		if strings.HasPrefix(path, "/tasks") && strings.Contains(body, `"Volumes":null`) {
			t.Errorf("GET %s: %s; want no Volumes key when empty", path, body)
		}
	}
	rec := callSvc(s, "GET", "/tasks", "")
	var tasks []map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &tasks); err != nil || len(tasks) != 2 {
		t.Fatalf("GET /tasks: %s %v", rec.Body, err)
	}
	if _, ok := tasks[0]["Volumes"]; ok {
		t.Errorf("task without volumes has a Volumes key: %s", rec.Body)
	}
	if v := string(tasks[1]["Volumes"]); v != `[{"ID":"v","Source":"s","Target":"/t"}]` {
		t.Errorf("task volumes rendered %s", v)
	}
	if _, ok := tasks[0]["Spec"]; !ok {
		t.Errorf("task rendered without its Spec: %s", rec.Body)
	}
	f.warnings = []string{}
	if rec := callSvc(s, "POST", "/services/web/update?version=2", `{"Name":"web"}`); strings.TrimSpace(rec.Body.String()) != `{"Warnings":null}` {
		t.Errorf("update without warnings: %s", rec.Body)
	}
	f.warnings = []string{"image could not be checked"}
	if rec := callSvc(s, "POST", "/services/web/update?version=2", `{"Name":"web"}`); strings.TrimSpace(rec.Body.String()) != `{"Warnings":["image could not be checked"]}` {
		t.Errorf("update with a warning: %s", rec.Body)
	}
}

// Followed service and task logs hold a stream place (they last as long
// as the client wants); logs without follow do not.
func TestFollowedServiceLogsAreStreams(t *testing.T) {
	s := newServicesServer(&fakeServices{labels: map[string]map[string]string{"web": {}}})
	s.Streams = NewStreamLimiter(Limits{MaxStreamsPerClient: 1}, nil)
	held := httptest.NewRequest("GET", "/events", nil) // from 192.0.2.1, as callSvc's requests
	release, err := s.Streams.acquire(held)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/services/web/logs?follow=1&stdout=1", "/tasks/t-web/logs?follow=true&stderr=1"} {
		rec := callSvc(s, "GET", p, "")
		if rec.Code != http.StatusServiceUnavailable || message(t, rec) != "too many simultaneous streams from 192.0.2.1: limit is 1 (--max-streams-per-client)" {
			t.Errorf("%s at the cap: %d %s", p, rec.Code, rec.Body)
		}
	}
	for _, p := range []string{"/services/web/logs?stdout=1", "/tasks/t-web/logs?follow=0&stderr=1"} {
		if rec := callSvc(s, "GET", p, ""); rec.Code != http.StatusOK {
			t.Errorf("%s (not a stream) at the cap: %d %s", p, rec.Code, rec.Body)
		}
	}
	release()
	if rec := callSvc(s, "GET", "/services/web/logs?follow=1&stdout=1", ""); rec.Code != http.StatusOK {
		t.Errorf("followed logs with room: %d %s", rec.Code, rec.Body)
	}
	if _, err := s.Streams.acquire(held); err != nil {
		t.Errorf("ended followed logs kept their place: %v", err)
	}
}
