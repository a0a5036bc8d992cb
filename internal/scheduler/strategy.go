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
	images   []int8 // index memo of image presence; nil when no image
	idx      *index
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
	bestI     int
	bestScore int64
	bestCount int32
	bestOrder int32
	bestImage int8 // whether best holds the image: 0 not yet looked at, 1 yes, -1 no
	image     int8 // the same, for the node being ranked
}

func (p *rankPicker) offer(v *view) {
	r := v.r
	// Whole percent of capacity reserved once the container is added; a
	// node that reports no capacity scores 0. (scan has a copy.)
	score := int64(float64(r.cpu+p.ask.cpu)*r.cpuPct) + int64(float64(r.mem+p.ask.mem)*r.memPct)
	p.consider(v.i, v.n, r, score)
}

// below reports, when it is cheap to tell, that a node with record r and
// score ranks below the best so far (which must exist): a worse score or
// count, or a tie with a best that holds the image and comes first.
func (p *rankPicker) below(score int64, r *rec) bool {
	if score != p.bestScore {
		return (score > p.bestScore) != p.binpack
	}
	if r.active != p.bestCount {
		return (r.active > p.bestCount) != p.binpack
	}
	return p.bestImage == 1 && r.order > p.bestOrder
}

// consider ranks node n at position i, with record r and score.
func (p *rankPicker) consider(i int, n *Node, r *rec, score int64) {
	if p.best == nil {
		p.best, p.bestI, p.bestScore, p.bestCount, p.bestOrder, p.bestImage = n, i, score, r.active, r.order, 0
		return
	}
	if score != p.bestScore {
		if (score > p.bestScore) == p.binpack {
			p.best, p.bestI, p.bestScore, p.bestCount, p.bestOrder, p.bestImage = n, i, score, r.active, r.order, 0
		}
		return
	}
	if r.active != p.bestCount {
		if (r.active > p.bestCount) == p.binpack {
			p.best, p.bestI, p.bestScore, p.bestCount, p.bestOrder, p.bestImage = n, i, score, r.active, r.order, 0
		}
		return
	}
	if p.tie(i, n, r) {
		p.best, p.bestI, p.bestScore, p.bestCount, p.bestOrder, p.bestImage = n, i, score, r.active, r.order, p.image
	}
}

// tie reports whether n ranks above the current best when both have the
// same score and count: a node with the image first, then the earlier
// (Name, ID). The image is looked at only when the order does not already
// decide, and memoized; p.image keeps what was learnt of n.
func (p *rankPicker) tie(i int, n *Node, r *rec) bool {
	earlier := r.order < p.bestOrder
	if p.bestImage == 0 {
		p.bestImage = -1
		if p.ask.hasImage(p.bestI, p.best) {
			p.bestImage = 1
		}
	}
	p.image = 0
	if p.bestImage == 1 && !earlier || p.bestImage == -1 && earlier {
		return earlier
	}
	p.image = -1
	if p.ask.hasImage(i, n) {
		p.image = 1
	}
	return p.image == 1
}

func (p *rankPicker) chosen() *Node { return p.best }

// hasImage reports whether node i holds the requested image.
func (a *ask) hasImage(i int, n *Node) bool {
	return a.images != nil && a.idx.hasImage(i, n, &a.image, a.images)
}

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
