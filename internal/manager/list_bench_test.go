package manager_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/manager"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// BenchmarkListAll is `docker ps -a` over 30,000 cached containers (100
// simulated engines of 300), rendered as dockerapi writes it (issue 16).
func BenchmarkListAll(b *testing.B) {
	m, ctx := listBench(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		list, err := m.ListContainers(ctx, backend.ContainerListOptions{All: true})
		if err != nil || len(list) != listBenchEngines*listBenchPerEngine {
			b.Fatal(len(list), err)
		}
		buf := make([]byte, 0, 64<<10)
		for _, ent := range list {
			buf = ent.Entry.AppendJSON(buf, ent.Status)
			if len(buf) > 48<<10 {
				_, _ = io.Discard.Write(buf)
				buf = buf[:0]
			}
		}
	}
	b.ReportMetric(float64(listBenchEngines*listBenchPerEngine), "containers")
}

// BenchmarkListAllTo is the same `docker ps -a` as dockerapi serves it:
// written straight to the client by ListContainersTo.
func BenchmarkListAllTo(b *testing.B) {
	m, ctx := listBench(b)
	var n countWriter
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		write, err := m.ListContainersTo(ctx, backend.ContainerListOptions{All: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := write(&n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/float64(b.N), "bytes/answer")
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

const listBenchEngines, listBenchPerEngine = 100, 300

// listBench is a manager of 100 simulated engines of 300 containers.
func listBench(b *testing.B) (*manager.Manager, context.Context) {
	const engines, perEngine = listBenchEngines, listBenchPerEngine
	f, err := enginesim.StartFleet(engines, func(i int) enginesim.Options {
		return enginesim.Options{Containers: perEngine * 4 / 5, Stopped: perEngine / 5, Images: 10}
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	pool := engine.NewPool(engine.Options{RefreshInterval: time.Minute, Timeout: 10 * time.Second}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pool.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	pool.Update(f.Addrs())
	total := func() (n int) {
		for _, e := range pool.Healthy() {
			n += len(e.Containers())
		}
		return n
	}
	for deadline := time.Now().Add(time.Minute); total() != engines*perEngine; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d containers cached", total())
		}
	}
	return manager.New(manager.Config{Pool: pool, Placer: scheduler.New(nil, scheduler.Options{})}), ctx
}
