package engine

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// simPool runs a pool over n simulated engines until the test ends and
// waits until every engine is Healthy.
func simPool(t *testing.T, n int, opts Options) (*Pool, []*enginesim.Engine) {
	t.Helper()
	f, err := enginesim.StartFleet(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	if opts.RefreshInterval == 0 {
		opts.RefreshInterval = 50 * time.Millisecond
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.FailureRetry == 0 {
		opts.FailureRetry = 1
	}
	p := NewPool(opts, nil)
	p.Update(f.Addrs())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "engines healthy", func() bool { return len(p.Healthy()) == n })
	return p, f.Engines
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestTypedContainerLifecycle(t *testing.T) {
	p, _ := simPool(t, 1, Options{})
	e := p.Engines()[0]
	ctx := context.Background()
	cr, err := e.Create(ctx, CreateSpec{Name: "web", Body: json.RawMessage(`{"Image":"busybox","Cmd":["sleep","1d"],"Labels":{"a":"b"}}`)})
	if err != nil || cr.ID == "" {
		t.Fatalf("create: %+v %v", cr, err)
	}
	if err := e.Start(ctx, cr.ID); err != nil {
		t.Fatal("start:", err)
	}
	if err := e.Start(ctx, cr.ID); err != nil {
		t.Fatal("start of a running container must be no error:", err)
	}
	ins, err := e.Inspect(ctx, "web")
	if err != nil || ins.ID != cr.ID || ins.Name != "/web" || !ins.Running || ins.State != "running" || !strings.Contains(string(ins.Config), `"busybox"`) || len(ins.Raw) == 0 {
		t.Fatalf("inspect: %+v %v", ins, err)
	}
	list, err := e.List(ctx, ListOptions{Filters: map[string][]string{"label": {"a=b"}}})
	if err != nil || len(list) != 1 || list[0].ID != cr.ID || list[0].Name() != "web" {
		t.Fatalf("list running: %+v %v", list, err)
	}
	d := time.Second
	if err := e.Stop(ctx, cr.ID, &d); err != nil {
		t.Fatal("stop:", err)
	}
	if ins, err = e.Inspect(ctx, cr.ID); err != nil || ins.Running || ins.State != "exited" {
		t.Fatalf("after stop: %+v %v", ins, err)
	}
	if list, err = e.List(ctx, ListOptions{}); err != nil || len(list) != 0 {
		t.Fatalf("list without all shows a stopped container: %d %v", len(list), err)
	}
	if list, err = e.List(ctx, ListOptions{All: true}); err != nil || len(list) != 1 {
		t.Fatalf("list all: %d %v", len(list), err)
	}
	if err := e.Remove(ctx, cr.ID, RemoveOptions{}); err != nil {
		t.Fatal("remove:", err)
	}
	if e.Container(cr.ID) != nil {
		t.Fatal("removed container still cached")
	}
}

func TestTypedOperationErrors(t *testing.T) {
	p, sims := simPool(t, 1, Options{})
	e := p.Engines()[0]
	ctx := context.Background()
	_, err := e.Inspect(ctx, "nope")
	if !errors.Is(err, ErrNotFound) || !errdefs.IsNotFound(err) || err.Error() != "No such container: nope" {
		t.Fatalf("inspect missing: %v", err)
	}
	if err := e.Start(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("start missing: %v", err)
	}
	if _, err := e.Create(ctx, CreateSpec{Name: "x", Body: json.RawMessage(`{"Image":"busybox"}`)}); err != nil {
		t.Fatal(err)
	}
	_, err = e.Create(ctx, CreateSpec{Name: "x", Body: json.RawMessage(`{"Image":"busybox"}`)})
	if !errors.Is(err, ErrConflict) || !errdefs.IsConflict(err) || !strings.Contains(err.Error(), `The container name "/x" is already in use`) {
		t.Fatalf("create twice: %v", err)
	}
	if err := e.Start(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := e.Remove(ctx, "x", RemoveOptions{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("remove running without force: %v", err)
	}
	if err := e.Remove(ctx, "x", RemoveOptions{Force: true}); err != nil {
		t.Fatalf("force remove: %v", err)
	}
	_, err = e.Create(ctx, CreateSpec{Body: json.RawMessage(`{"Image":""}`)})
	if !errors.Is(err, ErrInvalid) || !errdefs.IsInvalidArgument(err) {
		t.Fatalf("create without image: %v", err)
	}
	_ = sims[0].Close()
	_, err = e.Create(ctx, CreateSpec{Body: json.RawMessage(`{"Image":"busybox"}`)})
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, ErrUnavailable) || !errdefs.IsUnavailable(err) {
		t.Fatalf("create on a gone engine: %v", err)
	}
	if _, err := e.Inspect(ctx, "x"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("inspect on a gone engine: %v", err)
	}
}

// fakeEngine is a bare engine for the calls enginesim does not simulate.
func fakeEngine(t *testing.T, h http.HandlerFunc) *Engine {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := &Options{}
	opts.defaults()
	e := newEngine(srv.URL, c, opts)
	e.apiVersion = "1.41"
	return e
}

func TestWait(t *testing.T) {
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1.41/containers/c1/wait" && r.Method == "POST" && r.URL.Query().Get("condition") == "next-exit":
			_, _ = w.Write([]byte(`{"StatusCode":3,"Error":{"Message":"oops"}}`))
		case r.URL.Path == "/v1.41/containers/c2/wait":
			_, _ = w.Write([]byte(`{"StatusCode":0}`))
		default:
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"message":"No such container: c3"}`))
		}
	})
	ctx := context.Background()
	if r, err := e.Wait(ctx, "c1", "next-exit"); err != nil || r.StatusCode != 3 || r.Error != "oops" {
		t.Fatalf("wait c1: %+v %v", r, err)
	}
	if r, err := e.Wait(ctx, "c2", ""); err != nil || r.StatusCode != 0 || r.Error != "" {
		t.Fatalf("wait c2: %+v %v", r, err)
	}
	if _, err := e.Wait(ctx, "c3", ""); !errors.Is(err, ErrNotFound) || err.Error() != "No such container: c3" {
		t.Fatalf("wait c3: %v", err)
	}
}

func TestObjectInspects(t *testing.T) {
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.41/images/library/busybox:1/json":
			_, _ = w.Write([]byte(`{"Id":"sha256:1","RepoTags":["busybox:1"]}`))
		case "/v1.41/networks/front":
			_, _ = w.Write([]byte(`{"Id":"n1","Name":"front"}`))
		case "/v1.41/volumes/data":
			_, _ = w.Write([]byte(`{"Name":"data","Driver":"local"}`))
		case "/v1.41/exec/x1/json":
			_, _ = w.Write([]byte(`{"ID":"x1","Running":false}`))
		default:
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"message":"not here"}`))
		}
	})
	ctx := context.Background()
	if o, err := e.InspectImage(ctx, "library/busybox:1"); err != nil || o.ID != "sha256:1" || !strings.Contains(string(o.Raw), "RepoTags") {
		t.Fatalf("image: %+v %v", o, err)
	}
	if o, err := e.InspectNetwork(ctx, "front"); err != nil || o.ID != "n1" || o.Name != "front" {
		t.Fatalf("network: %+v %v", o, err)
	}
	if o, err := e.InspectVolume(ctx, "data"); err != nil || o.Name != "data" {
		t.Fatalf("volume: %+v %v", o, err)
	}
	if o, err := e.InspectExec(ctx, "x1"); err != nil || o.ID != "x1" {
		t.Fatalf("exec: %+v %v", o, err)
	}
	if _, err := e.InspectNetwork(ctx, "back"); !errors.Is(err, ErrNotFound) || err.Error() != "not here" {
		t.Fatalf("missing network: %v", err)
	}
}

