package manager_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
)

// BenchmarkTaskStart starts tasks of one service over 20 simulated
// engines, 16 at a time, as the orchestrator's loop does.
func BenchmarkTaskStart(b *testing.B) {
	env := newTaskEnv(b, 20)
	svc := webService("busybox")
	svc.Spec.TaskTemplate.Resources = &swarm.ResourceRequirements{Reservations: &swarm.Resources{MemoryBytes: 8 << 20}}
	nodes := make([]string, 20)
	for i := range nodes {
		nodes[i] = env.node(i)
	}
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			task := webTask(svc, fmt.Sprintf("task%021d", i), nodes[i%len(nodes)], i+1)
			if _, err := env.rt.Start(context.Background(), svc, task); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "starts/s")
}
