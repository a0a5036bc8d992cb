package engine

import (
	"testing"
	"time"
)

// Each engine's next health check falls on the pool's grid, so the checks
// due are made together, and stays within its period ± 10% and half a
// grid step.
func TestNextHealthOnGrid(t *testing.T) {
	for _, tc := range []struct {
		engines int
		refresh time.Duration
		tick    time.Duration
	}{
		{10, 2 * time.Second, maxHealthTick},
		{10000, 2 * time.Second, maxHealthTick},                // every 10 s
		{10, 100 * time.Millisecond, 12500 * time.Microsecond}, // a short period: a step of 1/8 of it
	} {
		o := Options{RefreshInterval: tc.refresh, budget: &budget{}}
		o.defaults()
		o.budget.setEngines(tc.engines)
		iv := o.healthInterval()
		if got := healthTick(iv); got != tc.tick {
			t.Errorf("period %s: grid step %s, want %s", iv, got, tc.tick)
		}
		now := time.Unix(1700000000, 123456789)
		for range 1000 {
			d := o.nextHealth(now)
			if at := now.Add(d).UnixNano(); at%int64(tc.tick) != 0 {
				t.Fatalf("period %s: next check at %d, not on the %s grid", iv, at, tc.tick)
			}
			lo, hi := iv-iv/10-tc.tick/2, iv+iv/10+tc.tick/2
			if d < lo || d > hi {
				t.Fatalf("period %s: next check in %s, want %s to %s", iv, d, lo, hi)
			}
			now = now.Add(d / 7)
		}
	}
}
