package run

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// returnLoadMemory is manage's engine.Options.Loaded: once the engines
// shoal started with have all ended their first load, it collects and
// gives back to the system the memory the load left free.
//
// Loading 1,000 engines allocates ~470 MB for a live heap of ~48 MB; Go's
// collector lets the heap grow to about twice what is live between
// collections and hands freed pages back only slowly, so RSS right after
// loading was the load's peak (~143–146 MiB). The goroutines that stay
// (two an engine) also keep the stacks the load grew: a collection halves
// a stack less than a quarter used, once (20 MB of stacks right after
// loading, 10 MB a minute later). So: collections until the stacks stop
// shrinking (at most maxLoadCollections), then one that returns every
// free page — ~50 ms of a core, once. What shoal allocates afterwards
// grows the heap again up to the collector's goal, as before: this does
// not change how often it collects, so it costs the calls nothing
// (docs/benchmarks.md, issue 16 part 3).
func returnLoadMemory(log *slog.Logger) func() {
	return func() {
		start := time.Now()
		s := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}, {Name: "/memory/classes/heap/objects:bytes"},
			{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
		read := func(i int) uint64 {
			metrics.Read(s)
			if s[i].Value.Kind() != metrics.KindUint64 {
				return 0
			}
			return s[i].Value.Uint64()
		}
		stacks := read(0)
		n := 0
		for n < maxLoadCollections {
			runtime.GC()
			n++
			now := read(0)
			if now > stacks-stacks/16 { // less than 1/16 smaller: done
				break
			}
			stacks = now
		}
		debug.FreeOSMemory()
		metrics.Read(s)
		mib := func(i int) uint64 {
			if s[i].Value.Kind() != metrics.KindUint64 {
				return 0
			}
			return s[i].Value.Uint64() >> 20
		}
		log.Info("engines loaded: memory the load left free returned to the system", "took", time.Since(start).Round(time.Millisecond),
			"collections", n+1, "live_heap_mib", mib(1), "stacks_mib", mib(0), "mapped_mib", mib(2)-mib(3))
	}
}

// maxLoadCollections bounds the collections returnLoadMemory makes to
// shrink the stacks, besides the last one.
const maxLoadCollections = 4
