package dockerapi_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// userCert issues a user certificate from root as 'shoal cert create'
// does: role (shoal-admin, ...) and "scope:k=v" entries.
func userCert(t *testing.T, root *ca.RootCA, cn string, role string, scopes ...string) tls.Certificate {
	t.Helper()
	req := ca.ClientRequest{Name: cn, Role: ca.ClientRole(role)}
	for _, s := range scopes {
		req.Scopes = append(req.Scopes, strings.TrimPrefix(s, ca.ScopePrefix))
	}
	nc, err := root.IssueClient(req)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := nc.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// execEngine adds exec instances to a simulated engine, which has none.
type execEngine struct {
	sim   *enginesim.Engine
	mu    sync.Mutex
	execs map[string]execRecord
}

type execRecord struct {
	ContainerID   string
	ProcessConfig struct {
		Privileged bool `json:"privileged"`
	}
}

func (e *execEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if i := strings.Index(path, "/containers/"); i >= 0 && strings.HasSuffix(path, "/exec") && r.Method == "POST" {
		e.createExec(w, r, strings.TrimSuffix(path[i+len("/containers/"):], "/exec"))
		return
	}
	if i := strings.Index(path, "/exec/"); i >= 0 {
		id, op, _ := strings.Cut(path[i+len("/exec/"):], "/")
		e.mu.Lock()
		x, ok := e.execs[id]
		e.mu.Unlock()
		switch {
		case !ok:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"message":"No such exec instance: %s"}`, id)
		case op == "json":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(x)
		default: // start, detached: nothing to stream
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, "{}")
		}
		return
	}
	e.sim.ServeHTTP(w, r)
}

func (e *execEngine) createExec(w http.ResponseWriter, r *http.Request, ref string) {
	rec := httptest.NewRecorder()
	e.sim.ServeHTTP(rec, httptest.NewRequest("GET", "/containers/"+ref+"/json", nil))
	var c struct{ ID string }
	var body struct{ Privileged bool }
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &c) != nil || json.NewDecoder(r.Body).Decode(&body) != nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	e.mu.Lock()
	id := fmt.Sprintf("exec%d", len(e.execs))
	x := execRecord{ContainerID: c.ID}
	x.ProcessConfig.Privileged = body.Privileged
	e.execs[id] = x
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"Id":%q}`, id)
}

// tlsCluster is a manager over one simulated engine holding web (team=web)
// and db (team=db), serving its API with --tlsverify over the cluster CA.
type tlsCluster struct {
	url  string
	root *ca.RootCA
	pool *x509.CertPool
}

func startTLSCluster(t *testing.T) *tlsCluster {
	t.Helper()
	sim, err := enginesim.Start(enginesim.Options{Name: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	for _, c := range []struct{ name, team string }{{"web", "web"}, {"db", "db"}} {
		if _, err := sim.Create(enginesim.CreateSpec{Name: c.name, Image: "busybox", Labels: map[string]string{"team": c.team}}); err != nil {
			t.Fatal(err)
		}
	}
	eng := httptest.NewServer(&execEngine{sim: sim, execs: map[string]execRecord{}})
	t.Cleanup(eng.Close)
	pool := engine.NewPool(engine.Options{RefreshInterval: 100 * time.Millisecond, Timeout: 2 * time.Second}, nil)
	pool.Update([]string{eng.Listener.Addr().String()})
	stop := make(chan struct{})
	done := make(chan struct{})
	ctx, cancel := contextUntil(stop)
	go func() { defer close(done); _ = pool.Run(ctx) }()
	t.Cleanup(func() { close(stop); cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); len(pool.Healthy()) < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("engine did not become healthy")
		}
	}
	mgr := manager.New(manager.Config{Pool: pool, Placer: scheduler.New(scheduler.Spread{}, scheduler.Options{}), Strategy: "spread", Logger: slog.New(slog.DiscardHandler)})

	root, err := ca.NewRootCA("cluster1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := root.IssueNode(ca.NodeRequest{NodeID: "mgr1", Role: ca.RoleManager, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := nc.TLS()
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewUnstartedServer(dockerapi.New(mgr, "test", nil))
	api.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	api.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: root.Pool(), ClientAuth: tls.RequireAndVerifyClientCert}
	api.StartTLS()
	t.Cleanup(api.Close)
	return &tlsCluster{url: api.URL, root: root, pool: root.Pool()}
}

// client is a Docker API client holding a certificate for cn with ous.
func (c *tlsCluster) client(t *testing.T, cn, role string, scopes ...string) *apiClient {
	cert := userCert(t, c.root, cn, role, scopes...)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.pool, Certificates: []tls.Certificate{cert}}}
	t.Cleanup(tr.CloseIdleConnections)
	return &apiClient{t: t, url: c.url, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

type apiClient struct {
	t   *testing.T
	url string
	hc  *http.Client
}

// do makes a call and returns the status and the body.
func (a *apiClient) do(method, path, body string) (int, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+"/v1.45"+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func (a *apiClient) want(method, path, body string, status int, contains string) string {
	a.t.Helper()
	got, b := a.do(method, path, body)
	if got != status || !strings.Contains(b, contains) {
		a.t.Errorf("%s %s: %d %s; want %d with %q", method, path, got, b, status, contains)
	}
	return b
}

// Roles over real TLS client certificates, a real manager and a simulated
// engine: what each may do, exec starts checked at start, and scope.
func TestRolesOverTLS(t *testing.T) {
	c := startTLSCluster(t)
	viewer := c.client(t, "vera", "shoal-viewer")
	op := c.client(t, "otto", "shoal-operator")
	admin := c.client(t, "ada", "shoal-admin")
	webOp := c.client(t, "wes", "shoal-operator", "scope:team=web")
	noCert := &apiClient{t: t, url: c.url, hc: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.pool}}}}
	if _, err := noCert.hc.Get(c.url + "/_ping"); err == nil {
		t.Error("a client without a certificate was served")
	}

	viewer.want("GET", "/containers/json?all=1", "", http.StatusOK, `"/node1/db"`)
	viewer.want("POST", "/containers/web/exec", `{"Cmd":["sh"]}`, http.StatusForbidden,
		`{"message":"authorization denied: vera (viewer) may not exec into containers"}`)
	op.want("POST", "/containers/create?name=priv", `{"Image":"busybox","HostConfig":{"Privileged":true}}`, http.StatusForbidden,
		"authorization denied: otto (operator) may not run privileged containers")
	op.want("POST", "/containers/create?name=plain", `{"Image":"busybox"}`, http.StatusCreated, `"Id"`)
	op.want("POST", "/containers/plain/start", "", http.StatusNoContent, "")

	// An exec ID is all it takes to start it: the start is checked too.
	var ex struct{ ID string }
	b := admin.want("POST", "/containers/web/exec", `{"Cmd":["sh"],"Privileged":true}`, http.StatusCreated, `"Id"`)
	if err := json.Unmarshal([]byte(b), &ex); err != nil || ex.ID == "" {
		t.Fatalf("exec create: %s", b)
	}
	viewer.want("POST", "/exec/"+ex.ID+"/start", `{"Detach":true}`, http.StatusForbidden,
		"authorization denied: vera (viewer) may not exec into containers")
	op.want("POST", "/exec/"+ex.ID+"/start", `{"Detach":true}`, http.StatusForbidden,
		"authorization denied: otto (operator) may not run privileged exec instances")
	op.want("POST", "/exec/"+ex.ID+"/resize?h=10&w=10", ``, http.StatusForbidden, "may not run privileged exec instances")
	viewer.want("GET", "/exec/"+ex.ID+"/json", ``, http.StatusOK, `"privileged":true`)
	b = op.want("POST", "/containers/web/exec", `{"Cmd":["sh"]}`, http.StatusCreated, `"Id"`)
	if err := json.Unmarshal([]byte(b), &ex); err != nil {
		t.Fatal(err)
	}
	op.want("POST", "/exec/"+ex.ID+"/start", `{"Detach":true}`, http.StatusOK, "")

	// Scope: web's operator sees and acts on team=web only; db does not
	// exist for it, and what it creates is team=web.
	b = webOp.want("GET", "/containers/json?all=1", "", http.StatusOK, `"/node1/web"`)
	if strings.Contains(b, "/node1/db") || strings.Contains(b, "/node1/plain") {
		t.Errorf("scoped list shows other teams' containers: %s", b)
	}
	webOp.want("GET", "/containers/db/json", "", http.StatusNotFound, `{"message":"No such container: db"}`)
	webOp.want("POST", "/containers/db/stop", "", http.StatusNotFound, "No such container: db")
	webOp.want("POST", "/exec/"+ex.ID+"/start", `{"Detach":true}`, http.StatusOK, "") // an exec in web
	b = op.want("POST", "/containers/db/exec", `{"Cmd":["sh"]}`, http.StatusCreated, `"Id"`)
	var dbExec struct{ ID string }
	_ = json.Unmarshal([]byte(b), &dbExec)
	webOp.want("POST", "/exec/"+dbExec.ID+"/start", `{"Detach":true}`, http.StatusNotFound, "No such exec instance")
	webOp.want("POST", "/containers/create?name=web2", `{"Image":"busybox"}`, http.StatusCreated, `"Id"`)
	webOp.want("GET", "/containers/web2/json", "", http.StatusOK, `"team":"web"`)
	webOp.want("POST", "/containers/create?name=db2", `{"Image":"busybox","Labels":{"team":"db"}}`, http.StatusForbidden, "outside its scope")

	// Node and swarm calls are an admin's.
	op.want("POST", "/swarm/leave?force=1", "", http.StatusForbidden, "authorization denied: otto (operator) may not leave the swarm")
}

// contextUntil is a context that ends when stop is closed.
func contextUntil(stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
