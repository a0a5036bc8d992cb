package orchestrator

// TEMPORARY: a minimal placer with the API h/taskrt writes in
// placement.go (delete this file once placement.go is on main). It places
// on Ready, active nodes, fewest tasks of the service first.

import (
	"fmt"
	"sort"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

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

func usable(n Node) bool { return n.Ready && n.Availability == swarm.NodeAvailabilityActive }

// Place picks the node for one more task of the service.
func (p *Placer) Place() (string, error) {
	best, bestN := "", 0
	for _, n := range p.nodes {
		if !usable(n) {
			continue
		}
		if c := p.count[n.ID]; best == "" || c < bestN {
			best, bestN = n.ID, c
		}
	}
	if best == "" {
		return "", fmt.Errorf("no suitable node (%d nodes not available for new tasks)", len(p.nodes))
	}
	p.count[best]++
	return best, nil
}

// Fits says whether nodeID can take a task of the service.
func (p *Placer) Fits(nodeID string) error {
	for _, n := range p.nodes {
		if n.ID == nodeID && usable(n) {
			return nil
		}
	}
	return fmt.Errorf("no suitable node (1 node not available for new tasks)")
}

// Forget counts one task of the service less on nodeID.
func (p *Placer) Forget(nodeID string) {
	if p.count[nodeID] > 0 {
		p.count[nodeID]--
	}
}
