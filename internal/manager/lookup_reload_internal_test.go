package manager

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/engine"
)

// reloadOpts reloads every engine every 50 ms or so (as a pool of
// thousands has some engine reloading at every moment).
var reloadOpts = engine.Options{RefreshInterval: time.Minute, ResyncInterval: 50 * time.Millisecond, FailureRetry: 1, Timeout: 2 * time.Second}

// isReload says whether r is a full reload's list of containers (a
// container's refresh lists with a filter).
func isReload(r *http.Request) bool {
	return strings.HasSuffix(r.URL.Path, "/containers/json") && r.URL.Query().Get("filters") == ""
}

// A lookup of a container no engine has, while the engines' periodic
// reloads run, asks no engine: a reload cannot hide a container an event
// added (engine.Lag), so it does not make the cache "may lag". At 1,000
// engines ~17 reloads begin each second; counted as lag, each made a miss
// ask its engine (12-17 requests a miss).
func TestLookupMissWhileReloadsRunAsksNoEngine(t *testing.T) {
	shortSettle(t, 100*time.Millisecond)
	var reloads atomic.Int64
	env := newLookupEnvWith(t, 5, reloadOpts, func(_ int, r *http.Request) {
		if isReload(r) {
			reloads.Add(1)
		}
	})
	until(t, "every cache is settled while reloads run", func() bool {
		return len(env.m.lag.lagging(env.pool.Engines(), time.Now())) == 0
	})
	from, asked, misses := reloads.Load(), env.asked(), 0
	for reloads.Load()-from < 10 && misses < 500 {
		if _, _, err := env.m.findContainer(context.Background(), "nosuch"); !errdefs.IsNotFound(err) {
			t.Fatalf("lookup of nosuch: %v, want not found", err)
		}
		misses++
	}
	if n := reloads.Load() - from; n < 10 {
		t.Fatalf("only %d reloads during %d misses: the test did not test", n, misses)
	}
	if n := env.asked() - asked; n != 0 {
		t.Errorf("%d misses while %d reloads ran asked the engines %d times, want 0", misses, reloads.Load()-from, n)
	}
}

// A container made on an engine while that engine's reload is under way
// (its list taken, or about to be, before the create; the create's event
// read and held back until the reload ends) is found by a lookup right
// after: the engine is behind (engine.Lag) and the miss asks it, though
// its cache has been still for longer than settleAfter.
func TestLookupFindsContainerMadeDuringAReload(t *testing.T) {
	shortSettle(t, 100*time.Millisecond)
	oldGrace := missGrace
	missGrace = 250 * time.Millisecond // a loaded machine may take longer to read the event
	t.Cleanup(func() { missGrace = oldGrace })
	var holding atomic.Bool
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	env := newLookupEnvWith(t, 3, reloadOpts, func(i int, r *http.Request) {
		if i == 0 && holding.Load() && isReload(r) {
			once.Do(func() { close(held) })
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	t.Cleanup(func() { close(release) }) // before the engines close
	until(t, "every cache is settled", func() bool { return len(env.m.lag.lagging(env.pool.Engines(), time.Now())) == 0 })
	holding.Store(true)
	<-held
	// The reload under way does not make the engine lag by itself.
	until(t, "every cache is settled, a reload held", func() bool { return len(env.m.lag.lagging(env.pool.Engines(), time.Now())) == 0 })
	id := createDirectly(t, env.sims[0], "during")
	e, c, err := env.m.findContainer(context.Background(), "during")
	if err != nil || c == nil || c.ID != id || e.Name() != env.sims[0].Name() {
		t.Fatalf("lookup of a container made during a reload of %s: %v, %v", env.sims[0].Name(), c, err)
	}
}
