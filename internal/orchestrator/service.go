package orchestrator

import (
	"encoding/json"
	"errors"
	"sort"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// slot is the tasks of one replica (replicated: Slot; global: the node),
// oldest first.
type slot struct {
	num   int
	node  string
	tasks []*task
}

// svcPass is one service in one pass.
type svcPass struct {
	r         *reconciler
	svc       *store.Service
	placer    *Placer
	job       bool
	iteration uint64
	budget    int // jobs: how many more tasks may start (MaxConcurrent)
	desired   int // how many slots the service wants
	status    *swarm.UpdateStatus
	outdated  []*slot
	busy      int // slots whose update (or replacement) is under way
	specJSON  []byte
}

// service reconciles one service's tasks.
func (r *reconciler) service(svc *store.Service) {
	s := &svcPass{r: r, svc: svc}
	s.specJSON, _ = json.Marshal(svc.Spec.TaskTemplate)
	tasks := r.bySvc[svc.ID]
	m := svc.Spec.Mode
	switch {
	case m.Global != nil:
		s.status = s.updateStatus()
		s.global(tasks)
		s.rollingUpdate()
	case m.ReplicatedJob != nil || m.GlobalJob != nil:
		s.jobs(tasks)
	default:
		s.status = s.updateStatus()
		s.replicated(tasks)
		s.rollingUpdate()
	}
}

// bySlot groups tasks by replicated slot.
func bySlot(tasks []*task) map[int]*slot {
	out := make(map[int]*slot, len(tasks))
	var slab []slot // the slots, allocated together
	for _, t := range tasks {
		sl := out[t.Slot]
		if sl == nil {
			if len(slab) == cap(slab) {
				slab = make([]slot, 0, max(len(tasks)-len(out), 1))
			}
			slab = append(slab, slot{num: t.Slot})
			sl = &slab[len(slab)-1]
			out[t.Slot] = sl
		}
		sl.tasks = append(sl.tasks, t)
	}
	return out
}

// byNode groups tasks by node (global services).
func byNode(tasks []*task) map[string]*slot {
	out := map[string]*slot{}
	for _, t := range tasks {
		sl := out[t.NodeID]
		if sl == nil {
			sl = &slot{node: t.NodeID}
			out[t.NodeID] = sl
		}
		sl.tasks = append(sl.tasks, t)
	}
	return out
}

// replicated keeps slots 1..Replicas; higher slots are scaled down.
func (s *svcPass) replicated(tasks []*task) {
	n := 1
	if rs := s.svc.Spec.Mode.Replicated; rs != nil && rs.Replicas != nil {
		n = int(*rs.Replicas)
	}
	s.desired = n
	slots := bySlot(tasks)
	for _, num := range sortedInts(slots) {
		if num < 1 || num > n {
			s.scaleDown(slots[num])
		}
	}
	for num := 1; num <= n; num++ {
		sl := slots[num]
		if sl == nil {
			sl = &slot{num: num}
			slots[num] = sl
		}
		s.runSlot(sl, true)
		s.history(sl)
	}
	s.rebalance(slots, n)
}

func sortedInts(m map[int]*slot) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// scaleDown shuts down the tasks of a slot beyond the replica count and
// deletes them once their containers stopped.
func (s *svcPass) scaleDown(sl *slot) {
	for _, t := range sl.tasks {
		if wanted(t) {
			s.r.shutdown(t, "scale")
			s.forget(t)
		}
		if !containerUp(t.obs) || !s.r.reachable(t.NodeID) {
			s.r.deleteTask(t)
		}
	}
}

// global keeps one task on each eligible node.
func (s *svcPass) global(tasks []*task) {
	slots := byNode(tasks)
	ids := map[string]bool{}
	for id := range slots {
		ids[id] = true
	}
	for _, n := range s.r.nodeList {
		ids[n.ID] = true
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)
	for _, id := range sorted {
		sl := slots[id]
		if sl == nil {
			sl = &slot{node: id}
		}
		s.globalSlot(sl)
		s.history(sl)
	}
}

// globalSlot keeps the task of one node: none on a node that is down,
// drained or no longer matches; the running one kept on a paused node.
func (s *svcPass) globalSlot(sl *slot) {
	if sl.node == "" { // pending global tasks (none are made)
		for _, t := range sl.tasks {
			s.r.shutdown(t, "removed")
		}
		return
	}
	n := s.r.nodes[sl.node]
	if n != nil && n.Ready {
		s.desired++
	}
	switch {
	case n == nil || !n.Ready:
		s.runSlot(sl, false)
	case n.Availability == swarm.NodeAvailabilityDrain:
		s.shutdownAll(sl, "drain")
	case s.ineligible(sl):
		s.shutdownAll(sl, "constraint")
	default:
		s.runSlot(sl, n.Availability == swarm.NodeAvailabilityActive)
	}
}

// ineligible says whether the slot's node fails the service's
// constraints or platforms (it gets no task; a node short of resources
// gets one that stays pending, as in swarm mode). The service's own task
// there does not count.
func (s *svcPass) ineligible(sl *slot) bool {
	p := s.getPlacer()
	for _, t := range sl.tasks {
		if wanted(t) && !terminal(t.Status.State) && t.NodeID != "" {
			p.Forget(sl.node)
			break
		}
	}
	var nf *NoSuitableNodeError
	return errors.As(p.Fits(sl.node), &nf) && nf.Ineligible
}

func (s *svcPass) shutdownAll(sl *slot, reason string) {
	for _, t := range sl.tasks {
		if wanted(t) {
			s.r.shutdown(t, reason)
		}
	}
}

// getPlacer is the service's placer, made at first use from the tasks
// meant to run now.
func (s *svcPass) getPlacer() *Placer {
	if s.placer == nil {
		running := make([]store.Task, 0, len(s.r.tasks))
		for _, t := range s.r.sorted() {
			if wanted(t) && !terminal(t.Status.State) && t.NodeID != "" && !s.r.removed[t.ID] {
				running = append(running, *t.Task)
			}
		}
		s.placer = NewPlacer(*s.svc, s.r.nodeList, running)
	}
	return s.placer
}

// forget tells the placer that a task of the service goes away.
func (s *svcPass) forget(t *task) {
	if s.placer != nil && t.NodeID != "" {
		s.placer.Forget(t.NodeID)
	}
}

// nodeUp says whether a task's node is in the cluster and ready, or not
// yet known to be down (Unconfirmed): its tasks are kept.
func (r *reconciler) nodeUp(id string) bool {
	n := r.nodes[id]
	return (n != nil && n.Ready) || r.unconfirmed[id]
}

// runSlot keeps one slot: tasks on lost nodes are shut down and replaced
// at once, ended ones restarted per the restart policy, an empty slot
// refilled (when create), and two live tasks (start-first update,
// drain) converge to the newest once it runs.
func (s *svcPass) runSlot(sl *slot, create bool) {
	r := s.r
	var live []*task
	for _, t := range sl.tasks {
		if !wanted(t) || r.removed[t.ID] {
			continue
		}
		switch {
		case t.NodeID != "" && !r.nodeUp(t.NodeID):
			r.shutdown(t, "lost")
			s.forget(t)
		case s.job && t.Status.State == swarm.TaskStateComplete:
			return // the job's work in this slot is done
		case terminal(t.Status.State):
			s.ended(t)
			s.forget(t)
		default:
			live = append(live, t)
		}
	}
	switch len(live) {
	case 0:
		if create {
			s.refill(sl)
		}
	case 1:
		s.keep(sl, live[0])
	default:
		s.converge(live)
	}
}

// refill makes the slot's next task, once its last one stopped and its
// restart delay passed.
func (s *svcPass) refill(sl *slot) {
	r := s.r
	var last *task
	for _, t := range sl.tasks {
		if r.removed[t.ID] {
			continue
		}
		if containerUp(t.obs) && r.reachable(t.NodeID) {
			s.busy++
			return // never two running tasks of one slot
		}
		last = t
	}
	if last != nil && last.pv().Ended && s.sameRun(last) {
		if last.pv().NoRestart {
			return
		}
		if r.now.Before(last.pv().RestartAt) {
			r.wake(last.pv().RestartAt)
			return
		}
	}
	if s.job {
		if s.budget <= 0 {
			return
		}
		s.budget--
	}
	s.busy++
	s.create(sl, last)
}

// sameRun says whether t runs the service's current spec (jobs: its
// current iteration).
func (s *svcPass) sameRun(t *task) bool {
	if s.job {
		return t.JobIteration != nil && t.JobIteration.Index == s.iteration
	}
	return t.SpecVersion == s.svc.SpecVersion
}

// keep looks after a slot's one live task: placement of a pending one,
// replacement off a drained node, and whether its spec is outdated.
func (s *svcPass) keep(sl *slot, t *task) {
	if t.Status.State == swarm.TaskStatePending || t.Status.State == swarm.TaskStateNew {
		s.placePending(t)
		return
	}
	if sl.node == "" && !s.job {
		if n := s.r.nodes[t.NodeID]; n != nil && n.Availability == swarm.NodeAvailabilityDrain {
			s.busy++
			s.create(sl, nil) // started before the drained one stops
			return
		}
	}
	if s.job || t.SpecVersion >= s.svc.SpecVersion {
		if t.Status.State != swarm.TaskStateRunning && t.SpecVersion == s.svc.SpecVersion && s.status != nil {
			s.busy++
		}
		return
	}
	if s.sameSpec(t) {
		t.save()
		t.SpecVersion = s.svc.SpecVersion
		return
	}
	s.outdated = append(s.outdated, sl)
}

// sameSpec says whether the task's spec is the service's current one.
func (s *svcPass) sameSpec(t *task) bool {
	b, _ := json.Marshal(t.Spec)
	return string(b) == string(s.specJSON)
}

// converge shuts down the older live tasks of a slot once the newest
// runs (start-first update, drain, rebalance).
func (s *svcPass) converge(live []*task) {
	newest := live[len(live)-1]
	if newest.Status.State == swarm.TaskStatePending {
		s.placePending(newest)
	}
	if newest.Status.State != swarm.TaskStateRunning {
		s.busy++
		return
	}
	for _, t := range live[:len(live)-1] {
		s.r.shutdown(t, "replaced")
		s.forget(t)
	}
}

// history deletes the oldest finished tasks of a slot beyond
// HistoryLimit, with their containers.
func (s *svcPass) history(sl *slot) {
	extra := len(sl.tasks) - HistoryLimit
	for _, t := range sl.tasks {
		if extra <= 0 {
			return
		}
		if s.r.removed[t.ID] {
			extra--
			continue
		}
		if wanted(t) || (containerUp(t.obs) && s.r.reachable(t.NodeID)) {
			continue
		}
		if t.pv().Reason == "lost" && s.r.nodes[t.NodeID] != nil && !s.r.reachable(t.NodeID) {
			continue // kept until its node returns (or leaves) and its stale container is removed
		}
		s.r.deleteTask(t)
		extra--
	}
}
