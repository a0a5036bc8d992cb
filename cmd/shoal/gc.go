package main

import (
	"os"
	"runtime/debug"
)

// defaultGCPercent is shoal's GOGC unless the environment sets one. A
// manager's heap is mostly its long-lived cache of every engine's
// containers, and what it allocates per request is small (a `docker ps`
// of 30,000 containers allocates about 2 MiB, its answer is written from
// the cache). Go's default of 100 lets the heap grow to twice the cache
// before collecting, and keeps those pages: at 1,000 engines / 30,000
// containers that was 203 MiB RSS for 70 MiB live; with 25, 157 MiB for
// a few more short collections (docs/benchmarks.md, issue 16).
const defaultGCPercent = 25

// tuneGC sets the GC target unless GOGC is in the environment (which then
// applies as Go reads it; GOMEMLIMIT too).
func tuneGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(defaultGCPercent)
	}
}
