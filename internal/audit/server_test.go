package audit_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/audit"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// apiOverSim serves shoal's Docker API, audited into path, over one
// simulated engine.
func apiOverSim(t *testing.T, path string) (*httptest.Server, *audit.Log) {
	t.Helper()
	sim, err := enginesim.Start(enginesim.Options{Name: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	pool := engine.NewPool(engine.Options{RefreshInterval: 50 * time.Millisecond}, nil)
	pool.Update([]string{sim.Addr()})
	done := make(chan struct{})
	go func() { defer close(done); _ = pool.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); len(pool.Healthy()) != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the simulated engine never became healthy")
		}
	}
	mgr := manager.New(manager.Config{Pool: pool, Placer: scheduler.New(scheduler.Spread{}, scheduler.Options{})})
	log, err := audit.Open(audit.Config{Path: path, MaxSizeMB: audit.DefaultMaxSizeMB, MaxFiles: audit.DefaultMaxFiles}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	srv := httptest.NewServer(log.Handler(dockerapi.New(mgr, "test", nil)))
	t.Cleanup(srv.Close)
	return srv, log
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A create, start and rm through shoal's API give three lines naming the
// call, the container and the outcome; reads give none; a failed call
// logs its status and dockerd's message.
func TestAuditThroughAPI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	srv, log := apiOverSim(t, path)
	st, body := do(t, "POST", srv.URL+"/v1.41/containers/create?name=web", `{"Image":"busybox","Env":["PASSWORD=hunter2"]}`)
	if st != 201 {
		t.Fatalf("create: %d %s", st, body)
	}
	var created struct{ Id string }
	json.Unmarshal([]byte(body), &created)
	if st, body := do(t, "GET", srv.URL+"/v1.41/containers/web/json", ""); st != 200 {
		t.Fatalf("inspect: %d %s", st, body)
	}
	if st, body := do(t, "POST", srv.URL+"/v1.41/containers/web/start", ""); st != 204 {
		t.Fatalf("start: %d %s", st, body)
	}
	if st, body := do(t, "DELETE", srv.URL+"/v1.41/containers/web?force=1", ""); st != 204 {
		t.Fatalf("rm: %d %s", st, body)
	}
	if st, _ := do(t, "POST", srv.URL+"/v1.41/containers/web/start", ""); st != 404 {
		t.Fatalf("start of a removed container: %d", st)
	}
	srv.Close()
	log.Close()

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "hunter2") {
		t.Errorf("the create's body reached the audit log:\n%s", raw)
	}
	var es []audit.Entry
	for line := range strings.Lines(string(raw)) {
		var e audit.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		es = append(es, e)
	}
	want := []audit.Entry{
		{Method: "POST", Path: "/containers/create", Action: "container.create", Target: "web", Created: created.Id, Status: 201},
		{Method: "POST", Path: "/containers/web/start", Action: "container.start", Target: "web", Status: 204},
		{Method: "DELETE", Path: "/containers/web", Action: "container.remove", Target: "web", Status: 204},
		{Method: "POST", Path: "/containers/web/start", Action: "container.start", Target: "web", Status: 404, Error: "No such container: web"},
	}
	if len(es) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(es), len(want), raw)
	}
	for i, w := range want {
		e := es[i]
		if e.Method != w.Method || e.Path != w.Path || e.Action != w.Action || e.Target != w.Target ||
			e.Created != w.Created || e.Status != w.Status || e.Error != w.Error {
			t.Errorf("line %d: %+v\nwant %+v", i, e, w)
		}
		if e.Who.Name != "127.0.0.1" || !strings.HasPrefix(e.Remote, "127.0.0.1:") || e.RequestID == "" || e.Time == "" {
			t.Errorf("line %d: who %+v, remote %q, request %q, time %q", i, e.Who, e.Remote, e.RequestID, e.Time)
		}
	}
}
