package manager

import (
	"context"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
)

// settleAfter is how long an engine's cache must have been still (no
// event-driven change begun, healthy throughout, not behind) before a
// container missing from it counts as missing on the engine. It covers
// an event being applied and a backlog of them (each applied event
// begins a refresh, which keeps the engine unsettled) beyond what
// engine.Lag's Behind already says. Periodic full reloads do not move the
// count: they cannot hide a container an event added (engine.Lag), and
// at 1,000 engines ~17 begin each second, each of which made a miss ask
// its engine.
var settleAfter = time.Second // a var for tests

// missGrace is how long a lookup that missed in settled caches waits for
// an event still on its way before it says no such container: the engine
// sends a container's create event before its answer to the client that
// made it, so the event reaches shoal before that client's next call
// does; this covers its reading and the start of its refresh.
var missGrace = 20 * time.Millisecond

// lagTracker notes when each engine's cache last began an event-driven
// change (engine.Lag), as far
// as lookups have seen: a lookup that misses asks only the engines whose
// cache may lag, not all of them (at 10,000 engines, every `docker
// inspect nosuch` — which compose makes for each service before creating
// it — would otherwise send 10,000 requests).
type lagTracker struct {
	mu   sync.Mutex
	seen map[*engine.Engine]activity
}

type activity struct {
	changes uint64
	at      time.Time // when a lookup first saw this count
}

// lagging returns those of engines (healthy ones: the others cannot be
// asked) whose cache may not show a container the engine has: one whose
// engine says it is behind now (events read and not applied, a
// container's refresh under way or failed, events not followed), one
// healthy for less than settleAfter (its events stream just opened and
// its list just loaded), one whose count of event-driven changes moved
// within settleAfter (an event applied, more may follow), and one not
// seen by a lookup before (its count's age is unknown).
func (l *lagTracker) lagging(engines []*engine.Engine, now time.Time) []*engine.Engine {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[*engine.Engine]activity{}
	}
	var out []*engine.Engine
	for _, e := range engines {
		if !e.Healthy() {
			continue
		}
		lag := e.Lag()
		a, ok := l.seen[e]
		if !ok || a.changes != lag.Changes {
			a = activity{changes: lag.Changes, at: now}
			l.seen[e] = a
		}
		if !ok || lag.Behind || now.Sub(a.at) < settleAfter || now.Sub(e.StateSince()) < settleAfter {
			out = append(out, e)
		}
	}
	if len(l.seen) > len(engines) {
		l.prune(engines)
	}
	return out
}

// watchEvery is how often watch looks at every engine's change count: a
// count that moved is noticed within it, so a cache counts as settled at
// most watchEvery later than it did.
const watchEvery = 250 * time.Millisecond

// watch keeps the tracker current until ctx ends, so that a lookup's miss
// finds every engine already seen (one not seen yet is asked) and the age
// of its change count known.
func (l *lagTracker) watch(ctx context.Context, pool *engine.Pool) {
	if pool == nil {
		return
	}
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			l.lagging(pool.Engines(), now)
		}
	}
}

// prune forgets the engines that left the pool.
func (l *lagTracker) prune(engines []*engine.Engine) {
	live := make(map[*engine.Engine]bool, len(engines))
	for _, e := range engines {
		live[e] = true
	}
	for e := range l.seen {
		if !live[e] {
			delete(l.seen, e)
		}
	}
}
