//go:build !race

package orchestrator

import (
	"testing"
	"time"
)

// The race detector makes this scenario ten times slower: it runs in the
// plain test run only.

// TestScenarioConverges10k runs the real loop over a real store until a
// 10,000-task service runs on 1,000 fake nodes (issue 12 asks ≤ 60 s).
func TestScenarioConverges10k(t *testing.T) {
	h := newHarness(t, 1000)
	start := time.Now()
	id := h.create(spec("big", 10000))
	deadline := start.Add(120 * time.Second)
	for {
		n := len(running(h.list(id)))
		if n == 10000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 10000 running after %v", n, time.Since(start))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("10,000 tasks over 1,000 nodes running after %v", time.Since(start).Round(time.Millisecond))
	perNode := map[string]int{}
	for _, c := range h.rt.running() {
		perNode[c.NodeID]++
	}
	if len(perNode) != 1000 {
		t.Fatalf("spread over %d nodes, want 1000", len(perNode))
	}
}