func TestEventsHistory(t *testing.T) {
	var gotQuery string
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		gotQuery = r.URL.RawQuery
		_, _ = w.Write([]byte(`{"Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"web"}},"time":5,"timeNano":5000000001,"extra":1}
{"Type":"image","Action":"pull","Actor":{"ID":"busybox"},"time":6,"timeNano":6000000000}
`))
	})
	var got []Event
	err := e.Events(context.Background(), time.Unix(4, 5), time.Unix(7, 0), func(ev Event) bool {
		got = append(got, ev)
		return true
	})
	if err != nil || len(got) != 2 {
		t.Fatalf("history: %d events, %v", len(got), err)
	}
	if !strings.Contains(gotQuery, "since=4.000000005") || !strings.Contains(gotQuery, "until=7.000000000") {
		t.Fatalf("query %q", gotQuery)
	}
	if ev := got[0]; ev.Engine != e || ev.Message.Action != "start" || ev.Message.Actor.Attributes["name"] != "web" || !strings.Contains(string(ev.Raw), `"extra":1`) || ev.Time.UnixNano() != 5000000001 {
		t.Fatalf("first event %+v", ev)
	}
	n := 0
	_ = e.Events(context.Background(), time.Time{}, time.Unix(7, 0), func(Event) bool { n++; return false })
	if n != 1 || strings.Contains(gotQuery, "since") {
		t.Fatalf("stopping after one: %d, query %q", n, gotQuery)
	}
}

