package run

import (
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
)

// loadGOGC is the collector's GOGC while the engines shoal starts with
// load (unless GOGC is set in its environment): the heap may grow by half
// of what is live between collections instead of all of it, so the
// load's garbage takes less memory and what stays is packed closer
// (fewer spans half used when the load ends). The load collects more
// often (it allocates ~420 MB at 1,000 engines); the calls after it, with
// GOGC back at its value, do not (docs/benchmarks.md, issue 16 part 3).
const loadGOGC = 50

// loadGC sets GOGC to loadGOGC for the initial load and returns the
// pool's Loaded (returnLoadMemory, then GOGC set back) and a func that
// sets GOGC back if the pool never loaded (call it when manage ends).
func loadGC(log *slog.Logger) (loaded, done func()) {
	prev := -1
	if os.Getenv("GOGC") == "" {
		prev = debug.SetGCPercent(loadGOGC)
	}
	var once sync.Once
	restore := func() {
		once.Do(func() {
			if prev >= 0 {
				debug.SetGCPercent(prev)
			}
		})
	}
	release := returnLoadMemory(log)
	return func() { release(); restore() }, restore
}
