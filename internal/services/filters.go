package services

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/store"
)

// The filters of GET /services and GET /tasks, as dockerd applies them.

var serviceFilterKeys = map[string]bool{"id": true, "name": true, "label": true, "mode": true, "runtime": true}

var taskFilterKeys = map[string]bool{"id": true, "name": true, "label": true, "service": true, "node": true,
	"desired-state": true, "_up-to-date": true, "runtime": true}

func checkKeys(f backend.Filters, accepted map[string]bool) error {
	for k := range f {
		if !accepted[k] {
			// dockerd 20.10's words (capital I; later ones say "invalid").
			return errdefs.ErrInvalidArgument.WithMessage("Invalid filter '" + k + "'")
		}
	}
	return nil
}

// serviceMatcher is the test of the service filters f.
func serviceMatcher(f backend.Filters) (func(swarm.Service) bool, error) {
	if err := checkKeys(f, serviceFilterKeys); err != nil {
		return nil, err
	}
	labels := labelFilter(f["label"])
	return func(s swarm.Service) bool {
		return anyPrefix(s.ID, f["id"]) && anyPrefix(s.Spec.Name, f["name"]) &&
			labels(s.Spec.Labels) && anyEqual(store.ModeName(s.Spec.Mode), f["mode"]) &&
			runtimeMatches(f["runtime"])
	}, nil
}

// runtimeMatches says whether the runtime filter lets container tasks
// through: shoal has no others.
func runtimeMatches(vals []string) bool {
	return len(vals) == 0 || anyEqual(string(swarm.RuntimeContainer), vals) || anyEqual("", vals)
}

func anyPrefix(s string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func anyEqual(s string, vals []string) bool {
	if len(vals) == 0 {
		return true
	}
	for _, v := range vals {
		if s == v {
			return true
		}
	}
	return false
}

// labelFilter matches labels holding every "key" or "key=value" of vals.
func labelFilter(vals []string) func(map[string]string) bool {
	return func(labels map[string]string) bool {
		for _, kv := range vals {
			k, v, hasValue := strings.Cut(kv, "=")
			got, ok := labels[k]
			if !ok || (hasValue && v != "" && got != v) {
				return false
			}
		}
		return true
	}
}

// taskFilter is the task filters resolved: services and nodes named by
// their IDs.
type taskFilter struct {
	f        backend.Filters
	services map[string]store.Service // every service, by ID
	serviceIDs,
	nodeIDs []string
	desired  []swarm.TaskState
	upToDate bool
	labels   func(map[string]string) bool
}

var taskStates = map[string]swarm.TaskState{}

func init() {
	for _, s := range []swarm.TaskState{swarm.TaskStateNew, swarm.TaskStateAllocated, swarm.TaskStatePending,
		swarm.TaskStateAssigned, swarm.TaskStateAccepted, swarm.TaskStatePreparing, swarm.TaskStateReady,
		swarm.TaskStateStarting, swarm.TaskStateRunning, swarm.TaskStateComplete, swarm.TaskStateShutdown,
		swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateRemove, swarm.TaskStateOrphaned} {
		taskStates[string(s)] = s
	}
}

// taskFilterOf checks and resolves the task filters f.
func (b *Backend) taskFilterOf(ctx context.Context, f backend.Filters, services []store.Service) (*taskFilter, error) {
	if err := checkKeys(f, taskFilterKeys); err != nil {
		return nil, err
	}
	tf := &taskFilter{f: f, services: map[string]store.Service{}, upToDate: len(f["_up-to-date"]) > 0,
		labels: labelFilter(f["label"])}
	for _, s := range services {
		tf.services[s.ID] = s
	}
	for _, ref := range f["service"] {
		s, err := pickService(services, ref)
		if err != nil {
			return nil, err
		}
		tf.serviceIDs = append(tf.serviceIDs, s.ID)
	}
	for _, ref := range f["node"] {
		id, err := b.resolveNode(ctx, ref)
		if err != nil {
			return nil, err
		}
		tf.nodeIDs = append(tf.nodeIDs, id)
	}
	for _, v := range f["desired-state"] {
		st, ok := taskStates[strings.ToLower(v)]
		if !ok && v != "" {
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("Invalid desired-state filter: '%s'", v))
		}
		if ok {
			tf.desired = append(tf.desired, st)
		}
	}
	return tf, nil
}

func (b *Backend) resolveNode(ctx context.Context, ref string) (string, error) {
	if b.engines == nil {
		return ref, nil
	}
	return b.engines.ResolveNode(ctx, ref)
}

// match says whether t passes every filter.
func (tf *taskFilter) match(t store.Task) bool {
	svc, known := tf.services[t.ServiceID]
	if !anyPrefix(t.ID, tf.f["id"]) || !anyEqual(t.ServiceID, tf.serviceIDs) || !anyEqual(t.NodeID, tf.nodeIDs) {
		return false
	}
	if len(tf.f["name"]) > 0 && !anyPrefix(taskName(t, svc.Spec.Name), tf.f["name"]) {
		return false
	}
	if len(tf.f["label"]) > 0 && !tf.labels(svc.Spec.Labels) {
		return false
	}
	if len(tf.desired) > 0 && !containsState(tf.desired, t.DesiredState) {
		return false
	}
	if tf.upToDate && (!known || t.SpecVersion != svc.SpecVersion) {
		return false
	}
	return runtimeMatches(tf.f["runtime"])
}

