package scheduler

import (
	"errors"
	"strings"
	"sync"
)

// ErrNoNodes is returned by Place when the pool is empty.
var ErrNoNodes = errors.New("no node available: the pool has no engines")

// DefaultOvercommit is the overcommit classic Swarm used by default.
const DefaultOvercommit = 0.05

// maxSoft bounds the soft rules of one request (they are tracked in a bit mask).
const maxSoft = 64

// Options tune a Scheduler.
type Options struct {
	// Overcommit lets the CPU and memory reserved on a node exceed its
	// capacity by this fraction: 0.05 means a node with 8 GiB accepts
	// 8.4 GiB of reservations; 0 means exactly its capacity; a negative
	// value keeps headroom (-0.1: 90% of capacity). Values ≤ -1 count as 0.
	Overcommit float64
}

// Scheduler places containers with a fixed strategy. Between calls it
// keeps only a memo of what it derived from the nodes (see index), so its
// answers depend on nothing but the request and the nodes. Place calls are
// serialized by a mutex; one Scheduler may be shared.
type Scheduler struct {
	strategy Strategy
	factor   float64 // 1 + overcommit

	mu  sync.Mutex
	idx *index
}

// New returns a Scheduler; a nil strategy means Spread.
func New(strategy Strategy, opts Options) *Scheduler {
	if strategy == nil {
		strategy = Spread{}
	}
	if opts.Overcommit <= -1 {
		opts.Overcommit = 0
	}
	f := 1 + opts.Overcommit
	return &Scheduler{strategy: strategy, factor: f, idx: newIndex(f)}
}

// Strategy returns the scheduler's strategy.
func (s *Scheduler) Strategy() Strategy { return s.strategy }

// NoFitError says why no node can run a container: how many nodes each
// filter rejected (a node counts for the first filter that rejects it, in
// pipeline order).
type NoFitError struct {
	Reasons []Reason
}

// Reason is one filter's share of the rejected nodes.
type Reason struct {
	Filter string // health, constraint, affinity, dependency, port, containerslots, resources
	Nodes  int
	Text   string // e.g. "3 nodes fail constraint zone==eu"
}

func (e *NoFitError) Error() string {
	texts := make([]string, len(e.Reasons))
	for i, r := range e.Reasons {
		texts[i] = r.Text
	}
	return "no node can run this container: " + strings.Join(texts, ", ")
}

// Place picks the node to run req among nodes. It returns ErrNoNodes for an
// empty pool, an error matching ErrInvalidRule for malformed rules, and a
// *NoFitError when every node is rejected.
//
// Hard filters run cheapest first: health, constraints, affinities,
// dependencies, ports, container slots, CPU, memory. Soft rules (==~, !=~)
// then narrow the survivors one at a time, in the order given; a soft rule
// no survivor satisfies (together with the soft rules kept before it) is
// dropped. The strategy ranks what is left.
func (s *Scheduler) Place(req *Request, pool []*Node) (*Node, error) {
	if !anyNode(pool, func(*Node) bool { return true }) {
		return nil, ErrNoNodes
	}
	rules := req.Rules
	if rules == nil {
		r, _, err := ParseRules(req.Env, req.Labels)
		if err != nil {
			return nil, err
		}
		rules = &r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		s.idx.fit(len(pool))
		p, err := s.plan(req, rules, pool)
		if err != nil {
			return nil, err
		}
		n, err := p.place(s.strategy, pool)
		if s.idx.unordered {
			// A node joined, left or was renamed during the passes: rank
			// the nodes by name again and start over (rare).
			s.idx.reorder()
			continue
		}
		return n, err
	}
}

// place runs the pipeline: a pass that collects the soft-rule combinations
// of the feasible nodes (only with soft rules), then a pass that offers the
// feasible nodes to the strategy. Neither counts rejections; only when no
// node fits does a third pass (explain) find which filter rejected each
// node, for the *NoFitError.
func (p *plan) place(strategy Strategy, pool []*Node) (*Node, error) {
	want := uint64(0)
	if len(p.soft) > 0 {
		masks := maskSet{p: p, set: map[uint64]bool{}}
		p.scan(pool, &masks)
		if len(masks.set) == 0 {
			return nil, p.explain(pool)
		}
		want = greedySoft(len(p.soft), masks.set)
	}
	var pick picker = strategy.picker(&p.ask)
	if want != 0 {
		pick = &softPicker{p: p, want: want, next: pick}
	}
	p.scan(pool, pick)
	if n := pick.chosen(); n != nil {
		return n, nil
	}
	return nil, p.explain(pool)
}

// maskSet collects which combinations of soft rules the feasible nodes satisfy.
type maskSet struct {
	p    *plan
	set  map[uint64]bool
	last uint64 // the mask last added: most nodes repeat their neighbour's
	any  bool
}

func (m *maskSet) offer(v *view) {
	mask := m.p.softMask(v)
	if m.any && mask == m.last { // a map write per node was most of a soft rule's cost
		return
	}
	m.set[mask], m.last, m.any = true, mask, true
}
func (m *maskSet) chosen() *Node { return nil }

