package orchestrator

import (
	"fmt"
	"slices"

	"github.com/moby/moby/api/types/swarm"
)

// Swarm mode's task status messages.
const (
	msgPending   = "pending task scheduling"
	msgAssigned  = "scheduler assigned task to node"
	msgStarting  = "starting"
	msgStarted   = "started"
	msgFinished  = "finished"
	msgShutdown  = "shutdown"
	msgPreparing = "preparing"
)

// observe moves a task's status along what its container shows. Tasks on
// nodes that are down or not yet seen again keep their last status.
func (r *reconciler) observe(t *task) {
	if terminal(t.Status.State) || t.NodeID == "" || !r.reachable(t.NodeID) {
		return
	}
	if t.obs == nil {
		r.observeMissing(t)
		return
	}
	o := t.obs
	switch o.State {
	case "running", "paused", "restarting":
		r.observeRunning(t)
	case "exited", "dead":
		r.observeExited(t)
	}
}

// observeMissing handles a started task whose container is not there.
func (r *reconciler) observeMissing(t *task) {
	switch t.Status.State {
	case swarm.TaskStateAssigned, swarm.TaskStatePending, swarm.TaskStateNew:
		if !wanted(t) {
			r.setStatus(t, swarm.TaskStateShutdown, msgShutdown, "", r.now)
		}
	default: // starting, running: the container went away
		if !wanted(t) {
			r.setStatus(t, swarm.TaskStateShutdown, msgShutdown, "", r.now)
			return
		}
		since, ok := r.missing[t.ID]
		if !ok {
			since = r.now
		}
		if since.Before(t.Status.Timestamp) {
			since = t.Status.Timestamp
		}
		if due := since.Add(MissingGrace); r.now.Before(due) {
			r.wake(due)
			return
		}
		r.setStatus(t, swarm.TaskStateFailed, msgStarted, "task: the container of the task is gone", r.now)
	}
}

// observeRunning makes a running container's task RUNNING (once healthy
// if it has a healthcheck), or FAILED when its healthcheck fails.
func (r *reconciler) observeRunning(t *task) {
	o := t.obs
	r.setContainer(t)
	switch o.Health {
	case "starting":
		if t.Status.State != swarm.TaskStateStarting {
			r.setStatus(t, swarm.TaskStateStarting, msgStarting, "", r.now)
		}
	case "unhealthy":
		r.setStatus(t, swarm.TaskStateFailed, msgStarted, "task: unhealthy container", r.now)
	default:
		if t.Status.State != swarm.TaskStateRunning {
			at := o.StartedAt
			if at.IsZero() || at.After(r.now) {
				at = r.now
			}
			r.setStatus(t, swarm.TaskStateRunning, msgStarted, "", at)
			t.pv().RunningAt = at.UTC()
		}
	}
}

// observeExited ends a task whose container exited.
func (r *reconciler) observeExited(t *task) {
	o := t.obs
	r.setContainer(t)
	at := o.FinishedAt
	if at.IsZero() || at.After(r.now) {
		at = r.now
	}
	switch {
	case !wanted(t):
		r.setStatus(t, swarm.TaskStateShutdown, msgShutdown, "", at)
	case o.ExitCode == 0:
		r.setStatus(t, swarm.TaskStateComplete, msgFinished, "", at)
	default:
		r.setStatus(t, swarm.TaskStateFailed, msgStarted, fmt.Sprintf("task: non-zero exit (%d)", o.ExitCode), at)
	}
}

// setContainer records the container's ID, PID and exit code.
func (r *reconciler) setContainer(t *task) {
	o := t.obs
	cs := swarm.ContainerStatus{ContainerID: o.ContainerID, PID: o.PID, ExitCode: o.ExitCode}
	if o.State != "running" {
		cs.PID = 0
	}
	if t.Status.ContainerStatus == nil || *t.Status.ContainerStatus != cs {
		t.save()
		changed := cs // cs stays on the stack when nothing changed
		t.Status.ContainerStatus = &changed
	}
	if o.State == "running" && !slices.Equal(t.Status.PortStatus.Ports, o.Ports) {
		t.save()
		t.Status.PortStatus.Ports = slices.Clone(o.Ports)
	}
}