func containsState(list []swarm.TaskState, s swarm.TaskState) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// taskName is the task's name as swarm mode's naming gives it:
// "<service>.<slot>.<id>", or "<service>.<node id>.<id>" for a global
// service's task (slot 0).
func taskName(t store.Task, service string) string {
	if t.Annotations.Name != "" {
		return t.Annotations.Name
	}
	mid := strconv.Itoa(t.Slot)
	if t.Slot == 0 {
		mid = t.NodeID
	}
	return service + "." + mid + "." + t.ID
}

// pickService resolves ref among list as lookupService does.
func pickService(list []store.Service, ref string) (store.Service, error) {
	var byID, byName, byPrefix []store.Service
	for _, s := range list {
		switch {
		case s.ID == ref:
			byID = append(byID, s)
		case s.Spec.Name == ref:
			byName = append(byName, s)
		case strings.HasPrefix(s.ID, ref):
			byPrefix = append(byPrefix, s)
		}
	}
	for _, found := range [][]store.Service{byID, byName, byPrefix} {
		switch {
		case len(found) == 1:
			return found[0], nil
		case len(found) > 1:
			return store.Service{}, errAmbiguous("service", ref, len(found))
		}
	}
	return store.Service{}, errServiceNotFound(ref)
}

// Tasks lists the tasks matching filters.
func (b *Backend) Tasks(ctx context.Context, filters backend.Filters) ([]swarm.Task, error) {
	services, _, err := b.services.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("services: list: %w", err)
	}
	tf, err := b.taskFilterOf(ctx, filters, services)
	if err != nil {
		return nil, err
	}
	tasks, _, err := b.tasks.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("services: list tasks: %w", err)
	}
	out := []swarm.Task{}
	for _, t := range tasks {
		if tf.match(t) {
			out = append(out, rendered(t))
		}
	}
	return out, nil
}

// Task finds one task by ID, name or unique ID prefix.
func (b *Backend) Task(ctx context.Context, ref string) (swarm.Task, error) {
	t, err := b.lookupTask(ctx, ref)
	if err != nil {
		return swarm.Task{}, err
	}
	return rendered(t), nil
}

// rendered is the task as dockerd shows swarm mode's: its spec has no
// Runtime (dockerd sets it on a service's TaskTemplate only), while the
// stored copy of the service's spec keeps it.
func rendered(t store.Task) swarm.Task {
	out := t.Task
	out.Spec.Runtime = ""
	return out
}

func (b *Backend) lookupTask(ctx context.Context, ref string) (store.Task, error) {
	if ref == "" {
		return store.Task{}, errTaskNotFound(ref)
	}
	if t, err := b.tasks.Get(ctx, ref); err == nil {
		return t, nil
	}
	tasks, _, err := b.tasks.List(ctx)
	if err != nil {
		return store.Task{}, fmt.Errorf("services: list tasks: %w", err)
	}
	names := map[string]string{}
	if services, _, err := b.services.List(ctx); err == nil {
		for _, s := range services {
			names[s.ID] = s.Spec.Name
		}
	}
	var byName, byPrefix []store.Task
	for _, t := range tasks {
		if svc, ok := names[t.ServiceID]; ok && taskName(t, svc) == ref {
			byName = append(byName, t)
		}
		if strings.HasPrefix(t.ID, ref) {
			byPrefix = append(byPrefix, t)
		}
	}
	found := byName
	if len(found) == 0 {
		found = byPrefix
	}
	switch len(found) {
	case 0:
		return store.Task{}, errTaskNotFound(ref)
	case 1:
		return found[0], nil
	}
	return store.Task{}, errAmbiguous("task", ref, len(found))
}

// fillStatus sets each service's ServiceStatus from its tasks, counted as
// swarm mode counts them.
func (b *Backend) fillStatus(ctx context.Context, list []swarm.Service) error {
	tasks, _, err := b.tasks.List(ctx)
	if err != nil {
		return fmt.Errorf("services: list tasks: %w", err)
	}
	byService := map[string][]store.Task{}
	for _, t := range tasks {
		byService[t.ServiceID] = append(byService[t.ServiceID], t)
	}
	for i := range list {
		list[i].ServiceStatus = serviceStatus(list[i], byService[list[i].ID])
	}
	return nil
}

func serviceStatus(s swarm.Service, tasks []store.Task) *swarm.ServiceStatus {
	st := &swarm.ServiceStatus{}
	global := false
	switch m := s.Spec.Mode; {
	case m.Replicated != nil && m.Replicated.Replicas != nil:
		st.DesiredTasks = *m.Replicated.Replicas
	case m.ReplicatedJob != nil && m.ReplicatedJob.MaxConcurrent != nil:
		st.DesiredTasks = *m.ReplicatedJob.MaxConcurrent
	case m.Global != nil, m.GlobalJob != nil:
		global = true
	}
	for _, t := range tasks {
		if s.JobStatus != nil {
			if t.JobIteration == nil || t.JobIteration.Index != s.JobStatus.JobIteration.Index {
				continue
			}
			if t.Status.State == swarm.TaskStateComplete {
				st.CompletedTasks++
			}
		}
		if t.Status.State == swarm.TaskStateRunning {
			st.RunningTasks++
		}
		if global && t.DesiredState == swarm.TaskStateRunning {
			st.DesiredTasks++
		}
		if global && t.Status.State != swarm.TaskStateComplete && t.DesiredState == swarm.TaskStateComplete {
			st.DesiredTasks++
		}
	}
	return st
}
