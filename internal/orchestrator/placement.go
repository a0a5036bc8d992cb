package orchestrator

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// ErrNoSuitableNode is matched (errors.Is) by the *NoSuitableNodeError
// Place and Fits return when no node can take the task.
var ErrNoSuitableNode = errors.New("orchestrator: no suitable node")

// NoSuitableNodeError says why no node can take a task, in swarm mode's
// words, so `docker service ps` shows what users of swarm mode know:
// "no suitable node (scheduling constraints not satisfied on 2 nodes;
// insufficient resources on 1 node)".
type NoSuitableNodeError struct {
	// Explanation is the part in parentheses ("" when there is no node at all).
	Explanation string
	// Ineligible is set by Fits when the node fails the service's
	// constraints or platforms: swarm mode's global orchestrator gives
	// such a node no task at all, where a node short of resources gets
	// a task that stays pending.
	Ineligible bool
}

func (e *NoSuitableNodeError) Error() string {
	if e.Explanation == "" {
		return "no suitable node"
	}
	return "no suitable node (" + e.Explanation + ")"
}

// Is makes errors.Is(err, ErrNoSuitableNode) true.
func (e *NoSuitableNodeError) Is(target error) bool { return target == ErrNoSuitableNode }

// A placement filter rejects nodes; filters run in swarm mode's order and
// a rejected node is charged to the first that rejects it.
type placeFilter int

const (
	filterReady placeFilter = iota
	filterResources
	filterConstraints
	filterPlatform
	filterHostPort
	filterMaxReplicas
	numFilters
)

// explain words a filter's count as swarm mode's scheduler does.
func (f placeFilter) explain(n int) string {
	switch f {
	case filterReady:
		return plural(n, "1 node not available for new tasks", "%d nodes not available for new tasks")
	case filterResources:
		return plural(n, "insufficient resources on 1 node", "insufficient resources on %d nodes")
	case filterConstraints:
		return plural(n, "scheduling constraints not satisfied on 1 node", "scheduling constraints not satisfied on %d nodes")
	case filterPlatform:
		return plural(n, "unsupported platform on 1 node", "unsupported platform on %d nodes")
	case filterHostPort:
		return plural(n, "host-mode port already in use on 1 node", "host-mode port already in use on %d nodes")
	}
	return "max replicas per node limit exceed"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return fmt.Sprintf(many, n)
}

// Placer places the tasks of one service, one at a time, the way swarm
// mode's scheduler does: filters (ready and active, resources,
// constraints, platform, host-mode ports, max replicas per node), then
// the spread preferences level by level (the group with the fewest tasks
// of the service first; nodes without the label form one group), then the
// node with the fewest tasks of the service, then the fewest tasks
// overall, then the lowest ID. It is pure and not safe for concurrent use.
//
// Resources: a node offers its capacity minus what its containers
// reserve (Node.Reserved*) minus what this Placer placed there; Forget
// gives a task's reservation back. Generic resources are counted the same
// way, from what the node advertises minus what its assigned tasks hold
// (see placement_generic.go).
type Placer struct {
	svcID     string
	cons      []Constraint
	consErr   error
	spread    []string // label descriptors, one per preference level
	maxPer    uint64
	cpu, mem  int64
	gen       map[string]int64 // generic resource units asked, by kind (nil: none)
	genNamed  bool             // a named generic resource is asked: nothing fits
	hostPorts bool             // the service publishes ports in host mode
	platforms []swarm.Platform

	nodes  []placeNode // sorted by ID
	byID   map[string]int
	groups [][]int // per level, per group: tasks of the service in the group
}

// placeNode is a node and what the Placer counts on it.
type placeNode struct {
	Node
	svcTasks, allTasks int
	cpuUsed, memUsed   int64            // placed by this Placer, minus forgotten
	genFree            map[string]int64 // generic units not held, by kind (only when the service asks for some)
	static             placeFilter
	group              []int // per preference level, the node's group
}

// staticPass marks a node that passes the filters that do not change as
// tasks are placed.
const staticPass = numFilters

