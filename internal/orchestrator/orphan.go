package orchestrator

import (
	"time"

	"github.com/moby/moby/api/types/swarm"
)

// OrphanAfter is how long a node stays down before the tasks it may
// still be running are marked ORPHANED: swarm mode's dispatcher keeps a
// down node's tasks as they were for 24 hours (its maxDownTime), then
// moves those between ASSIGNED and RUNNING to ORPHANED, since nobody can
// tell whether they still run. Like swarm mode's, the count starts again
// when another leader takes over.
const OrphanAfter = 24 * time.Hour

// orphanDownNodes marks ORPHANED the tasks of nodes down for OrphanAfter
// whose last known state is between ASSIGNED and RUNNING. Only the state
// changes, as in swarm mode: `docker service ps` keeps the last message
// and time. Tasks in a final state could not have made progress and are
// left as they are.
func (r *reconciler) orphanDownNodes(downSince map[string]time.Time) {
	if !r.anyNodeDown() {
		return // the usual case: no pass over every task
	}
	for _, t := range r.sorted() {
		n := r.nodes[t.NodeID]
		if n == nil || n.Ready || r.unconfirmed[t.NodeID] || !mayRun(t.Status.State) {
			continue
		}
		since, ok := downSince[t.NodeID]
		if !ok {
			since = r.now
		}
		if due := since.Add(OrphanAfter); r.now.Before(due) {
			r.wake(due)
			continue
		}
		t.save()
		t.Status.State = swarm.TaskStateOrphaned
		t.UpdatedAt = r.now.UTC()
	}
}

func (r *reconciler) anyNodeDown() bool {
	for i := range r.nodeList {
		if !r.nodeList[i].Ready {
			return true
		}
	}
	return false
}

// mayRun says whether a task in state s may have a container running:
// swarm mode's ASSIGNED to RUNNING.
func mayRun(s swarm.TaskState) bool {
	switch s {
	case swarm.TaskStateAssigned, swarm.TaskStateAccepted, swarm.TaskStatePreparing,
		swarm.TaskStateReady, swarm.TaskStateStarting, swarm.TaskStateRunning:
		return true
	}
	return false
}
