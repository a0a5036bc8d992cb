package engine

import "sync/atomic"

// Refreshes counts the cache refreshes this engine has begun (of one
// container, on an event or after a forwarded call, or of its whole list,
// the periodic reloads included) and the containers it dropped. For
// whether a container missing from the cache may still be on the engine,
// see Lag: a periodic reload moves this count without making the cache
// lag.
func (e *Engine) Refreshes() uint64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.ticket
}

// Lag is what may keep the cache from showing a container the engine has
// (a container made on it a moment ago): the manager's lookups that miss
// in the cache ask only the engines whose cache may lag.
//
// What can lag is an event on its way into the cache, and the cache of an
// engine whose events are not followed. A periodic reload (Resync) cannot
// hide a container an event added: a reload's list taken before a create
// is applied before that create's refresh (the session applies events
// only between reloads, and a refresh of a container begins after its
// create, so after the reload began: the newer refresh's result is kept,
// refreshContainers), and a container the list shows is kept even when
// its inspect fails, if the cache has it by then. A reload that still
// drops a container from the cache counts in Changes, as an event would.
type Lag struct {
	// Changes counts the event-driven changes to the cache begun: a
	// container's refresh or drop (on an event, after a forwarded call, a
	// lookup's), an events stream opened and its engine loaded, a full
	// reload that dropped a container the cache had. Periodic reloads
	// that drop nothing do not count.
	Changes uint64
	// Behind says the cache may lag now, however long ago Changes moved:
	// the engine's events are not followed (no session, or its load not
	// ended), events were read and are not applied yet (a reload or a
	// health check holds them), a container's refresh is under way, or
	// one failed (or a reload could not inspect a container it listed and
	// the cache does not have) and no full reload has begun since.
	Behind bool
}

// Lag reports what may keep the cache behind the engine (see Lag).
func (e *Engine) Lag() Lag {
	e.mu.RLock()
	l := Lag{Changes: e.changes, Behind: e.unsure != 0}
	e.mu.RUnlock()
	if !e.following.Load() || e.refreshing.Load() > 0 {
		l.Behind = true
	}
	if q := e.queued.Load(); q != nil && q.Load() > 0 {
		l.Behind = true
	}
	return l
}

// lagState is the engine's part of Lag kept outside e.mu.
type lagState struct {
	following  atomic.Bool                  // a session's load ended, its events are applied as they come
	queued     atomic.Pointer[atomic.Int64] // the current stream's events read and not yet applied
	refreshing atomic.Int32                 // RefreshContainer calls under way
}

// refreshFailed notes, under e.mu, that a container's refresh failed: the
// cache may lack it (its create's refresh) until a reload that begins
// after now lists it.
func (e *Engine) refreshFailed() {
	e.unsure = max(e.unsure, e.ticket)
}