// NewPlacer prepares the placement of svc's tasks on nodes. running is
// every service's tasks that are desired running and have a node: they
// count for the spread and the per-node limit.
func NewPlacer(svc store.Service, nodes []Node, running []store.Task) *Placer {
	tmpl := svc.Spec.TaskTemplate
	p := &Placer{svcID: svc.ID, byID: make(map[string]int, len(nodes))}
	if pl := tmpl.Placement; pl != nil {
		p.cons, p.consErr = ParseConstraints(pl.Constraints)
		p.maxPer = pl.MaxReplicas
		p.platforms = pl.Platforms
		for _, pref := range pl.Preferences {
			if pref.Spread != nil && spreadKnown(pref.Spread.SpreadDescriptor) {
				p.spread = append(p.spread, pref.Spread.SpreadDescriptor)
			}
		}
	}
	if r := tmpl.Resources; r != nil && r.Reservations != nil {
		p.cpu, p.mem = r.Reservations.NanoCPUs, r.Reservations.MemoryBytes
	}
	p.gen, p.genNamed = genericAsk(tmpl), asksNamed(tmpl)
	if es := svc.Spec.EndpointSpec; es != nil {
		for _, port := range es.Ports {
			if port.PublishMode == swarm.PortConfigPublishModeHost && port.PublishedPort != 0 {
				p.hostPorts = true
			}
		}
	}
	p.nodes = make([]placeNode, len(nodes))
	for i := range nodes {
		p.nodes[i].Node = nodes[i]
	}
	slices.SortFunc(p.nodes, func(a, b placeNode) int { return cmp.Compare(a.ID, b.ID) })
	for i := range p.nodes {
		p.byID[p.nodes[i].ID] = i
	}
	for _, t := range running {
		if i, ok := p.byID[t.NodeID]; ok {
			p.nodes[i].allTasks++
			if t.ServiceID == svc.ID {
				p.nodes[i].svcTasks++
			}
		}
	}
	p.countGeneric(running)
	for i := range p.nodes {
		p.nodes[i].static = p.staticCheck(&p.nodes[i].Node)
	}
	p.buildGroups()
	return p
}

// countGeneric sets what each node has free of the generic resources the
// service asks for: only then, as most services ask for none.
func (p *Placer) countGeneric(running []store.Task) {
	if p.gen == nil {
		return
	}
	for i := range p.nodes {
		p.nodes[i].genFree = genericOffer(p.nodes[i].GenericResources)
	}
	for i := range running {
		t := &running[i]
		j, ok := p.byID[t.NodeID]
		if !ok || !holdsGeneric(t.Status.State) {
			continue
		}
		for k, v := range genericHeld(&t.Task) {
			p.nodes[j].genFree[k] -= v
		}
	}
}

// spreadKnown: swarm mode spreads over node and engine labels only, and
// ignores other descriptors.
func spreadKnown(d string) bool {
	_, n := cutFold(d, nodeLabelPrefix)
	_, e := cutFold(d, engineLabelPrefix)
	return n || e
}

func spreadValue(d string, n *Node) string {
	if l, ok := cutFold(d, nodeLabelPrefix); ok {
		return n.Labels[l]
	}
	l, _ := cutFold(d, engineLabelPrefix)
	return n.EngineLabels[l]
}

// buildGroups numbers the groups of each preference level (a group at
// level k is the nodes sharing the label values of levels 0..k) and
// counts the service's tasks in each, over every node, ready or not, as
// swarm mode does.
func (p *Placer) buildGroups() {
	if len(p.spread) == 0 {
		return
	}
	p.groups = make([][]int, len(p.spread))
	ids := make([]map[string]int, len(p.spread))
	for k := range ids {
		ids[k] = map[string]int{}
	}
	for i := range p.nodes {
		n := &p.nodes[i]
		n.group = make([]int, len(p.spread))
		path := ""
		for k, d := range p.spread {
			path += "\x00" + spreadValue(d, &n.Node)
			id, ok := ids[k][path]
			if !ok {
				id = len(p.groups[k])
				ids[k][path] = id
				p.groups[k] = append(p.groups[k], 0)
			}
			n.group[k] = id
			p.groups[k][id] += n.svcTasks
		}
	}
}

// staticCheck runs the filters whose verdict placing tasks cannot change.
func (p *Placer) staticCheck(n *Node) placeFilter {
	switch {
	case !n.Ready || n.Availability != swarm.NodeAvailabilityActive && n.Availability != "":
		return filterReady
	case !p.constraintsHold(n):
		return filterConstraints
	case !p.platformOK(n):
		return filterPlatform
	}
	return staticPass
}

func (p *Placer) constraintsHold(n *Node) bool {
	for i := range p.cons {
		if !p.cons[i].matches(n) {
			return false
		}
	}
	return true
}

// platformOK: with Placement.Platforms set (from the image's manifest),
// the node's OS and architecture must be one of them.
func (p *Placer) platformOK(n *Node) bool {
	if len(p.platforms) == 0 {
		return true
	}
	for _, pl := range p.platforms {
		if (pl.Architecture == "" || normArch(pl.Architecture) == normArch(n.Arch)) && (pl.OS == "" || pl.OS == n.OS) {
			return true
		}
	}
	return false
}

