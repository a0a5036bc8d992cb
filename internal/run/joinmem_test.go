package run

import (
	"log/slog"
	"testing"

	"github.com/shoal-dev/shoal/internal/engine"
)

// joinPool is a pool's engines as joinLoads sees them: which are there
// and which are loading (Pending).
type joinPool struct {
	engines []*engine.Engine
	loading map[*engine.Engine]bool
}

func (p *joinPool) join(n int, loading bool) {
	for range n {
		e := &engine.Engine{}
		p.engines = append(p.engines, e)
		if loading {
			p.loading[e] = true
		}
	}
}

// loaded ends the loads of n engines that are loading.
func (p *joinPool) loaded(n int) {
	for _, e := range p.engines {
		if n == 0 {
			return
		}
		if p.loading[e] {
			delete(p.loading, e)
			n--
		}
	}
}

// newTestJoinLoads watches p, its GOGC in *gc (each value set appended to
// *sets), releasing nothing but the count.
func newTestJoinLoads(p *joinPool, gc *int, sets *[]int) *joinLoads {
	j := newJoinLoads(nil, slog.New(slog.DiscardHandler))
	j.envGOGC = false
	j.loading = func(e *engine.Engine) bool { return p.loading[e] }
	j.setGC = func(v int) int { prev := *gc; *gc = v; *sets = append(*sets, v); return prev }
	j.release = func() {}
	return j
}

// A join storm ends in one release once no engine arrived and no load
// ended for joinQuiet looks; a look at which none is loading, between two
// joins, is no end; GOGC is lowered while many load and set back after;
// nodes joining one at a time release nothing until joinRelease arrived.
func TestJoinLoadsReleaseAfterAStorm(t *testing.T) {
	p := &joinPool{loading: map[*engine.Engine]bool{}}
	gc, sets := 100, []int{}
	j := newTestJoinLoads(p, &gc, &sets)

	p.join(40, true)
	j.step(p.engines)
	if gc != loadGOGC {
		t.Fatalf("GOGC while 40 engines load = %d, want %d", gc, loadGOGC)
	}
	// All loaded between two looks, the next joins not in yet: no end.
	p.loaded(40)
	j.step(p.engines)
	if j.released != 0 {
		t.Fatal("released at a look with none loading, the storm going on")
	}
	p.join(60, true)
	j.step(p.engines)
	p.loaded(30)
	j.step(p.engines)
	for i := 0; i < joinQuiet-1; i++ {
		p.loaded(5) // loads still ending
		j.step(p.engines)
	}
	if j.released != 0 || gc != loadGOGC {
		t.Fatalf("released %d, GOGC %d while loads still end", j.released, gc)
	}
	p.loaded(100)
	j.step(p.engines)
	for i := 0; i < joinQuiet; i++ {
		j.step(p.engines)
	}
	if j.released != 1 || gc != 100 {
		t.Fatalf("after the storm: released %d, GOGC %d; want 1 and 100", j.released, gc)
	}
	for range 5 {
		j.step(p.engines)
	}
	if j.released != 1 {
		t.Fatalf("a quiet pool released again: %d", j.released)
	}
	// Nodes joining one at a time: nothing until joinRelease arrived; GOGC untouched.
	joinOne := func() { // and let the storm end
		p.join(1, true)
		j.step(p.engines)
		p.loaded(1)
		for range joinQuiet + 1 {
			j.step(p.engines)
		}
	}
	n := len(sets)
	for i := 0; i < joinRelease-1; i++ {
		joinOne()
	}
	if j.released != 1 {
		t.Fatalf("%d single joins released: %d", joinRelease-1, j.released)
	}
	for _, v := range sets[n:] {
		if v != 100 {
			t.Fatalf("single joins set GOGC: %v", sets[n:])
		}
	}
	joinOne()
	if j.released != 2 {
		t.Fatalf("the %dth single join: released %d, want 2", joinRelease, j.released)
	}
}

// An engine that stays Pending (its node's engine unreachable) does not
// hold the release off; GOGC set in the environment is never touched.
func TestJoinLoadsReleaseDespiteAStuckEngine(t *testing.T) {
	p := &joinPool{loading: map[*engine.Engine]bool{}}
	gc, sets := 100, []int{}
	j := newTestJoinLoads(p, &gc, &sets)
	j.envGOGC = true
	p.join(80, true)
	j.step(p.engines)
	p.loaded(79)
	j.step(p.engines)
	for i := 1; i < joinQuiet; i++ {
		j.step(p.engines)
		if j.released != 0 {
			t.Fatalf("released after %d quiet looks, want %d", i, joinQuiet)
		}
	}
	j.step(p.engines)
	if j.released != 1 {
		t.Fatalf("released %d with one engine stuck Pending, want 1", j.released)
	}
	if len(sets) != 0 {
		t.Fatalf("GOGC set %v though set in the environment", sets)
	}
}
