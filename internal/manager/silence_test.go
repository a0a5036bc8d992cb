package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// silentBound is how long a call may take when one engine is hung: a
// probe after 2 s and a ping of a second, with room for a loaded machine.
// Waiting for the hung engine would take the test client's 30 s.
const silentBound = 12 * time.Second

// hungCluster serves a manager over n simulated engines whose health
// checks never give up on an engine (FailureRetry is huge): a hung engine
// stays Healthy, so what is tested is how calls wait for it, not that it
// is skipped once Unhealthy.
func hungCluster(t *testing.T, n int) (*engine.Pool, []*enginesim.Engine, string) {
	t.Helper()
	f, err := enginesim.StartFleet(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	pool := engine.NewPool(engine.Options{RefreshInterval: 100 * time.Millisecond, FailureRetry: 1 << 30, Timeout: 2 * time.Second}, nil)
	pool.Update(f.Addrs())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = pool.Run(ctx); close(done) }()
	m := New(Config{Pool: pool, Placer: scheduler.New(scheduler.Spread{}, scheduler.Options{})})
	api := httptest.NewServer(dockerapi.New(m, "test", nil))
	t.Cleanup(func() {
		for _, s := range f.Engines {
			s.Resume()
		}
		api.Close()
		cancel()
		<-done
	})
	for deadline := time.Now().Add(10 * time.Second); len(pool.Healthy()) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("engines did not become healthy")
		}
	}
	return pool, f.Engines, api.URL
}

var slowClient = &http.Client{Timeout: 30 * time.Second}

// call sends one request to the API and returns status and body.
func call(t *testing.T, method, url, body string) (int, string, time.Duration) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	t0 := time.Now()
	resp, err := slowClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v after %s", method, url, err, time.Since(t0))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(t0)
}

// With one engine hung but still Healthy, lists answer in bounded time
// with the other engines' objects; the volume list, whose reply has
// warnings, names the node left out.
func TestListsLeaveOutASilentNode(t *testing.T) {
	_, sims, url := hungCluster(t, 3)
	for _, s := range sims {
		if st, b, _ := call(t, "POST", url+"/v1.41/volumes/create", fmt.Sprintf(`{"Name": "%s/vol-%s"}`, s.Name(), s.Name())); st != 201 {
			t.Fatalf("volume create on %s: %d %s", s.Name(), st, b)
		}
	}
	sims[1].Hang()
	var vl struct {
		Volumes  []struct{ Name string }
		Warnings []string
	}
	st, b, took := call(t, "GET", url+"/v1.41/volumes", "")
	if st != 200 || json.Unmarshal([]byte(b), &vl) != nil {
		t.Fatalf("volume ls with a hung node: %d %s", st, b)
	}
	t.Logf("volume ls with a hung node answered in %s", took.Round(time.Millisecond))
	if took > silentBound {
		t.Errorf("volume ls took %s", took)
	}
	var names []string
	for _, v := range vl.Volumes {
		names = append(names, v.Name)
	}
	got := strings.Join(names, " ")
	for i, s := range sims {
		if want := "vol-" + s.Name(); strings.Contains(got, want) != (i != 1) { // listed under the name given
			t.Errorf("volumes %q: %s listed: %v", got, want, i != 1)
		}
	}
	if len(vl.Warnings) != 1 || !strings.Contains(vl.Warnings[0], "WARNING: node "+sims[1].Name()) || !strings.Contains(vl.Warnings[0], "no answer") {
		t.Errorf("warnings %q: want one naming node %s", vl.Warnings, sims[1].Name())
	}
	until := fmt.Sprint(time.Now().Unix())
	for _, path := range []string{"/images/json", "/networks", "/system/df", "/images/nosuch/json", "/networks/nosuch",
		"/containers/json?all=1&size=1", "/events?since=0&until=" + until} {
		st, b, took := call(t, "GET", url+"/v1.41"+path, "")
		if took > silentBound || st >= 500 {
			t.Errorf("GET %s with a hung node: %d in %s: %s", path, st, took, b)
		}
	}
	for _, path := range []string{"/containers/prune", "/images/prune", "/networks/prune", "/volumes/prune"} {
		st, b, took := call(t, "POST", url+"/v1.41"+path, "")
		if took > silentBound || st != 200 {
			t.Errorf("POST %s with a hung node: %d in %s: %s", path, st, took, b)
		}
	}
}

