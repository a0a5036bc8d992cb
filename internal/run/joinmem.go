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
// its peak. joinLoads watches the pool instead: while engines are
// loading for the first time it collects as manage's load does
// (loadGOGC, unless GOGC is set), and once none is left, if enough have
// loaded since the last release, it returns the memory their loads left
// free (returnLoadMemory) and sets GOGC back.
const (
	// joinPoll is how often the pool's engines are counted (a read lock
	// each: ~30 µs at 1,000 engines).
	joinPoll = 500 * time.Millisecond
	// joinRelease is how many first loads end before a release is worth
	// its collection; a node joining now and then releases nothing.
	joinRelease = 50
	// joinSlow is how many engines loading at once make the collector
	// run as during manage's load.
	joinSlow = 16
	// joinQuiet is how many looks in a row with no load ended count as
	// the storm's end while some engines are still Pending (2 s).
	joinQuiet = 4
)

// joinLoads follows the pool's first loads until ctx ends (a component of
// the cluster manager's group).
type joinLoads struct {
	pool    *engine.Pool
	log     *slog.Logger
	release func() // returnLoadMemory; a field for tests
	setGC   func(int) int
	loading func(*engine.Engine) bool // Pending; a field for tests

	pending  map[*engine.Engine]bool // engines seen loading (Pending), not yet seen loaded
	loaded   int                     // first loads ended since the last release
	prevGC   int                     // GOGC to set back; -1 while not lowered
	envGOGC  bool                    // GOGC is set in the environment: leave it alone
	released int                     // releases so far (tests)
	quiet    int                     // looks in a row with no load ended
}

func newJoinLoads(pool *engine.Pool, log *slog.Logger) *joinLoads {
	return &joinLoads{pool: pool, log: log, release: returnLoadMemory(log), setGC: debug.SetGCPercent,
		loading: func(e *engine.Engine) bool { st, _ := e.State(); return st == engine.Pending },
		pending: map[*engine.Engine]bool{}, prevGC: -1, envGOGC: os.Getenv("GOGC") != ""}
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

// step looks at the engines once: those Pending are loading (or being
// contacted); one seen Pending before and not now has ended its load,
// loaded or failed. The release comes once enough loads have ended and
// none is left, or none has ended for joinQuiet looks in a row (an
// engine that stays Pending, its node's engine unreachable, must not hold
// it off; one look without an end is common in a storm, whose loads wait
// for their turn, and a release then would leave the rest unreleased).
func (j *joinLoads) step(engines []*engine.Engine) {
	now := make(map[*engine.Engine]bool, len(j.pending))
	for _, e := range engines {
		if j.loading(e) {
			now[e] = true
		}
	}
	ended := 0
	for e := range j.pending {
		if !now[e] {
			ended++ // loaded, failed or removed: its load's garbage is garbage either way
		}
	}
	j.pending = now
	j.loaded += ended
	if len(now) >= joinSlow && j.prevGC < 0 && !j.envGOGC {
		j.prevGC = j.setGC(loadGOGC)
	}
	if ended == 0 {
		j.quiet++
	} else {
		j.quiet = 0
	}
	if j.loaded >= joinRelease && (len(now) == 0 || j.quiet >= joinQuiet) {
		j.log.Info("cluster: nodes' engines loaded", "engines", j.loaded, "still_pending", len(now))
		j.restoreGC()
		j.release()
		j.released++
		j.loaded = 0
		return
	}
	if len(now) == 0 {
		j.restoreGC()
	}
}

func (j *joinLoads) restoreGC() {
	if j.prevGC >= 0 {
		j.setGC(j.prevGC)
		j.prevGC = -1
	}
}
