package run

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
)

// Under the built-in cluster the engines arrive as their nodes join, not
// all at `shoal init`, so manage's one release once the first engines
// have loaded (loadGC) would come before the load that matters. A join
// storm — hundreds of nodes joining within seconds — allocates as a
// manage start does (each engine's first load), and leaves the heap at
// its peak. joinLoads watches the pool instead: while many engines are
// loading it collects as manage's load does (loadGOGC, unless GOGC is
// set), and once the storm is over (no engine arrived and no load ended
// for a second), if enough engines arrived since the last release, it
// returns the memory their loads left free (returnLoadMemory) and sets
// GOGC back.
const (
	// joinPoll is how often the pool's engines are counted (a read lock
	// each: ~30 µs at 1,000 engines).
	joinPoll = 500 * time.Millisecond
	// joinRelease is how many engines arrive before a release is worth
	// its collection; a node joining now and then releases nothing (until
	// the 50th).
	joinRelease = 50
	// joinSlow is how many engines loading at once make the collector
	// run as during manage's load.
	joinSlow = 16
	// joinQuiet is how many looks in a row with no engine arrived and no
	// load ended make the storm's end (1 s).
	joinQuiet = 2
)

// joinLoads follows the pool's first loads until ctx ends (a component of
// the cluster manager's group).
type joinLoads struct {
	pool    *engine.Pool
	log     *slog.Logger
	release func() // returnLoadMemory; a field for tests
	setGC   func(int) int
	loading func(*engine.Engine) bool // Pending; a field for tests

	known       map[*engine.Engine]bool // the engines at the last look
	arrived     int                     // engines arrived since the last release
	loadingThen int                     // engines Pending at the last look
	prevGC      int                     // GOGC to set back; -1 while not lowered
	envGOGC     bool                    // GOGC is set in the environment: leave it alone
	released    int                     // releases so far (tests)
	quiet       int                     // looks in a row with no engine arrived and no load ended
}

func newJoinLoads(pool *engine.Pool, log *slog.Logger) *joinLoads {
	return &joinLoads{pool: pool, log: log, release: returnLoadMemory(log), setGC: debug.SetGCPercent,
		loading: func(e *engine.Engine) bool { st, _ := e.State(); return st == engine.Pending },
		prevGC:  -1, envGOGC: os.Getenv("GOGC") != ""}
}

// Run counts the pool's engines every joinPoll until ctx ends.
func (j *joinLoads) Run(ctx context.Context) error {
	t := time.NewTicker(joinPoll)
	defer t.Stop()
	defer j.restoreGC()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			j.step(j.pool.Engines())
		}
	}
}

// step looks at the engines once. A storm is engines arriving (nodes
// joining: new engines in the pool) and loading (Pending); it has ended
// once joinQuiet looks in a row saw no engine arrive and no load end. A
// look at which none is Pending proves nothing: joins come a few at a
// time, and their loads may all have ended between two of them. An
// engine that stays Pending (its node's engine unreachable) does not hold
// the release off.
func (j *joinLoads) step(engines []*engine.Engine) {
	known := make(map[*engine.Engine]bool, len(engines))
	arrived, loading := 0, 0
	for _, e := range engines {
		known[e] = true
		if !j.known[e] {
			arrived++
		}
		if j.loading(e) {
			loading++
		}
	}
	j.known = known
	j.arrived += arrived
	if arrived == 0 && loading == j.loadingThen {
		j.quiet++
	} else {
		j.quiet = 0
	}
	j.loadingThen = loading
	if loading >= joinSlow && j.prevGC < 0 && !j.envGOGC {
		j.prevGC = j.setGC(loadGOGC)
	}
	if j.quiet < joinQuiet {
		return
	}
	if j.arrived >= joinRelease {
		j.log.Info("cluster: nodes' engines loaded", "engines", j.arrived, "still_pending", loading)
		j.restoreGC()
		j.release()
		j.released++
		j.arrived = 0
		return
	}
	j.restoreGC()
}

func (j *joinLoads) restoreGC() {
	if j.prevGC >= 0 {
		j.setGC(j.prevGC)
		j.prevGC = -1
	}
}