// A volume list where one engine fails on its own (not a refusal every
// engine gives) answers with the others and a warning naming that node.
func TestListWarnsOfAFailingNode(t *testing.T) {
	f, err := enginesim.StartFleet(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/volumes") && r.URL.Query().Get("filters") != "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(500)
			_, _ = io.WriteString(w, `{"message":"disk I/O error"}`)
			return
		}
		f.Engines[1].ServeHTTP(w, r)
	}))
	t.Cleanup(broken.Close)
	pool := engine.NewPool(engine.Options{RefreshInterval: 100 * time.Millisecond, Timeout: 2 * time.Second}, nil)
	pool.Update([]string{f.Engines[0].Addr(), broken.Listener.Addr().String()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = pool.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	m := New(Config{Pool: pool, Placer: scheduler.New(scheduler.Spread{}, scheduler.Options{})})
	api := httptest.NewServer(dockerapi.New(m, "test", nil))
	t.Cleanup(api.Close)
	for deadline := time.Now().Add(10 * time.Second); len(pool.Healthy()) < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("engines did not become healthy")
		}
	}
	st, b, _ := call(t, "GET", api.URL+`/v1.41/volumes?filters={"dangling":["true"]}`, "")
	var vl struct {
		Volumes  []json.RawMessage
		Warnings []string
	}
	if st != 200 || json.Unmarshal([]byte(b), &vl) != nil {
		t.Fatalf("volume ls with a failing node: %d %s", st, b)
	}
	if len(vl.Warnings) != 1 || !strings.Contains(vl.Warnings[0], "disk I/O error") || !strings.Contains(vl.Warnings[0], broken.Listener.Addr().String()) {
		t.Errorf("warnings %q: want the failing node and its error", vl.Warnings)
	}
}

// A create placed on a hung (still Healthy) node moves to another node in
// bounded time; when the hung node resumes, the container the abandoned
// create makes there is removed.
func TestCreateMovesOffASilentNode(t *testing.T) {
	pool, sims, url := hungCluster(t, 2)
	sims[0].Hang()
	for _, name := range []string{"mv1", "mv2"} {
		st, b, took := call(t, "POST", url+"/v1.41/containers/create?name="+name, `{"Image":"busybox","Cmd":["sleep","1d"]}`)
		if st != 201 || took > silentBound {
			t.Fatalf("create %s with a hung node: %d in %s: %s", name, st, took, b)
		}
		t.Logf("create %s answered in %s", name, took.Round(time.Millisecond))
	}
	if sims[0].Held() == 0 {
		t.Fatal("no create was placed on the hung node: nothing was moved")
	}
	if all, _ := sims[1].Count(); all != 2 {
		t.Fatalf("the healthy node has %d containers, want both", all)
	}
	sims[0].Resume()
	waitUntil(t, "the abandoned creates removed from the resumed node", func() bool {
		all, _ := sims[0].Count()
		return all == 0 && pool.Engines()[0].Healthy()
	})
	st, b, _ := call(t, "GET", url+"/v1.41/containers/json?all=1", "")
	if st != 200 || strings.Count(b, `"/mv1"`)+strings.Count(b, `/mv1"`) == 0 {
		t.Fatalf("ps -a: %d %s", st, b)
	}
	var list []struct{ Names []string }
	_ = json.Unmarshal([]byte(b), &list)
	if len(list) != 2 {
		t.Errorf("ps -a lists %d containers, want the two moved ones: %s", len(list), b)
	}
}

