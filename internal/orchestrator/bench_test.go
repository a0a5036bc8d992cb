package orchestrator

import (
	"testing"

	"github.com/shoal-dev/shoal/internal/store"
)

// steadyState is a 10,000-task service running over 1,000 nodes.
func steadyState(tasks, nodeCount int) State {
	svc := replicated("big", uint64(tasks))
	s := newSim([]store.Service{svc}, nodes(nodeCount))
	s.step() // place and start
	s.step() // running
	s.st.NewID = nil
	return s.st
}

// BenchmarkReconcile is one pass over a 10,000-task service on 1,000
// nodes with nothing to change (the pass every event costs).
func BenchmarkReconcile(b *testing.B) {
	st := steadyState(10000, 1000)
	if p := Reconcile(st, t0); !p.Empty() {
		b.Fatalf("steady state not steady: %d puts", len(p.Puts))
	}
	b.ResetTimer()
	for b.Loop() {
		Reconcile(st, t0)
	}
}

// BenchmarkReconcileCreate is the first pass of a 10,000-task service on
// 1,000 nodes: every task made and placed.
func BenchmarkReconcileCreate(b *testing.B) {
	st := State{Services: []store.Service{replicated("big", 10000)}, Nodes: nodes(1000)}
	for b.Loop() {
		if p := Reconcile(st, t0); len(p.Starts) != 10000 {
			b.Fatalf("%d starts", len(p.Starts))
		}
	}
}
