package run

import (
	"log/slog"
	"testing"

	"github.com/shoal-dev/shoal/internal/engine"
)

// A join storm's loads end in one release, once none is loading or none
// ended since the last look; GOGC is lowered while many load and set
// back after; a node joining now and then releases nothing.
func TestJoinLoadsReleaseAfterAStorm(t *testing.T) {
	engines := make([]*engine.Engine, 120)
	for i := range engines {
		engines[i] = &engine.Engine{}
	}
	loading := map[*engine.Engine]bool{}
	gc := 100
	var sets []int
	j := newJoinLoads(nil, slog.New(slog.DiscardHandler))
	j.envGOGC = false
	j.loading = func(e *engine.Engine) bool { return loading[e] }
	j.setGC = func(v int) int { prev := gc; gc = v; sets = append(sets, v); return prev }
	j.release = func() {}

	// 100 nodes join: their engines load.
	for _, e := range engines[:100] {
		loading[e] = true
	}
	j.step(engines[:100])
	if gc != loadGOGC {
		t.Fatalf("GOGC while 100 engines load = %d, want %d", gc, loadGOGC)
	}
	// 60 end; 40 still load and some ended: no release yet.
	for _, e := range engines[:60] {
		delete(loading, e)
	}
	j.step(engines[:100])
	if j.released != 0 || gc != loadGOGC {
		t.Fatalf("released %d, GOGC %d while 40 still load", j.released, gc)
	}
	// A look at which none ended (the 40 wait for their turn) is no end.
	j.step(engines[:100])
	if j.released != 0 {
		t.Fatalf("released at a look without an end while 40 still load")
	}
	// The rest end: one release, GOGC back.
	for _, e := range engines[60:100] {
		delete(loading, e)
	}
	j.step(engines[:100])
	if j.released != 1 || gc != 100 {
		t.Fatalf("after the storm: released %d, GOGC %d; want 1 and 100", j.released, gc)
	}
	j.step(engines[:100])
	if j.released != 1 {
		t.Fatalf("a quiet pool released again: %d", j.released)
	}
	// Nodes joining one at a time: below joinRelease, nothing; GOGC untouched.
	n := len(sets)
	for _, e := range engines[100:110] {
		loading[e] = true
		j.step(engines[:110])
		delete(loading, e)
		j.step(engines[:110])
	}
	if j.released != 1 || len(sets) != n {
		t.Fatalf("ten single joins: released %d, GOGC set %v", j.released, sets[n:])
	}
}

// An engine that stays Pending (its node's engine unreachable) does not
// hold the release off: it comes when a look sees no load end.
func TestJoinLoadsReleaseDespiteAStuckEngine(t *testing.T) {
	engines := make([]*engine.Engine, 80)
	for i := range engines {
		engines[i] = &engine.Engine{}
	}
	loading := map[*engine.Engine]bool{}
	for _, e := range engines {
		loading[e] = true
	}
	j := newJoinLoads(nil, slog.New(slog.DiscardHandler))
	j.envGOGC = true // GOGC set by the operator: never touched
	j.loading = func(e *engine.Engine) bool { return loading[e] }
	j.setGC = func(int) int { t.Fatal("GOGC changed though set in the environment"); return 0 }
	j.release = func() {}
	j.step(engines)
	for _, e := range engines[1:] {
		delete(loading, e)
	}
	j.step(engines) // 79 ended this look: the storm may go on
	if j.released != 0 {
		t.Fatalf("released while loads were ending")
	}
	for i := 1; i < joinQuiet; i++ {
		j.step(engines) // none ended, one stuck: the storm may only be waiting
		if j.released != 0 {
			t.Fatalf("released after %d looks without an end, want %d", i, joinQuiet)
		}
	}
	j.step(engines)
	if j.released != 1 {
		t.Fatalf("released %d with one engine stuck Pending, want 1", j.released)
	}
}
