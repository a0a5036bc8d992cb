package engine

// Refreshes counts the cache refreshes this engine has begun (of one
// container, on an event or after a forwarded call, or of its whole list)
// and the containers it dropped. A count that has not moved for a while
// says the cache is settled: no event is being applied and none arrived
// lately, so a container missing from it is missing on the engine too
// (the manager's lookups answer such a miss from the cache instead of
// asking every engine).
func (e *Engine) Refreshes() uint64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.ticket
}