// A create on a hung node that nothing else can take fails with a 503
// naming the node, in bounded time; once the node resumes, what the
// abandoned create made is removed, so the name is free.
func TestCreateOnASilentNodeFailsAndFreesTheName(t *testing.T) {
	pool, sims, url := hungCluster(t, 1)
	sims[0].Hang()
	st, b, took := call(t, "POST", url+"/v1.41/containers/create?name=solo", `{"Image":"busybox"}`)
	if st != 503 || !strings.Contains(b, "node "+sims[0].Name()) || !strings.Contains(b, "does not answer") || took > silentBound {
		t.Fatalf("create on the only, hung, node: %d in %s: %s", st, took, b)
	}
	if sims[0].Held() == 0 {
		t.Fatal("the create did not reach the hung node")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub := pool.Subscribe(ctx)
	sims[0].Resume()
	// The held create is answered after the resume: its container is
	// made, then removed.
	seen := map[string]bool{}
	for !seen["create"] || !seen["destroy"] {
		select {
		case ev := <-sub.C():
			if ev.Message.Actor.Attributes["name"] == "solo" {
				seen[string(ev.Message.Action)] = true
			}
		case <-ctx.Done():
			t.Fatalf("after the resume, events of solo: %v", seen)
		}
	}
	st, b, _ = call(t, "POST", url+"/v1.41/containers/create?name=solo", `{"Image":"busybox"}`)
	if st != 201 {
		t.Fatalf("create solo after the node resumed: %d %s", st, b)
	}
}

// An engine marked Unhealthy takes no new container: every create goes
// to the healthy node, none reaches the unhealthy one.
func TestUnhealthyNodeIsNotPlacedOn(t *testing.T) {
	f, err := enginesim.StartFleet(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	var creates atomic.Int32
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/containers/create") {
			creates.Add(1)
		}
		f.Engines[0].ServeHTTP(w, r)
	}))
	pool := engine.NewPool(engine.Options{RefreshInterval: 100 * time.Millisecond, FailureRetry: 2, Timeout: 2 * time.Second}, nil)
	pool.Update([]string{counting.Listener.Addr().String(), f.Engines[1].Addr()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = pool.Run(ctx); close(done) }()
	m := New(Config{Pool: pool, Placer: scheduler.New(scheduler.Spread{}, scheduler.Options{})})
	api := httptest.NewServer(dockerapi.New(m, "test", nil))
	t.Cleanup(func() { f.Engines[0].Resume(); api.Close(); counting.Close(); cancel(); <-done })
	waitUntil(t, "engines healthy", func() bool { return len(pool.Healthy()) == 2 })
	f.Engines[0].Hang()
	var hung *engine.Engine
	for _, e := range pool.Engines() {
		if e.Addr == counting.Listener.Addr().String() {
			hung = e
		}
	}
	waitUntil(t, "the hung engine Unhealthy", func() bool { st, _ := hung.State(); return st == engine.Unhealthy })
	for i := range 4 {
		if st, b, _ := call(t, "POST", api.URL+fmt.Sprintf("/v1.41/containers/create?name=u%d", i), `{"Image":"busybox"}`); st != 201 {
			t.Fatalf("create u%d: %d %s", i, st, b)
		}
	}
	if n := creates.Load(); n != 0 {
		t.Errorf("%d creates were sent to the unhealthy engine", n)
	}
	if all, _ := f.Engines[1].Count(); all != 4 {
		t.Errorf("the healthy engine has %d containers, want 4", all)
	}
}

// When the only engine asked does not answer, a list is an error, not an
// empty success.
func TestListWithNoNodeAnsweringFails(t *testing.T) {
	_, sims, url := hungCluster(t, 1)
	sims[0].Hang()
	for _, path := range []string{"/volumes", "/images/json", "/networks", "/system/df"} {
		st, b, took := call(t, "GET", url+"/v1.41"+path, "")
		if st != 503 || !strings.Contains(b, sims[0].Name()) || took > silentBound {
			t.Errorf("GET %s with the only node hung: %d in %s: %s", path, st, took, b)
		}
	}
}

// Nodes that could not be reached or went silent say nothing about the
// request: the refusal of the nodes that answered is the answer.
func TestRefusedByAllButSilentNodes(t *testing.T) {
	bad := nodeErr{node: "a", err: engine.StatusError(500, "syntax error in pattern")}
	silent := nodeErr{node: "b", err: &silentNode{waited: time.Second}}
	if err := refusedByAll([]error{bad, silent}, 2); err == nil || err.Error() != "syntax error in pattern" {
		t.Errorf("one refused, one silent: %v", err)
	}
	if err := refusedByAll([]error{silent}, 1); err != nil {
		t.Errorf("only a silent node: %v, want nil", err)
	}
}
