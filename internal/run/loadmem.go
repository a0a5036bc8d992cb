package run

import (
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// returnLoadMemory is what manage's engine.Options.Loaded does first
// (loadGC): once the engines shoal started with have all ended their
// first load, it collects and gives back to the system the memory the
// load left free.
//
// Loading 1,000 engines allocates ~420 MB for a live heap of ~45 MB; Go's
// collector lets the heap grow to about twice what is live between
// collections and hands freed pages back only slowly, so RSS right after
// loading was the load's peak (~143 MiB). One forced collection and
// release (some tens of milliseconds of a core, once) brings it to what
// is live and what the load's garbage left half used. What shoal
// allocates afterwards grows the heap again up to the collector's goal:
// this does not change how often it collects afterwards, so it costs the
// calls nothing (docs/benchmarks.md, issue 16 part 3).
func returnLoadMemory(log *slog.Logger) func() {
	return func() {
		start := time.Now()
		debug.FreeOSMemory()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"},
			{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"},
			{Name: "/gc/scan/stack:bytes"}, {Name: "/sched/goroutines:goroutines"}, {Name: "/gc/stack/starting-size:bytes"}}
		metrics.Read(s)
		val := func(i int) uint64 {
			if s[i].Value.Kind() != metrics.KindUint64 {
				return 0
			}
			return s[i].Value.Uint64()
		}
		mib := func(i int) uint64 { return val(i) >> 20 }
		// stacks_used is what the goroutines' stacks held when the
		// collection scanned them; stacks what their stacks take.
		log.Info("engines loaded: memory the load left free returned to the system", "took", time.Since(start).Round(time.Millisecond),
			"live_heap_mib", mib(0), "stacks_mib", mib(1), "stacks_used_mib", mib(4), "goroutines", val(5),
			"stack_start_kib", val(6)>>10, "mapped_mib", mib(2)-mib(3))
	}
}
