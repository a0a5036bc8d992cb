package scheduler

import (
	"errors"
	"strings"
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

// Scheduler places containers with a fixed strategy. It holds no state
// between calls, so one Scheduler may serve concurrent Place calls.
type Scheduler struct {
	strategy Strategy
	factor   float64 // 1 + overcommit
}

// New returns a Scheduler; a nil strategy means Spread.
func New(strategy Strategy, opts Options) *Scheduler {
	if strategy == nil {
		strategy = Spread{}
	}
	if opts.Overcommit <= -1 {
		opts.Overcommit = 0
	}
	return &Scheduler{strategy: strategy, factor: 1 + opts.Overcommit}
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
	p, err := s.plan(req, rules, pool)
	if err != nil {
		return nil, err
	}
	want := uint64(0)
	if len(p.soft) > 0 {
		masks := map[uint64]bool{}
		p.run(pool, func(v *view) { masks[p.softMask(v)] = true })
		if len(masks) == 0 {
			return nil, p.noFit()
		}
		want = greedySoft(len(p.soft), masks)
	}
	pick := s.strategy.picker(&p.ask)
	p.run(pool, func(v *view) {
		if want == 0 || p.softMask(v)&want == want {
			pick.offer(v)
		}
	})
	if n := pick.chosen(); n != nil {
		return n, nil
	}
	return nil, p.noFit()
}

// plan is the pipeline for one request.
type plan struct {
	filters []filter
	failed  []int // per filter, on the first pass
	passes  int
	soft    []filter
	ask     ask
}

func (s *Scheduler) plan(req *Request, rules *Rules, pool []*Node) (*plan, error) {
	p := &plan{}
	p.filters = append(p.filters, &healthFilter{})
	for i := range rules.Constraints {
		f := newConstraintFilter(&rules.Constraints[i])
		if f.x.Soft {
			p.soft = append(p.soft, f)
		} else {
			p.filters = append(p.filters, f)
		}
	}
	for i := range rules.Affinities {
		f := newAffinityFilter(&rules.Affinities[i])
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
	seen := map[Port]bool{}
	for _, port := range req.Ports {
		port.Proto = proto(port.Proto)
		if port.HostPort > 0 && !seen[port] {
			seen[port] = true
			p.filters = append(p.filters, &portFilter{port})
		}
	}
	p.filters = append(p.filters, slotsFilter{})
	p.ask = ask{
		cpu:   cpuReservation(req.NanoCPUs, req.CPUShares),
		mem:   memReservation(req.Memory, req.MemoryReservation),
		image: parseImageRef(req.Image),
	}
	if p.ask.cpu > 0 {
		p.filters = append(p.filters, &cpuFilter{p.ask.cpu, s.factor})
	}
	if p.ask.mem > 0 {
		p.filters = append(p.filters, &memoryFilter{p.ask.mem, s.factor})
	}
	p.failed = make([]int, len(p.filters))
	return p, nil
}

// run calls fit for every node that passes the hard filters; on the first
// pass it counts rejections.
func (p *plan) run(pool []*Node, fit func(*view)) {
	count := p.passes == 0
	p.passes++
	var v view
	fs := p.filters
outer:
	for _, n := range pool {
		if n == nil {
			continue
		}
		v.n, v.t = n, nil
		for i, f := range fs {
			if !f.Check(&v) {
				if count {
					p.failed[i]++
				}
				continue outer
			}
		}
		fit(&v)
	}
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
