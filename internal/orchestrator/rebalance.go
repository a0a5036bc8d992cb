package orchestrator

import (
	"sort"

	"github.com/moby/moby/api/types/swarm"
)

// LabelRebalance on a service set to "false" turns rebalancing off for it.
const LabelRebalance = "com.docker.shoal.rebalance"

// rebalance moves a replicated service's tasks toward an even spread
// over the nodes that take new tasks (after a node joined or came back):
// while no update is under way, up to UpdateConfig.Parallelism tasks at a
// time (1 by default, 0: all) move from the most loaded node, each
// replacement started in the same slot before the old task stops, so the
// service never runs fewer than its replicas. A move is made only when
// the placer's choice holds at least two tasks fewer than the node the
// task leaves, so tasks never swap between equally loaded nodes.
func (s *svcPass) rebalance(slots map[int]*slot, n int) {
	if s.svc.Spec.Labels[LabelRebalance] == "false" || s.status != nil || len(s.outdated) > 0 {
		return
	}
	parallel := int(s.updateConfig().Parallelism)
	if parallel == 0 {
		parallel = n
	}
	allowed := parallel - s.busy
	if allowed <= 0 {
		return
	}
	count, onNode := s.spread(slots, n)
	if !uneven(count) {
		return // the usual case: no placer needed
	}
	for moves := 0; moves < allowed; moves++ {
		from := mostLoaded(count)
		if from == "" || len(onNode[from]) == 0 {
			return
		}
		sl := onNode[from][0]
		p := s.getPlacer()
		p.Forget(from)
		to, err := p.Place()
		if err != nil || count[to]+2 > count[from] {
			return
		}
		s.createOn(sl, nil, to)
		count[from]--
		count[to]++
		onNode[from] = onNode[from][1:]
	}
}

// spread counts the service's running tasks per node that takes new
// tasks, with the slots of each (highest slot first, so a move keeps the
// lower slots where they are).
func (s *svcPass) spread(slots map[int]*slot, n int) (map[string]int, map[string][]*slot) {
	count := map[string]int{}
	for _, node := range s.r.nodeList {
		if node.Ready && node.Availability == swarm.NodeAvailabilityActive {
			count[node.ID] = 0
		}
	}
	onNode := map[string][]*slot{}
	for num := n; num >= 1; num-- {
		sl := slots[num]
		if sl == nil {
			continue
		}
		var live []*task
		for _, t := range sl.tasks {
			if wanted(t) && !terminal(t.Status.State) {
				live = append(live, t)
			}
		}
		if len(live) != 1 || live[0].Status.State != swarm.TaskStateRunning {
			continue
		}
		if _, ok := count[live[0].NodeID]; ok {
			count[live[0].NodeID]++
			onNode[live[0].NodeID] = append(onNode[live[0].NodeID], sl)
		}
	}
	return count, onNode
}

// uneven says whether two nodes' counts differ by two or more.
func uneven(count map[string]int) bool {
	lo, hi, first := 0, 0, true
	for _, c := range count {
		if first || c < lo {
			lo = c
		}
		if first || c > hi {
			hi = c
		}
		first = false
	}
	return hi-lo >= 2
}

// mostLoaded is the node with the most tasks (lowest ID on a tie).
func mostLoaded(count map[string]int) string {
	ids := make([]string, 0, len(count))
	for id := range count {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	best := ""
	for _, id := range ids {
		if best == "" || count[id] > count[best] {
			best = id
		}
	}
	return best
}