func TestKeepSpecsOnlyForLabelledContainers(t *testing.T) {
	p, sims := simPool(t, 1, Options{})
	p.KeepSpecs("keep.me")
	e := p.Engines()[0]
	ctx := context.Background()
	keep, err := sims[0].Create(enginesim.CreateSpec{Name: "kept", Image: "busybox", Env: []string{"A=1"}, Labels: map[string]string{"keep.me": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := sims[0].Create(enginesim.CreateSpec{Name: "other", Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{keep, other} {
		if err := e.RefreshContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	spec := e.Container(keep).Spec
	var body map[string]json.RawMessage
	if err := json.Unmarshal(spec, &body); err != nil || string(body["Image"]) != `"busybox"` || body["HostConfig"] == nil || body["Hostname"] != nil {
		t.Fatalf("kept spec %s: %v", spec, err)
	}
	if s := e.Container(other).Spec; s != nil {
		t.Fatalf("spec kept for an unlabelled container: %s", s)
	}
}

// A container stays cached when its engine fails mid-refresh: only the
// engine's "no such container" drops it (or a dying engine's containers
// could vanish from the view and never be rescheduled).
func TestRefreshKeepsContainerUnlessEngineSaysGone(t *testing.T) {
	inspect, state := 200, "running"
	e := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.41/containers/json":
			_, _ = w.Write([]byte(`[{"Id":"c1","Names":["/web"],"State":"` + state + `"}]`))
		case "/v1.41/containers/c1/json":
			w.WriteHeader(inspect)
			if inspect == 200 {
				_, _ = w.Write([]byte(`{"Id":"c1","State":{"Status":"running"},"Config":{}}`))
			} else {
				_, _ = w.Write([]byte(`{"message":"trouble"}`))
			}
		}
	})
	ctx := context.Background()
	if err := e.RefreshContainer(ctx, "c1"); err != nil || e.Container("c1") == nil {
		t.Fatalf("first refresh: %v", err)
	}
	inspect = 500
	if err := e.RefreshContainer(ctx, "c1"); err == nil || e.Container("c1") == nil {
		t.Fatalf("a failed inspect dropped the container (err %v)", err)
	}
	state = "exited" // a changed state makes the full refresh inspect it
	if err := e.refreshContainers(ctx); err != nil || e.Container("c1") == nil || e.Container("c1").State != "exited" {
		t.Fatalf("a failed inspect in a full refresh dropped the container (err %v)", err)
	}
	inspect = 404
	if err := e.RefreshContainer(ctx, "c1"); err != nil || e.Container("c1") != nil {
		t.Fatalf("a container the engine no longer has stays cached (err %v)", err)
	}
}
