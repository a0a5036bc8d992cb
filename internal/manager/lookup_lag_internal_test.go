package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
)

// lookupEnv is a manager over simulated engines, each counting the
// container inspects it is asked for.
type lookupEnv struct {
	m        *Manager
	pool     *engine.Pool
	sims     []*enginesim.Engine
	inspects []*atomic.Int64
}

func newLookupEnv(t *testing.T, n int) *lookupEnv {
	t.Helper()
	return newLookupEnvWith(t, n, engine.Options{RefreshInterval: time.Minute, FailureRetry: 1, Timeout: 2 * time.Second}, nil)
}

// newLookupEnvWith is newLookupEnv with the pool's options, and hold (if
// set) called before simulated engine i answers each request.
func newLookupEnvWith(t *testing.T, n int, opts engine.Options, hold func(i int, r *http.Request)) *lookupEnv {
	t.Helper()
	env := &lookupEnv{}
	var addrs []string
	for i := range n {
		s, err := enginesim.Start(enginesim.Options{Name: fmt.Sprintf("node%d", i+1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		count := &atomic.Int64{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := r.URL.Path; strings.HasSuffix(p, "/json") && !strings.HasSuffix(p, "/containers/json") &&
				(strings.Contains(p, "/containers/") || strings.Contains(p, "/exec/")) {
				count.Add(1)
			}
			if hold != nil {
				hold(i, r)
			}
			s.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		env.sims, env.inspects = append(env.sims, s), append(env.inspects, count)
		addrs = append(addrs, srv.Listener.Addr().String())
	}
	env.pool = engine.NewPool(opts, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = env.pool.Run(ctx); done <- struct{}{} }()
	env.m = New(Config{Pool: env.pool})
	go func() { _ = env.m.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	env.pool.Update(addrs)
	until(t, "every engine is healthy", func() bool { return len(env.pool.Healthy()) == n })
	return env
}

func until(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func (env *lookupEnv) asked() int64 {
	var n int64
	for _, c := range env.inspects {
		n += c.Load()
	}
	return n
}

// engineOf is the pool's engine of simulated engine i.
func (env *lookupEnv) engineOf(i int) *engine.Engine {
	for _, e := range env.pool.Engines() {
		if e.Name() == env.sims[i].Name() {
			return e
		}
	}
	return nil
}

func shortSettle(t *testing.T, d time.Duration) {
	old := settleAfter
	settleAfter = d
	t.Cleanup(func() { settleAfter = old })
}

// A lookup of a container no engine has, once the engines' caches are
// settled, is answered from the cache: no engine is asked.
func TestLookupMissOfSettledCachesAsksNoEngine(t *testing.T) {
	shortSettle(t, 100*time.Millisecond)
	env := newLookupEnv(t, 5)
	until(t, "every cache is settled", func() bool { return len(env.m.lag.lagging(env.pool.Engines(), time.Now())) == 0 })
	before := env.asked()
	_, _, err := env.m.findContainer(context.Background(), "nosuch")
	if !errdefs.IsNotFound(err) {
		t.Fatalf("lookup of nosuch: %v, want not found", err)
	}
	if n := env.asked() - before; n != 0 {
		t.Errorf("a miss asked the engines %d times, want 0", n)
	}
	// node/name still asks that node (one request), as it always did.
	before = env.asked()
	if _, _, err := env.m.findContainer(context.Background(), "node2/nosuch"); !errdefs.IsNotFound(err) {
		t.Fatalf("lookup of node2/nosuch: %v, want not found", err)
	}
	if n := env.asked() - before; n != 1 {
		t.Errorf("node2/nosuch asked the engines %d times, want 1", n)
	}
}

// An engine whose cache began a refresh lately (an event being applied)
// may lag: a miss asks it, and only it, until it has been still for
// settleAfter.
func TestLookupMissAsksEnginesWhoseCacheMoved(t *testing.T) {
	env := newLookupEnv(t, 5)
	var lt lagTracker
	engines := env.pool.Engines()
	now := time.Now().Add(time.Hour) // every engine healthy for long
	if got := lt.lagging(engines, now); len(got) != len(engines) {
		t.Fatalf("engines never seen: %d lagging, want all %d (their counts' age is unknown)", len(got), len(engines))
	}
	now = now.Add(settleAfter)
	if got := lt.lagging(engines, now); len(got) != 0 {
		t.Fatalf("%d lagging after a still settleAfter, want 0", len(got))
	}
	moved := env.engineOf(2)
	if err := moved.RefreshContainer(context.Background(), "0123456789ab"); err != nil {
		t.Fatal(err)
	}
	got := lt.lagging(engines, now.Add(time.Millisecond))
	if len(got) != 1 || got[0] != moved {
		t.Fatalf("after a refresh on %s: lagging %v, want only it", moved.Name(), names(got))
	}
	if got := lt.lagging(engines, now.Add(settleAfter)); len(got) != 1 {
		t.Errorf("%d lagging just before settleAfter ends, want 1", len(got))
	}
	if got := lt.lagging(engines, now.Add(settleAfter+time.Millisecond)); len(got) != 0 {
		t.Errorf("%d lagging once settled, want 0", len(got))
	}
}

func names(es []*engine.Engine) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// A container made on an engine directly, behind shoal's back, is found
// by a lookup right after, whether its event has reached the cache yet
// or not (the case findLive is for).
func TestLookupFindsContainerMadeBehindShoalsBack(t *testing.T) {
	shortSettle(t, 100*time.Millisecond)
	// A grace longer than shoal's: a loaded test machine may take more
	// than 20 ms to read an event; what is tested is that the miss waits
	// and asks again, not how long the event takes.
	oldGrace := missGrace
	missGrace = 250 * time.Millisecond
	t.Cleanup(func() { missGrace = oldGrace })
	env := newLookupEnv(t, 5)
	until(t, "every cache is settled", func() bool { return len(env.m.lag.lagging(env.pool.Engines(), time.Now())) == 0 })
	for i := range 5 {
		name := fmt.Sprintf("direct%d", i)
		id := createDirectly(t, env.sims[i%5], name)
		e, c, err := env.m.findContainer(context.Background(), name)
		if err != nil || c == nil || c.ID != id || e.Name() != env.sims[i%5].Name() {
			t.Fatalf("lookup of %s made on %s a moment ago: %v, %v", name, env.sims[i%5].Name(), c, err)
		}
	}
}

// createDirectly makes a container on sim through its API, as a client
// of the engine (not of shoal) would.
func createDirectly(t *testing.T, sim *enginesim.Engine, name string) string {
	t.Helper()
	resp, err := http.Post("http://"+sim.Addr()+"/v1.52/containers/create?name="+name, "application/json", strings.NewReader(`{"Image":"busybox"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"Id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create %s on %s: %d, %v", name, sim.Name(), resp.StatusCode, err)
	}
	return out.ID
}

// A miss in a lagging engine's cache asks that engine, which has it.
func TestLookupAsksLaggingEngine(t *testing.T) {
	env := newLookupEnv(t, 3)
	e := env.engineOf(1)
	// Made behind the engine's event stream: a sim's own records are
	// made without an event only at its start, so make it and forget it.
	id := createDirectly(t, env.sims[1], "late")
	until(t, "the event cached it", func() bool { return e.Container(id) != nil })
	e.ForgetContainer(id) // the cache lags now (and its refresh count moved)
	h, err := env.m.findLive(context.Background(), env.pool.Engines(), "late")
	if err != nil || h.c == nil || h.c.ID != id || h.e != e {
		t.Fatalf("findLive(late): %+v, %v", h, err)
	}
}

func TestExecLookupOfMalformedIDAsksNoEngine(t *testing.T) {
	env := newLookupEnv(t, 3)
	before := env.asked()
	if _, err := env.m.ResolveExec(context.Background(), "nosuch"); !errdefs.IsNotFound(err) {
		t.Fatalf("ResolveExec(nosuch): %v, want not found", err)
	}
	if n := env.asked() - before; n != 0 {
		t.Errorf("asked %d times", n)
	}
	for id, want := range map[string]bool{strings.Repeat("ab", 32): true, strings.Repeat("AB", 32): false, "abc": false, strings.Repeat("a", 65): false} {
		if got := execIDShape(id); got != want {
			t.Errorf("execIDShape(%q) = %v, want %v", id, got, want)
		}
	}
}

// Run returns only after its lag watcher has stopped: a caller that closes
// what the watcher reads once Run has returned (a test's cleanup did) must
// not race with it.
func TestRunWaitsForItsLagWatcher(t *testing.T) {
	pool := engine.NewPool(engine.Options{RefreshInterval: time.Minute}, nil)
	m := New(Config{Pool: pool})
	for range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		returned := make(chan struct{})
		go func() { _ = m.Run(ctx); close(returned) }()
		time.Sleep(time.Millisecond)
		cancel()
		<-returned
		buf := make([]byte, 1<<20)
		if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "(*lagTracker).watch") {
			t.Fatalf("Run returned with its lag watcher still running:\n%s", stacks)
		}
	}
}