// softPicker passes on the nodes that satisfy the kept soft rules.
type softPicker struct {
	p    *plan
	want uint64
	next picker
}

func (s *softPicker) offer(v *view) {
	if s.p.softMask(v)&s.want == s.want {
		s.next.offer(v)
	}
}
func (s *softPicker) chosen() *Node { return s.next.chosen() }

// plan is the pipeline for one request. filters holds every hard filter
// in order (for the explanation); scan evaluates the node-record filters
// (health, slots, CPU, memory) and the constraints inline rather than
// through the interface.
type plan struct {
	filters []filter
	failed  []int         // per filter, counted by explain
	health  *healthFilter // &healthF
	healthF healthFilter
	cons    []*constraintFilter // filters[1 : 1+len(cons)], called directly: the common rules
	mid     []filter            // the filters after them: affinities, dependencies, ports
	slotsAt int                 // position of the slots filter; CPU and memory follow
	soft    []filter
	ask     ask
	idx     *index
	v       view    // the node offered to a sink or a filter interface
	buf     []int32 // scratch for scan's candidates
}

func (s *Scheduler) plan(req *Request, rules *Rules, pool []*Node) (*plan, error) {
	p := &plan{idx: s.idx}
	p.health = &p.healthF
	p.filters = make([]filter, 0, 4+len(rules.Constraints)+len(rules.Affinities)+len(req.VolumesFrom)+len(req.Links)+len(req.Ports))
	p.filters = append(p.filters, p.health)
	for i := range rules.Constraints {
		f := newConstraintFilter(&rules.Constraints[i], s.idx)
		if f.x.Soft {
			p.soft = append(p.soft, f)
		} else {
			p.filters = append(p.filters, f)
			p.cons = append(p.cons, f)
		}
	}
	for i := range rules.Affinities {
		f := newAffinityFilter(&rules.Affinities[i])
		if f.x.Key == "image" && f.x.m.literal() {
			f.idx, f.memo = s.idx, s.idx.imageColumn(&f.img)
		}
		if f.x.Soft {
			p.soft = append(p.soft, f)
		} else {
			p.filters = append(p.filters, f)
		}
	}
	if len(p.soft) > maxSoft {
		return nil, &RuleError{"constraint", "", "more than 64 soft rules"}
	}
	p.filters = append(p.filters, dependencyFilters(req, pool)...)
	var seen map[Port]bool
	if len(req.Ports) > 0 {
		seen = map[Port]bool{}
	}
	for _, port := range req.Ports {
		port.Proto = proto(port.Proto)
		if port.HostPort > 0 && !seen[port] {
			seen[port] = true
			p.filters = append(p.filters, &portFilter{port})
		}
	}
	p.mid = p.filters[1+len(p.cons):]
	p.slotsAt = len(p.filters)
	p.filters = append(p.filters, slotsFilter{})
	p.ask = ask{
		cpu:   cpuReservation(req.NanoCPUs, req.CPUShares),
		mem:   memReservation(req.Memory, req.MemoryReservation),
		image: parseImageRef(req.Image),
		idx:   s.idx,
	}
	if p.ask.image.name != "" || p.ask.image.id != "" {
		p.ask.images = s.idx.imageColumn(&p.ask.image)
	}
	if p.ask.cpu > 0 {
		p.filters = append(p.filters, &cpuFilter{p.ask.cpu})
	}
	if p.ask.mem > 0 {
		p.filters = append(p.filters, &memoryFilter{p.ask.mem})
	}
	return p, nil
}

// scan offers every node that passes the hard filters to sink, in pool
// order. It is the hot loop: at 10,000 nodes it has about 10 ns per node.
//
// First it brings the index up to date (sync). Then it visits the candidates: when a hard constraint is an equality
// with a literal value (zone==eu, node==n1), only the positions holding
// that value, from the column's inverted list; otherwise every position.
// Everything a candidate needs is read from the index's flat arrays (its
// stamp, its record, one interned value per constraint), the strategy's
// ranking is called directly, and the filters that read the Node come
// last. The order of the checks does not matter here (scan does not count
// rejections, explain does); the order of the offers is the pool's.
func (p *plan) scan(pool []*Node, sink picker) {
	x := p.idx
	x.sync(pool)
	stamps, recs := x.stamps[:len(pool)], x.recs[:len(pool)]
	cand, cons := p.candidates()
	if rank, ok := sink.(*rankPicker); ok && len(p.mid) == 0 {
		p.rankScan(pool, cand, cons, rank)
		return
	}
	mid := p.mid
	cpuAsk, memAsk := p.ask.cpu, p.ask.mem
	v := &p.v
outer:
	for _, i32 := range cand {
		i := int(i32)
		n := pool[i]
		if n == nil || stamps[i].health != Healthy {
			continue
		}
		for _, f := range cons {
			if !f.pass(i) {
				continue outer
			}
		}
		r := &recs[i]
		if r.slots >= 0 && r.active >= r.slots ||
			cpuAsk > 0 && r.cpu+cpuAsk > r.cpuMax ||
			memAsk > 0 && r.mem+memAsk > r.memMax {
			continue
		}
		v.n, v.r, v.i = n, r, i
		for _, f := range mid {
			if !f.Check(v) {
				continue outer
			}
		}
		sink.offer(v)
	}
}

