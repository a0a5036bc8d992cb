package run

import (
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// returnLoadMemory is manage's engine.Options.Loaded: once the engines
// shoal started with have all ended their first load, it collects and
// gives back to the system the memory the load left free.
//
// Loading 1,000 engines allocates ~470 MB for a live heap of ~45 MB; Go's
// collector lets the heap grow to twice what is live between collections,
// and hands freed pages back only slowly, so RSS right after loading was
// the load's peak (~146 MiB). One forced collection and release (a few
// tens of milliseconds, once) brings it to what is live. What shoal then
// allocates grows the heap again up to the collector's goal, as before:
// this does not change how often it collects, so it costs the calls
// nothing (docs/benchmarks.md, issue 16 part 3).
func returnLoadMemory(log *slog.Logger) func() {
	return func() {
		start := time.Now()
		debug.FreeOSMemory()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
		metrics.Read(s)
		mib := func(i int) uint64 {
			if s[i].Value.Kind() != metrics.KindUint64 {
				return 0
			}
			return s[i].Value.Uint64() >> 20
		}
		log.Info("engines loaded: memory the load left free returned to the system",
			"took", time.Since(start).Round(time.Millisecond), "live_heap_mib", mib(0), "mapped_mib", mib(1)-mib(2))
	}
}
