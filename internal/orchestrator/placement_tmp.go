package orchestrator

// TEMPORARY: a minimal placer with the API h/taskrt writes in
// placement.go (delete this file once placement.go is on main). It places
// on Ready, active nodes, fewest tasks of the service first.

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// ErrNoSuitableNode is matched by the *NoSuitableNodeError of Place and Fits.
var ErrNoSuitableNode = errors.New("orchestrator: no suitable node")

// NoSuitableNodeError says why no node can take a task.
type NoSuitableNodeError struct {
	Explanation string
	// Ineligible: the node fails the constraints (global: no task at all).
	Ineligible bool
}

func (e *NoSuitableNodeError) Error() string { return "no suitable node (" + e.Explanation + ")" }

// Is makes errors.Is(err, ErrNoSuitableNode) true.
func (e *NoSuitableNodeError) Is(target error) bool { return target == ErrNoSuitableNode }

// Placer places the tasks of one service.
type Placer struct {
	svc   store.Service
	nodes []Node
	count map[string]int
}

// NewPlacer is the placer of svc over nodes, given every task running now.
func NewPlacer(svc store.Service, nodes []Node, running []store.Task) *Placer {
	p := &Placer{svc: svc, nodes: append([]Node(nil), nodes...), count: map[string]int{}}
	sort.Slice(p.nodes, func(i, j int) bool { return p.nodes[i].ID < p.nodes[j].ID })
	for _, t := range running {
		if t.ServiceID == svc.ID {
			p.count[t.NodeID]++
		}
	}
	return p
}

// matches checks constraints of the one form node.labels.K==V.
func (p *Placer) matches(n Node) bool {
	if p.svc.Spec.TaskTemplate.Placement == nil {
		return true
	}
	for _, c := range p.svc.Spec.TaskTemplate.Placement.Constraints {
		k, v, _ := strings.Cut(strings.TrimPrefix(c, "node.labels."), "==")
		if n.Labels[k] != v {
			return false
		}
	}
	return true
}

func usable(n Node) bool { return n.Ready && n.Availability == swarm.NodeAvailabilityActive }

// Place picks the node for one more task of the service.
func (p *Placer) Place() (string, error) {
	best, bestN := "", 0
	for _, n := range p.nodes {
		if !usable(n) || !p.matches(n) {
			continue
		}
		if c := p.count[n.ID]; best == "" || c < bestN {
			best, bestN = n.ID, c
		}
	}
	if best == "" {
		return "", &NoSuitableNodeError{Explanation: fmt.Sprintf("%d nodes not available for new tasks", len(p.nodes))}
	}
	p.count[best]++
	return best, nil
}

// Fits says whether nodeID can take a task of the service.
func (p *Placer) Fits(nodeID string) error {
	for _, n := range p.nodes {
		if n.ID != nodeID {
			continue
		}
		if !usable(n) {
			break
		}
		if !p.matches(n) {
			return &NoSuitableNodeError{Explanation: "scheduling constraints not satisfied on 1 node", Ineligible: true}
		}
		return nil
	}
	return &NoSuitableNodeError{Explanation: "1 node not available for new tasks"}
}

// Forget counts one task of the service less on nodeID.
func (p *Placer) Forget(nodeID string) {
	if p.count[nodeID] > 0 {
		p.count[nodeID]--
	}
}