// candidates returns the positions scan visits, ascending, and the hard
// constraints it must still check there. When a hard constraint is an
// equality with a literal value, the positions are those holding the
// value (of the most selective such constraint, which is then already
// checked); otherwise all of them.
func (p *plan) candidates() ([]int32, []*constraintFilter) {
	var narrow *constraintFilter
	size := 0
	for _, f := range p.cons {
		if f.narrows() {
			if b := f.bound(); narrow == nil || b < size {
				narrow, size = f, b
			}
		}
	}
	if narrow == nil {
		return p.idx.every(), p.cons
	}
	cand := narrow.positions(&p.buf)
	if len(p.cons) == 1 {
		return cand, nil
	}
	rest := make([]*constraintFilter, 0, len(p.cons)-1)
	for _, f := range p.cons {
		if f != narrow {
			rest = append(rest, f)
		}
	}
	return cand, rest
}

// rankScan is scan's visit for Spread and Binpack without filters that
// read the Node, the common case, kept apart so that its variables stay in
// registers.
func (p *plan) rankScan(pool []*Node, cand []int32, cons []*constraintFilter, rank *rankPicker) {
	x := p.idx
	stamps, recs := x.stamps[:len(pool)], x.recs[:len(pool)]
	cpuAsk, memAsk := p.ask.cpu, p.ask.mem
outer:
	for _, i32 := range cand {
		i := int(i32)
		n := pool[i]
		if n == nil || stamps[i].health != Healthy {
			continue
		}
		for _, f := range cons { // f.pass(i), by hand: it is over the inlining budget
			k := int(f.of[i]) + 1
			h := int8(0)
			if uint(k) < uint(len(f.ok)) {
				h = f.ok[k]
			}
			if h == 0 && f.decide(i) {
				h = 1
			}
			if h <= 0 {
				continue outer
			}
		}
		r := &recs[i]
		if r.slots >= 0 && r.active >= r.slots ||
			cpuAsk > 0 && r.cpu+cpuAsk > r.cpuMax ||
			memAsk > 0 && r.mem+memAsk > r.memMax {
			continue
		}
		// rank.offer, with the common outcome (n ranks below the best so
		// far) decided here.
		score := int64(float64(r.cpu+cpuAsk)*r.cpuPct) + int64(float64(r.mem+memAsk)*r.memPct)
		if rank.best != nil && rank.below(score, r) {
			continue
		}
		rank.consider(i, n, r, score)
	}
}

// explain charges every rejected node to the first filter, in pipeline
// order, that rejects it, and says so. It runs only when no node fits.
func (p *plan) explain(pool []*Node) *NoFitError {
	p.failed = make([]int, len(p.filters))
	p.health.byState = [len(p.health.byState)]int{}
	x := p.idx
	x.sync(pool)
	v := &p.v
	cons, mid, recs := p.cons, p.mid, x.recs
	midAt := 1 + len(cons)
	cpuAsk, memAsk := p.ask.cpu, p.ask.mem
outer:
	for i, n := range pool {
		if n == nil {
			continue
		}
		v.n, v.r, v.i = n, &recs[i], i
		if !p.health.Check(v) {
			p.failed[0]++
			continue
		}
		for j, f := range cons {
			if !f.Check(v) {
				p.failed[1+j]++
				continue outer
			}
		}
		for j, f := range mid {
			if !f.Check(v) {
				p.failed[midAt+j]++
				continue outer
			}
		}
		r := v.r
		switch at := p.slotsAt; {
		case r.slots >= 0 && r.active >= r.slots:
			p.failed[at]++
		case cpuAsk > 0 && r.cpu+cpuAsk > r.cpuMax:
			p.failed[at+1]++
		case memAsk > 0 && r.mem+memAsk > r.memMax:
			if cpuAsk > 0 {
				at++
			}
			p.failed[at+1]++
		}
	}
	return p.noFit()
}

func (p *plan) softMask(v *view) uint64 {
	var m uint64
	for i, f := range p.soft {
		if f.Check(v) {
			m |= 1 << i
		}
	}
	return m
}

// greedySoft keeps soft rules in order while some feasible node satisfies
// all those kept so far.
func greedySoft(n int, masks map[uint64]bool) uint64 {
	var want uint64
	for i := range n {
		try := want | 1<<i
		for m := range masks {
			if m&try == try {
				want = try
				break
			}
		}
	}
	return want
}

func (p *plan) noFit() *NoFitError {
	e := &NoFitError{}
	for i, f := range p.filters {
		if p.failed[i] > 0 {
			e.Reasons = append(e.Reasons, Reason{Filter: f.Name(), Nodes: p.failed[i], Text: f.Explain(p.failed[i])})
		}
	}
	return e
}
