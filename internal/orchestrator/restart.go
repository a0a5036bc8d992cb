package orchestrator

import (
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// Restart policy defaults and backoff.
//
// A slot whose task ends while it is wanted gets a new task after the
// restart delay (swarm mode's default 5 s), doubled for each consecutive
// quick end of the slot: delay × 2^(n−1) for the n-th, capped at
// MaxBackoff (or at the delay itself when that is longer). A task that ran
// for BackoffReset or more before ending resets the count, so a service
// that fails once in a while restarts after the plain delay. MaxAttempts
// counts the restarts of the slot, only those within Window when it is set.
const (
	DefaultRestartDelay = 5 * time.Second
	MaxBackoff          = 5 * time.Minute
	BackoffReset        = 10 * time.Second
)

// backoff is the wait before the failures-th consecutive restart.
func backoff(delay time.Duration, failures int) time.Duration {
	if delay <= 0 || failures <= 1 {
		return max(delay, 0)
	}
	limit := max(MaxBackoff, delay)
	d := delay
	for i := 1; i < failures; i++ {
		d *= 2
		if d >= limit {
			return limit
		}
	}
	return d
}

// restartPolicy is the service's policy with swarm mode's defaults
// (condition any; on-failure for jobs; delay 5 s).
func (s *svcPass) restartPolicy() (cond swarm.RestartPolicyCondition, delay time.Duration, maxAttempts uint64, window time.Duration) {
	cond, delay = swarm.RestartPolicyConditionAny, DefaultRestartDelay
	if s.job {
		cond = swarm.RestartPolicyConditionOnFailure
	}
	if rp := s.svc.Spec.TaskTemplate.RestartPolicy; rp != nil {
		if rp.Condition != "" {
			cond = rp.Condition
		}
		if rp.Delay != nil {
			delay = *rp.Delay
		}
		if rp.MaxAttempts != nil {
			maxAttempts = *rp.MaxAttempts
		}
		if rp.Window != nil {
			window = *rp.Window
		}
	}
	return cond, delay, maxAttempts, window
}

// ended shuts down a task that ended while wanted and decides when (or
// whether) its slot gets a new one.
func (s *svcPass) ended(t *task) {
	s.r.shutdown(t, "")
	t.pv().Ended = true
	t.save()
	cond, delay, maxAttempts, window := s.restartPolicy()
	failed := t.Status.State != swarm.TaskStateComplete
	if cond == swarm.RestartPolicyConditionNone || (cond == swarm.RestartPolicyConditionOnFailure && !failed) {
		t.pv().NoRestart = true
		return
	}
	endedAt := t.Status.Timestamp
	if endedAt.IsZero() {
		endedAt = s.r.now
	}
	if !t.pv().RunningAt.IsZero() && endedAt.Sub(t.pv().RunningAt) >= BackoffReset {
		t.pv().Failures = 0
	}
	t.pv().Failures++
	if maxAttempts > 0 && uint64(len(recentRestarts(t.pv().Restarts, endedAt, window))) >= maxAttempts {
		t.pv().NoRestart = true
		return
	}
	t.pv().RestartAt = endedAt.Add(backoff(delay, t.pv().Failures)).UTC()
}

// recentRestarts are the restarts within window before now (all of them
// without a window).
func recentRestarts(restarts []time.Time, now time.Time, window time.Duration) []time.Time {
	if window <= 0 {
		return restarts
	}
	var out []time.Time
	for _, at := range restarts {
		if now.Sub(at) <= window {
			out = append(out, at)
		}
	}
	return out
}

// create makes the slot's next task, placed at once when a node fits
// (PENDING with the placer's reason otherwise). A restart after last
// ended carries the slot's failure count and restart times.
func (s *svcPass) create(sl *slot, last *task) *task {
	return s.createOn(sl, last, "")
}

// createOn is create placed on node (chosen already) when node is set.
func (s *svcPass) createOn(sl *slot, last *task, node string) *task {
	r := s.r
	now := r.now.UTC()
	t := &task{owned: true, Task: &store.Task{Task: swarm.Task{
		ID:           r.newID(),
		Meta:         swarm.Meta{CreatedAt: now, UpdatedAt: now},
		Spec:         s.svc.Spec.TaskTemplate,
		ServiceID:    s.svc.ID,
		Slot:         sl.num,
		DesiredState: swarm.TaskStateRunning,
	}, SpecVersion: s.svc.SpecVersion}, decoded: true}
	if s.job {
		t.DesiredState = swarm.TaskStateComplete
		t.JobIteration = &swarm.Version{Index: s.iteration}
	}
	if last != nil && last.pv().Ended {
		_, _, maxAttempts, window := s.restartPolicy()
		t.pv().Failures = last.pv().Failures
		kept := recentRestarts(last.pv().Restarts, now, window)
		if maxAttempts > 0 && uint64(len(kept)) > maxAttempts {
			kept = kept[uint64(len(kept))-maxAttempts:]
		} else if maxAttempts == 0 && window <= 0 {
			kept = nil // nothing limits restarts: no need to count them
		}
		t.pv().Restarts = append(append([]time.Time(nil), kept...), now)
	}
	if node != "" {
		t.NodeID = node
		s.claimGeneric(t)
		r.setStatus(t, swarm.TaskStateAssigned, msgAssigned, "", r.now)
	} else {
		s.assign(t, sl.node)
	}
	t.save()
	r.tasks[t.ID] = t
	r.unsorted = true
	r.bySvc[t.ServiceID] = append(r.bySvc[t.ServiceID], t)
	sl.tasks = append(sl.tasks, t)
	return t
}

// assign places t: on node (global), or where the placer says.
func (s *svcPass) assign(t *task, node string) {
	var err error
	if node != "" {
		err = s.getPlacer().Fits(node)
	} else {
		node, err = s.getPlacer().Place()
	}
	if node != "" && t.NodeID != node {
		t.save()
		t.NodeID = node
	}
	if err != nil {
		if t.Status.State != swarm.TaskStatePending || t.Status.Err != err.Error() {
			s.r.setStatus(t, swarm.TaskStatePending, msgPending, err.Error(), s.r.now)
		}
		return
	}
	s.claimGeneric(t)
	s.r.setStatus(t, swarm.TaskStateAssigned, msgAssigned, "", s.r.now)
}

// claimGeneric gives a task being assigned its share of its node's
// generic resources, next to those the node's other assigned tasks hold.
// A task being shut down holds none any more, as the Placer counts it
// (getPlacer).
func (s *svcPass) claimGeneric(t *task) {
	if genericAsk(t.Spec) == nil {
		return
	}
	n := s.r.nodes[t.NodeID]
	if n == nil {
		return
	}
	var held [][]swarm.GenericResource
	for _, o := range s.r.sorted() {
		if o != t && o.NodeID == t.NodeID && len(o.GenericResources) > 0 && wanted(o) && holdsGeneric(o.Status.State) && !s.r.removed[o.ID] {
			held = append(held, o.GenericResources)
		}
	}
	t.save()
	t.GenericResources = ClaimGeneric(*n, t.Spec, held)
}

// placePending tries again to place a pending task.
func (s *svcPass) placePending(t *task) {
	s.busy++
	s.assign(t, t.NodeID)
}
