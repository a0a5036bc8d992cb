package scheduler

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
)

// Strategy ranks the nodes that passed every filter and picks one.
// The implementations are Spread, Binpack and Random.
type Strategy interface {
	Name() string
	picker(a *ask) picker
}

// picker sees the feasible nodes one by one and keeps its choice.
type picker interface {
	offer(v *view)
	chosen() *Node
}

// ask is what ranking needs of the request.
type ask struct {
	cpu, mem int64
	image    imageRef
}

// Spread places on the least used node: the lowest sum of the CPU and
// memory percentages reserved once the container is added (whole percent,
// so near-equal nodes tie), then the fewest active containers, then a node
// that already has the image, then node name and ID.
type Spread struct{}

// Binpack places on the most used node that still fits: the highest sum of
// reserved CPU and memory percentages, then the most active containers,
// then a node that already has the image, then node name and ID. It fills
// one node before using the next.
type Binpack struct{}

func (Spread) Name() string  { return "spread" }
func (Binpack) Name() string { return "binpack" }

func (Spread) picker(a *ask) picker  { return &rankPicker{ask: a} }
func (Binpack) picker(a *ask) picker { return &rankPicker{ask: a, binpack: true} }

// Random places on a uniformly random feasible node; it ignores load and
// the image preference. Its source is the caller's, for repeatable tests.
type Random struct {
	mu  sync.Mutex
	rng *rand.Rand // nil: the runtime's global source
}

// NewRandom returns a Random strategy drawing from src; a nil src uses the
// runtime's randomly seeded global source. src is only used under a lock.
func NewRandom(src rand.Source) *Random {
	if src == nil {
		return &Random{}
	}
	return &Random{rng: rand.New(src)}
}

func (r *Random) Name() string { return "random" }

func (r *Random) picker(*ask) picker {
	var seed uint64
	if r.rng == nil {
		seed = rand.Uint64()
	} else {
		r.mu.Lock()
		seed = r.rng.Uint64()
		r.mu.Unlock()
	}
	return &randomPicker{pcg: rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)}
}

// ParseStrategy returns the strategy called name: spread, binpack or
// random (seeded by the runtime; use NewRandom for a chosen source).
func ParseStrategy(name string) (Strategy, error) {
	switch strings.ToLower(name) {
	case "spread", "":
		return Spread{}, nil
	case "binpack":
		return Binpack{}, nil
	case "random":
		return NewRandom(nil), nil
	}
	return nil, fmt.Errorf("scheduler: unknown strategy %q (want spread, binpack or random)", name)
}

type rankPicker struct {
	ask     *ask
	binpack bool

	best      *Node
	bestScore int64
	bestCount int
	bestImage int8 // -1 no, 1 yes, 0 not yet looked at
}

// usedPercent is the whole percentage of capacity reserved; a node that
// does not report a capacity scores 0.
func usedPercent(used, capacity int64) int64 {
	if capacity <= 0 {
		return 0
	}
	return used * 100 / capacity
}

func (p *rankPicker) offer(v *view) {
	n, t := v.n, v.totals()
	score := usedPercent(t.cpu+p.ask.cpu, n.NanoCPUs) + usedPercent(t.mem+p.ask.mem, n.Memory)
	if p.best == nil || p.better(n, score, t.active) {
		p.best, p.bestScore, p.bestCount, p.bestImage = n, score, t.active, 0
	}
}

// better reports whether n ranks above the current best.
func (p *rankPicker) better(n *Node, score int64, count int) bool {
	if score != p.bestScore {
		return (score > p.bestScore) == p.binpack
	}
	if count != p.bestCount {
		return (count > p.bestCount) == p.binpack
	}
	if img := p.hasImage(n); img != p.bestHasImage() {
		return img
	}
	if n.Name != p.best.Name {
		return n.Name < p.best.Name
	}
	return n.ID < p.best.ID
}

func (p *rankPicker) hasImage(n *Node) bool {
	return n.hasImage(&p.ask.image)
}

func (p *rankPicker) bestHasImage() bool {
	if p.bestImage == 0 {
		p.bestImage = -1
		if p.hasImage(p.best) {
			p.bestImage = 1
		}
	}
	return p.bestImage == 1
}

func (p *rankPicker) chosen() *Node { return p.best }

// randomPicker keeps a uniform choice among the offers (reservoir of one).
type randomPicker struct {
	pcg  *rand.PCG
	seen uint64
	pick *Node
}

func (p *randomPicker) offer(v *view) {
	p.seen++
	if p.pcg.Uint64()%p.seen == 0 {
		p.pick = v.n
	}
}

func (p *randomPicker) chosen() *Node { return p.pick }
