package engine

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// BenchmarkCacheMemory reports what the pool's cache holds per container
// (B/container: the live heap of a pool over engines with containers less
// that of one over the same engines without) and per engine (goroutine
// stacks included), as the scale runs' manager holds them (issue 16):
//
//	go test -run '^$' -bench BenchmarkCacheMemory -benchtime 1x ./internal/engine/
//
// SHOAL_MEM_PROFILE=file (with -memprofilerate 1) writes a heap profile of
// the loaded pool there.
func BenchmarkCacheMemory(b *testing.B) {
	const engines, running, stopped = 40, 240, 60
	perEngine := func(containers bool) (heap, stacks float64) {
		opts := func(int) enginesim.Options { return enginesim.Options{} }
		if containers {
			opts = func(int) enginesim.Options {
				return enginesim.Options{Containers: running, Stopped: stopped, Images: 10}
			}
		}
		f, err := enginesim.StartFleet(engines, opts)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		h0, s0 := liveHeap()
		p := NewPool(Options{RefreshInterval: time.Hour, Timeout: 10 * time.Second}, nil)
		p.Update(f.Addrs())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = p.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		want := 0
		if containers {
			want = running + stopped
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			n := 0
			for _, e := range p.Healthy() {
				if e.NumContainers() == want {
					n++
				}
			}
			if n == engines {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("pool did not load")
			}
		}
		h1, s1 := liveHeap()
		if dir := os.Getenv("SHOAL_MEM_PROFILE"); dir != "" && containers {
			if f, err := os.Create(dir); err == nil {
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
		return float64(h1-h0) / engines, float64(s1-s0) / engines
	}
	for i := 0; i < b.N; i++ {
		empty, _ := perEngine(false)
		full, stacks := perEngine(true)
		b.ReportMetric((full-empty)/(running+stopped), "B/container")
		b.ReportMetric(empty, "heapB/engine")
		b.ReportMetric(stacks, "stackB/engine")
	}
}

// liveHeap is the heap in use and the stacks after a full collection
// (twice: the first finishes sweeping what the loads left).
func liveHeap() (heap, stacks int64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), int64(ms.StackInuse)
}