func normArch(a string) string {
	switch a {
	case "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}

// check returns the first filter that rejects the node, or staticPass.
// The order is swarm mode's: ready, resources, constraints, platform,
// host-mode ports, max replicas.
func (p *Placer) check(n *placeNode) placeFilter {
	if n.static == filterReady {
		return filterReady
	}
	if p.cpu > 0 && p.cpu > n.NanoCPUs-n.ReservedNanoCPUs-n.cpuUsed ||
		p.mem > 0 && p.mem > n.MemoryBytes-n.ReservedMemoryBytes-n.memUsed ||
		p.genNamed || p.gen != nil && !genericFits(n.genFree, p.gen) {
		return filterResources
	}
	if n.static != staticPass {
		return n.static
	}
	if p.hostPorts && n.svcTasks > 0 {
		return filterHostPort
	}
	if p.maxPer > 0 && uint64(n.svcTasks) >= p.maxPer {
		return filterMaxReplicas
	}
	return staticPass
}

// Place picks the node for one more task of the service and counts the
// task there, so the next Place sees it. It returns a *NoSuitableNodeError
// when no node can take it, or a *ConstraintError for a malformed
// constraint.
func (p *Placer) Place() (string, error) {
	if p.consErr != nil {
		return "", p.consErr
	}
	best := -1
	for i := range p.nodes {
		if p.check(&p.nodes[i]) != staticPass {
			continue
		}
		if best < 0 || p.less(i, best) {
			best = i
		}
	}
	if best < 0 {
		return "", p.noFit(p.nodes)
	}
	p.count(best, 1)
	return p.nodes[best].ID, nil
}

// less orders candidates: the emptier group at each preference level,
// then fewer tasks of the service, then fewer tasks, then the lower ID
// (nodes are sorted by ID, so the lower index).
func (p *Placer) less(i, j int) bool {
	a, b := &p.nodes[i], &p.nodes[j]
	for k, g := range p.groups {
		if ga, gb := g[a.group[k]], g[b.group[k]]; ga != gb {
			return ga < gb
		}
	}
	if a.svcTasks != b.svcTasks {
		return a.svcTasks < b.svcTasks
	}
	if a.allTasks != b.allTasks {
		return a.allTasks < b.allTasks
	}
	return i < j
}

// count adds (d = 1) or removes (d = -1) a task of the service on node i.
func (p *Placer) count(i, d int) {
	n := &p.nodes[i]
	n.svcTasks += d
	n.allTasks += d
	n.cpuUsed += int64(d) * p.cpu
	n.memUsed += int64(d) * p.mem
	for k, v := range p.gen {
		n.genFree[k] -= int64(d) * v
	}
	for k, g := range p.groups {
		g[n.group[k]] += d
	}
}

// Fits says whether the node can take a task of the service (global
// mode): nil, or why not as Place words it. It counts nothing.
func (p *Placer) Fits(nodeID string) error {
	if p.consErr != nil {
		return p.consErr
	}
	i, ok := p.byID[nodeID]
	if !ok {
		return &NoSuitableNodeError{}
	}
	f := p.check(&p.nodes[i])
	if f == staticPass {
		return nil
	}
	err := p.noFit(p.nodes[i : i+1])
	err.Ineligible = f == filterConstraints || f == filterPlatform
	return err
}

// Forget takes a task of the service on nodeID off the counts (it is
// being removed), with the reservation it held.
func (p *Placer) Forget(nodeID string) {
	if i, ok := p.byID[nodeID]; ok && p.nodes[i].svcTasks > 0 {
		p.count(i, -1)
	}
}

// noFit explains why none of nodes passes: each is charged to the first
// filter that rejects it; the counts are listed largest first.
func (p *Placer) noFit(nodes []placeNode) *NoSuitableNodeError {
	var failed [numFilters]int
	for i := range nodes {
		if f := p.check(&nodes[i]); f != staticPass {
			failed[f]++
		}
	}
	order := make([]placeFilter, 0, numFilters)
	for f := range numFilters {
		if failed[f] > 0 {
			order = append(order, f)
		}
	}
	slices.SortStableFunc(order, func(a, b placeFilter) int { return failed[b] - failed[a] })
	parts := make([]string, len(order))
	for i, f := range order {
		parts[i] = f.explain(failed[f])
	}
	return &NoSuitableNodeError{Explanation: strings.Join(parts, "; ")}
}
