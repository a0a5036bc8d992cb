package orchestrator

import (
	"errors"
	"fmt"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// Update defaults (swarm mode's).
const (
	DefaultMonitor = 5 * time.Second
)

// Swarm mode's update status messages.
const (
	msgUpdating          = "update in progress"
	msgUpdateCompleted   = "update completed"
	msgRollbackCompleted = "rollback completed"
)

// updateStatus is the service's update status as it stands for this
// spec: nil when the last update is over or the spec changed since it
// began (a paused update resumes with the next spec change).
func (s *svcPass) updateStatus() *swarm.UpdateStatus {
	st := s.svc.UpdateStatus
	if st == nil {
		return nil
	}
	switch {
	case st.State == swarm.UpdateStateCompleted, st.State == swarm.UpdateStateRollbackCompleted:
		return nil
	case st.StartedAt != nil && st.StartedAt.Before(s.svc.UpdatedAt):
		return nil // the spec changed since this update began: a new one
	}
	cp := *st
	return &cp
}

// startTime is when an update starts: now, or the spec's change when
// the clock of the manager that made it is ahead (an update must not
// look older than its spec).
func (s *svcPass) startTime() time.Time {
	now := s.r.now.UTC()
	if s.svc.UpdatedAt.After(now) {
		return s.svc.UpdatedAt.UTC()
	}
	return now
}

// staleStatus says whether the stored status is of an update the spec
// has changed since (it is replaced, even when the new spec needs no
// task replaced, so no update shows as under way for ever).
func (s *svcPass) staleStatus() bool {
	st := s.svc.UpdateStatus
	return s.status == nil && st != nil && st.State != swarm.UpdateStateCompleted && st.State != swarm.UpdateStateRollbackCompleted
}

// updateConfig is the update (or, while rolling back, the rollback)
// configuration with swarm mode's defaults.
func (s *svcPass) updateConfig() swarm.UpdateConfig {
	cfg := s.svc.Spec.UpdateConfig
	if s.rollingBack() {
		cfg = s.svc.Spec.RollbackConfig
	}
	out := swarm.UpdateConfig{Parallelism: 1, FailureAction: swarm.UpdateFailureActionPause, Monitor: DefaultMonitor, Order: swarm.UpdateOrderStopFirst}
	if cfg != nil {
		out.Parallelism, out.Delay, out.MaxFailureRatio = cfg.Parallelism, cfg.Delay, cfg.MaxFailureRatio
		if cfg.FailureAction != "" {
			out.FailureAction = cfg.FailureAction
		}
		if cfg.Monitor > 0 {
			out.Monitor = cfg.Monitor
		}
		if cfg.Order != "" {
			out.Order = cfg.Order
		}
	}
	return out
}

func (s *svcPass) rollingBack() bool {
	return s.status != nil && s.status.State == swarm.UpdateStateRollbackStarted
}

func (s *svcPass) paused() bool {
	return s.status != nil && (s.status.State == swarm.UpdateStatePaused || s.status.State == swarm.UpdateStateRollbackPaused)
}

// rollingUpdate moves outdated slots to the current spec, Parallelism at a
// time, Delay apart, watching the new tasks for Monitor: a failure ratio
// above MaxFailureRatio pauses, rolls back or is ignored per
// FailureAction. The status is written as swarm mode writes it.
func (s *svcPass) rollingUpdate() {
	cfg := s.updateConfig()
	if s.status == nil {
		if len(s.outdated) == 0 && !s.staleStatus() {
			return // replacements (restarts, drain) outside an update
		}
		now := s.startTime()
		s.status = &swarm.UpdateStatus{State: swarm.UpdateStateUpdating, StartedAt: &now, Message: msgUpdating}
		s.writeStatus(false)
	} else if s.status.StartedAt == nil { // a rollback the API asked for
		now := s.startTime()
		s.status.StartedAt = &now
		s.writeStatus(false)
	}
	if len(s.outdated) == 0 && s.busy == 0 {
		s.finishUpdate(cfg)
		return
	}
	if s.paused() {
		return
	}
	if s.failureAction(cfg) {
		return
	}
	allowed := len(s.outdated)
	if cfg.Parallelism > 0 {
		allowed = int(cfg.Parallelism) - s.busy
	}
	if allowed <= 0 {
		return
	}
	if last := s.lastRunning(); cfg.Delay > 0 && !last.IsZero() && s.r.now.Before(last.Add(cfg.Delay)) {
		s.r.wake(last.Add(cfg.Delay))
		return
	}
	for _, sl := range s.outdated[:min(allowed, len(s.outdated))] {
		s.updateSlot(sl, cfg.Order)
	}
}

// updateSlot replaces a slot's outdated task: stop-first shuts it down
// (its slot is refilled once its container stopped), start-first starts
// the new task first (the old one stops once the new one runs).
func (s *svcPass) updateSlot(sl *slot, order swarm.UpdateOrder) {
	var old *task
	for _, t := range sl.tasks {
		if wanted(t) && !terminal(t.Status.State) {
			old = t
		}
	}
	if old == nil {
		return
	}
	if order == swarm.UpdateOrderStartFirst {
		s.create(sl, nil)
		return
	}
	s.r.shutdown(old, "update")
	s.forget(old)
	if !containerUp(old.obs) || !s.r.reachable(old.NodeID) {
		s.create(sl, nil)
	}
}

// updateTasks are the tasks made by the update under way.
func (s *svcPass) updateTasks() []*task {
	var out []*task
	if s.status == nil || s.status.StartedAt == nil {
		return nil
	}
	for _, t := range s.r.bySvc[s.svc.ID] {
		if t.SpecVersion == s.svc.SpecVersion && !t.CreatedAt.Before(*s.status.StartedAt) {
			out = append(out, t)
		}
	}
	return out
}

// lastRunning is when the update's newest task started running.
func (s *svcPass) lastRunning() time.Time {
	var last time.Time
	for _, t := range s.updateTasks() {
		if t.pv().RunningAt.After(last) {
			last = t.pv().RunningAt
		}
	}
	return last
}

// failureAction counts the update's tasks that ended within Monitor of
// running (or before), and acts when their ratio passes MaxFailureRatio.
func (s *svcPass) failureAction(cfg swarm.UpdateConfig) bool {
	if cfg.FailureAction == swarm.UpdateFailureActionContinue {
		return false
	}
	failures, lastFailed := 0, ""
	for _, t := range s.updateTasks() {
		if !t.pv().Ended {
			continue
		}
		if t.pv().RunningAt.IsZero() || t.Status.Timestamp.Sub(t.pv().RunningAt) <= cfg.Monitor {
			failures++
			lastFailed = t.ID
		}
	}
	total := max(s.desired, 1)
	if failures == 0 || float32(failures)/float32(total) <= cfg.MaxFailureRatio {
		return false
	}
	switch {
	case cfg.FailureAction == swarm.UpdateFailureActionRollback && !s.rollingBack() && s.svc.PreviousSpec != nil:
		now := s.r.now.UTC()
		s.status.State, s.status.StartedAt = swarm.UpdateStateRollbackStarted, &now
		s.status.Message = fmt.Sprintf("update rolled back due to failure or early termination of task %s", lastFailed)
		s.writeStatus(true)
	case s.rollingBack():
		s.status.State = swarm.UpdateStateRollbackPaused
		s.status.Message = fmt.Sprintf("rollback paused due to failure or early termination of task %s", lastFailed)
		s.writeStatus(false)
	default:
		s.status.State = swarm.UpdateStatePaused
		s.status.Message = fmt.Sprintf("update paused due to failure or early termination of task %s", lastFailed)
		s.writeStatus(false)
	}
	return true
}

// finishUpdate marks an update (or rollback) under way completed once its
// last task ran for Monitor.
func (s *svcPass) finishUpdate(cfg swarm.UpdateConfig) {
	if s.status == nil || (s.status.State != swarm.UpdateStateUpdating && s.status.State != swarm.UpdateStateRollbackStarted) {
		return
	}
	if s.failureAction(cfg) {
		return
	}
	if last := s.lastRunning(); !last.IsZero() && s.r.now.Before(last.Add(cfg.Monitor)) {
		s.r.wake(last.Add(cfg.Monitor))
		return
	}
	now := s.r.now.UTC()
	s.status.CompletedAt = &now
	if s.rollingBack() {
		s.status.State, s.status.Message = swarm.UpdateStateRollbackCompleted, msgRollbackCompleted
	} else {
		s.status.State, s.status.Message = swarm.UpdateStateCompleted, msgUpdateCompleted
	}
	s.writeStatus(false)
}

func (s *svcPass) writeStatus(rollback bool) {
	st := *s.status
	s.r.plan.Services = append(s.r.plan.Services, ServiceWrite{ID: s.svc.ID, SpecVersion: s.svc.SpecVersion, UpdateStatus: &st, Rollback: rollback})
}

// errStale says a service write was decided on a spec that changed since.
var errStale = errors.New("orchestrator: service changed since the pass")

// applyWrite makes w on svc (the loop does it inside Services.Change).
func applyWrite(svc *store.Service, w ServiceWrite, now time.Time) error {
	if svc.SpecVersion != w.SpecVersion {
		return errStale
	}
	if w.JobStatus != nil {
		js := *w.JobStatus
		svc.JobStatus = &js
	}
	if w.UpdateStatus != nil {
		us := *w.UpdateStatus
		svc.UpdateStatus = &us
	}
	if w.Rollback && svc.PreviousSpec != nil {
		prev := *svc.PreviousSpec
		cur := svc.Spec
		svc.Spec, svc.PreviousSpec = prev, &cur
		svc.SpecVersion++
		svc.UpdatedAt = now.UTC()
	}
	return nil
}
