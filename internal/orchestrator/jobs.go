package orchestrator

import (
	"sort"

	"github.com/moby/moby/api/types/swarm"
)

// jobs runs a job service's current iteration to completion: replicated
// jobs TotalCompletions tasks at most MaxConcurrent at a time, global jobs
// one task per eligible node. A completed task is never restarted; each
// update of the service (the API counts JobStatus.JobIteration) starts a
// new iteration, which shuts down the tasks of the previous one still
// running.
func (s *svcPass) jobs(tasks []*task) {
	s.job = true
	if js := s.svc.JobStatus; js != nil {
		s.iteration = js.JobIteration.Index // the API counts it: 0 at create, +1 per update
	} else {
		s.iteration = s.svc.SpecVersion - 1
		s.r.plan.Services = append(s.r.plan.Services, ServiceWrite{ID: s.svc.ID, SpecVersion: s.svc.SpecVersion,
			JobStatus: &swarm.JobStatus{JobIteration: swarm.Version{Index: s.iteration}, LastExecution: s.r.now.UTC()}})
	}
	var current []*task
	for _, t := range tasks {
		if t.JobIteration == nil || t.JobIteration.Index != s.iteration {
			if wanted(t) && !terminal(t.Status.State) {
				s.r.shutdown(t, "iteration")
			}
			continue
		}
		current = append(current, t)
	}
	if s.svc.Spec.Mode.GlobalJob != nil {
		s.globalJob(current)
	} else {
		s.replicatedJob(current)
	}
	s.jobHistory(tasks)
}

// replicatedJob fills slots 0..TotalCompletions-1, MaxConcurrent at a
// time. Swarm mode numbers a job's slots from 0 and clients count on it:
// the CLI's job progress reads slots 0..n-1 (showing slot+1), so with
// slots from 1 it waits for ever on a slot 0 that never comes.
func (s *svcPass) replicatedJob(tasks []*task) {
	rj := s.svc.Spec.Mode.ReplicatedJob
	maxConc := 1
	if rj.MaxConcurrent != nil {
		maxConc = int(*rj.MaxConcurrent)
	}
	total := maxConc
	if rj.TotalCompletions != nil {
		total = int(*rj.TotalCompletions)
	}
	s.desired = total
	active := 0
	for _, t := range tasks {
		if wanted(t) && !terminal(t.Status.State) && (t.NodeID == "" || s.r.nodeUp(t.NodeID)) {
			active++
		}
	}
	s.budget = maxConc - active
	slots := bySlot(tasks)
	for num := 0; num < total; num++ {
		sl := slots[num]
		if sl == nil {
			sl = &slot{num: num}
		}
		s.runSlot(sl, true)
	}
}

// globalJob runs one task on each eligible node.
func (s *svcPass) globalJob(tasks []*task) {
	slots := byNode(tasks)
	for _, n := range s.r.nodeList {
		sl := slots[n.ID]
		if sl == nil {
			sl = &slot{node: n.ID}
		}
		delete(slots, n.ID)
		eligible := n.Ready && n.Availability == swarm.NodeAvailabilityActive && !s.ineligible(sl)
		s.budget = 1
		s.runSlot(sl, eligible)
	}
	for _, sl := range slots { // nodes that left: their tasks are lost
		s.runSlot(sl, false)
	}
}

// jobHistory keeps at most HistoryLimit tasks per slot across iterations.
func (s *svcPass) jobHistory(tasks []*task) {
	groups := map[string]*slot{}
	for _, t := range tasks {
		key := t.NodeID
		if s.svc.Spec.Mode.ReplicatedJob != nil {
			key = string(rune(t.Slot))
		}
		if groups[key] == nil {
			groups[key] = &slot{}
		}
		groups[key].tasks = append(groups[key].tasks, t)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.history(groups[k])
	}
}
