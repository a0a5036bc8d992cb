package orchestrator

import (
	"encoding/json"
	"sort"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// State is what Reconcile decides from: the desired state in the store and
// what the runtime observes.
type State struct {
	Services []store.Service
	Tasks    []store.Task
	Nodes    []Node
	Observed []Observed
	// StaleNodes are the nodes whose containers are not known now: their
	// observed containers are not acted on until they are.
	StaleNodes []string
	// OrphanSeen is when the loop first saw each container (by ID) that
	// carries a task ID with no task record; a container missing from it
	// counts as seen now.
	OrphanSeen map[string]time.Time
	// MissingSince is when the loop first saw each started task's
	// container missing; a task missing from it counts as missing since
	// now.
	MissingSince map[string]time.Time
	// Unconfirmed are nodes not ready that this leader has not seen ready
	// yet and that may still be connecting (it just started): their tasks
	// are kept, not replaced, until they are confirmed down.
	Unconfirmed []string
	// DownSince is when the loop first saw each node not ready; a node
	// not ready and missing from it counts as down since now. Tasks of a
	// node down for OrphanAfter are marked ORPHANED.
	DownSince map[string]time.Time
	// NewID makes the IDs of new tasks (store.NewID if nil).
	NewID func() string
}

// Stop is a container to stop (and then remove, when Remove is set).
type Stop struct {
	Task    store.Task
	Timeout time.Duration
	Remove  bool
}

// ServiceWrite is a status write to a service, made only if the service
// is still at SpecVersion (a user's change since makes the next pass
// decide again).
type ServiceWrite struct {
	ID           string
	SpecVersion  uint64
	UpdateStatus *swarm.UpdateStatus // nil: leave it
	JobStatus    *swarm.JobStatus    // nil: leave it
	// Rollback swaps Spec and PreviousSpec (SpecVersion+1): the update
	// failed and its FailureAction is rollback.
	Rollback bool
}

// Plan is what one Reconcile pass decided, to be applied in this order:
// service writes, task writes (Puts, Deletes), then the container
// operations (Stops, Removes, Starts) concurrently.
type Plan struct {
	Services []ServiceWrite
	Puts     []store.Task
	Deletes  []string
	Stops    []Stop
	Removes  []store.Task // containers to remove at once (forced)
	Starts   []store.Task // ASSIGNED tasks whose container is to start
	// Wake is when a delay (restart backoff, update delay or monitor,
	// orphan grace) ends and Reconcile is to run again; zero: no delay.
	Wake time.Time
}

// Empty says whether the plan changes nothing.
func (p Plan) Empty() bool {
	return len(p.Services)+len(p.Puts)+len(p.Deletes)+len(p.Stops)+len(p.Removes)+len(p.Starts) == 0
}

// Timings of the reconciliation.
const (
	// OrphanGrace is how long a container whose task has no record is
	// left alone before it is removed (a create of a previous leader may
	// be in flight).
	OrphanGrace = 5 * time.Second
	// MissingGrace is how long a started task may lack a container in
	// the runtime's view before it counts as failed: a view being rebuilt
	// (an engine reconnecting) must not fail tasks that still run.
	MissingGrace = 10 * time.Second
	// HistoryLimit is how many tasks a slot keeps (swarm mode's
	// TaskHistoryRetentionLimit default).
	HistoryLimit = 5
	// DefaultStopGrace is the stop timeout without a StopGracePeriod.
	DefaultStopGrace = 10 * time.Second
)

// private is a task's bookkeeping in store.Task.Private.
type private struct {
	// Failures counts the consecutive quick failures of the task's slot
	// (restart backoff): carried to the replacement, reset by a long run.
	Failures int `json:"failures,omitempty"`
	// Restarts are when the slot's tasks were restarted (MaxAttempts
	// within Window), carried to the replacement.
	Restarts []time.Time `json:"restarts,omitempty"`
	// Ended is set when the task ended while it was wanted: its
	// replacement waits until RestartAt, or never comes (NoRestart).
	Ended     bool      `json:"ended,omitempty"`
	RestartAt time.Time `json:"restartAt,omitempty"`
	NoRestart bool      `json:"noRestart,omitempty"`
	// Reason says why the task was shut down: lost (its node went
	// down: its container is stale and is removed when seen again),
	// update, drain, scale, replaced, iteration, removed.
	Reason string `json:"reason,omitempty"`
	// RunningAt is when the task was first seen running (healthy).
	RunningAt time.Time `json:"runningAt,omitempty"`
}

// task is a task record being reconciled.
type task struct {
	*store.Task // the input's record until the task is changed (own)
	owned       bool
	p           private
	decoded     bool // p holds Task.Private, decoded at first use
	obs         *Observed
	dirty       bool
}

// pv is the task's bookkeeping, decoded at first use (most passes never
// look at most tasks' bookkeeping).
func (t *task) pv() *private {
	if !t.decoded {
		t.decoded = true
		if len(t.Private) > 0 {
			_ = json.Unmarshal(t.Private, &t.p) // bookkeeping only: a bad one starts afresh
		}
	}
	return &t.p
}

// save makes the task's record its own (the input is never changed) and
// marks it to be written; call it before changing the record.
func (t *task) save() {
	if !t.owned {
		cp := *t.Task
		t.Task, t.owned = &cp, true
	}
	t.dirty = true
}

func (t *task) encode() store.Task {
	out := *t.Task
	if !t.decoded {
		return out
	}
	out.Private = nil
	if b, _ := json.Marshal(t.p); string(b) != "{}" {
		out.Private = b
	}
	return out
}

// terminal says whether a task state is final.
func terminal(s swarm.TaskState) bool {
	switch s {
	case swarm.TaskStateComplete, swarm.TaskStateFailed, swarm.TaskStateShutdown,
		swarm.TaskStateRejected, swarm.TaskStateOrphaned, swarm.TaskStateRemove:
		return true
	}
	return false
}

// wanted says whether a task is meant to run (or to run to completion).
func wanted(t *task) bool {
	return t.DesiredState == swarm.TaskStateRunning || t.DesiredState == swarm.TaskStateComplete
}

// containerUp says whether an observed container is (about to be) running.
func containerUp(o *Observed) bool {
	if o == nil {
		return false
	}
	switch o.State {
	case "running", "paused", "restarting", "created":
		return true
	}
	return false
}

// reconciler holds one pass.
type reconciler struct {
	now         time.Time
	nodes       map[string]*Node
	nodeList    []Node
	stale       map[string]bool
	tasks       map[string]*task
	bySvc       map[string][]*task
	plan        Plan
	removed     map[string]bool
	missing     map[string]time.Time
	unconfirmed map[string]bool
	newID       func() string
	order       []*task // every task by ID; resorted after creations
	unsorted    bool
}

// Reconcile decides, from the state and the time now, what to write and
// which containers to start, stop and remove. It does no I/O and reads no
// clock, and the same input gives the same plan.
func Reconcile(st State, now time.Time) Plan {
	r := newReconciler(st, now)
	r.orphans(st)
	svcs := append([]store.Service(nil), st.Services...)
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].ID < svcs[j].ID })
	known := map[string]bool{}
	for i := range svcs {
		known[svcs[i].ID] = true
	}
	r.deletedServices(known)
	for _, t := range r.sorted() {
		r.observe(t)
	}
	r.orphanDownNodes(st.DownSince)
	for i := range svcs {
		r.service(&svcs[i])
	}
	r.containerOps()
	r.finish()
	return r.plan
}

func newReconciler(st State, now time.Time) *reconciler {
	r := &reconciler{now: now, nodes: make(map[string]*Node, len(st.Nodes)), stale: map[string]bool{},
		tasks: make(map[string]*task, len(st.Tasks)), bySvc: map[string][]*task{}, removed: map[string]bool{}}
	r.missing = st.MissingSince
	r.unconfirmed = map[string]bool{}
	for _, id := range st.Unconfirmed {
		r.unconfirmed[id] = true
	}
	r.newID = st.NewID
	if r.newID == nil {
		r.newID = store.NewID
	}
	r.nodeList = append([]Node(nil), st.Nodes...)
	sort.Slice(r.nodeList, func(i, j int) bool { return r.nodeList[i].ID < r.nodeList[j].ID })
	for i := range r.nodeList {
		r.nodes[r.nodeList[i].ID] = &r.nodeList[i]
	}
	for _, id := range st.StaleNodes {
		r.stale[id] = true
	}
	slab := make([]task, len(st.Tasks)) // one allocation, not one per task
	byID := true                        // st.Tasks is sorted by ID (the loop sorts it)
	for i := range st.Tasks {
		t := &slab[i]
		t.Task = &st.Tasks[i]
		r.tasks[t.ID] = t
		r.bySvc[t.ServiceID] = append(r.bySvc[t.ServiceID], t)
		byID = byID && (i == 0 || st.Tasks[i-1].ID < t.ID)
	}
	if byID && len(r.tasks) == len(slab) {
		r.order = make([]*task, len(slab))
		for i := range slab {
			r.order[i] = &slab[i]
		}
	}
	for i := range st.Observed {
		o := &st.Observed[i]
		t := r.tasks[o.TaskID]
		if t == nil || r.stale[o.NodeID] || o.NodeID != t.NodeID {
			continue
		}
		if t.obs == nil || (containerUp(o) && !containerUp(t.obs)) {
			t.obs = o
		}
	}
	for _, ts := range r.bySvc {
		sortTasks(ts)
	}
	return r
}

// sortTasks orders tasks oldest first: by spec version, then creation,
// then ID. The spec version comes first because creation times can tie
// (two tasks made in one instant, as a start-first replacement and the
// task it replaces can be on a coarse clock) or run backwards (a new
// leader whose clock is behind the old one's); a tie broken by ID then
// took the old task for the newer one at random, and start-first updates
// shut down their own replacements, again and again.
func sortTasks(ts []*task) {
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].SpecVersion != ts[j].SpecVersion {
			return ts[i].SpecVersion < ts[j].SpecVersion
		}
		if !ts[i].CreatedAt.Equal(ts[j].CreatedAt) {
			return ts[i].CreatedAt.Before(ts[j].CreatedAt)
		}
		return ts[i].ID < ts[j].ID
	})
}

// sorted is every task by ID, those made in this pass included.
func (r *reconciler) sorted() []*task {
	if r.order == nil || r.unsorted {
		r.order = make([]*task, 0, len(r.tasks))
		for _, t := range r.tasks {
			r.order = append(r.order, t)
		}
		sort.Slice(r.order, func(i, j int) bool { return r.order[i].ID < r.order[j].ID })
		r.unsorted = false
	}
	return r.order
}

// reachable says whether the containers of nodeID can be acted on now.
func (r *reconciler) reachable(nodeID string) bool {
	n := r.nodes[nodeID]
	return n != nil && n.Ready && !r.stale[nodeID]
}

// wake asks for another pass at t.
func (r *reconciler) wake(t time.Time) {
	if !t.After(r.now) {
		t = r.now
	}
	if r.plan.Wake.IsZero() || t.Before(r.plan.Wake) {
		r.plan.Wake = t
	}
}

// orphans removes the containers of tasks that have no record, once they
// have been seen for OrphanGrace.
func (r *reconciler) orphans(st State) {
	var obs []*Observed // only the orphans: most containers have their task
	for i := range st.Observed {
		o := &st.Observed[i]
		if r.tasks[o.TaskID] == nil && r.reachable(o.NodeID) && o.State != "removing" {
			obs = append(obs, o)
		}
	}
	sort.Slice(obs, func(i, j int) bool { return obs[i].ContainerID < obs[j].ContainerID })
	for _, o := range obs {
		seen, ok := st.OrphanSeen[o.ContainerID]
		if !ok {
			seen = r.now
		}
		if due := seen.Add(OrphanGrace); r.now.Before(due) {
			r.wake(due)
			continue
		}
		r.plan.Removes = append(r.plan.Removes, store.Task{Task: swarm.Task{ID: o.TaskID, NodeID: o.NodeID}})
	}
}

// deletedServices deletes the tasks of services that are gone, and their
// containers.
func (r *reconciler) deletedServices(known map[string]bool) {
	ids := make([]string, 0)
	for id := range r.bySvc {
		if !known[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		for _, t := range r.bySvc[id] {
			r.deleteTask(t)
		}
		delete(r.bySvc, id)
	}
}

// deleteTask deletes a task's record and removes its container.
func (r *reconciler) deleteTask(t *task) {
	r.removed[t.ID] = true
	r.plan.Deletes = append(r.plan.Deletes, t.ID)
	if t.obs != nil && r.reachable(t.NodeID) {
		r.plan.Stops = append(r.plan.Stops, Stop{Task: t.encode(), Timeout: stopGrace(t), Remove: true})
	}
}

// containerOps stops the containers of tasks that should not run, and
// starts those of tasks that were assigned.
func (r *reconciler) containerOps() {
	for _, t := range r.sorted() {
		if r.removed[t.ID] || !r.reachable(t.NodeID) {
			continue
		}
		switch {
		case containerUp(t.obs) && (!wanted(t) || terminal(t.Status.State)):
			r.plan.Stops = append(r.plan.Stops, Stop{Task: t.encode(), Timeout: stopGrace(t), Remove: t.pv().Reason == "lost"})
		case t.obs != nil && !wanted(t) && t.pv().Reason == "lost":
			r.plan.Removes = append(r.plan.Removes, t.encode())
		case wanted(t) && t.Status.State == swarm.TaskStateAssigned && (t.obs == nil || t.obs.State == "created"):
			r.plan.Starts = append(r.plan.Starts, t.encode())
		}
	}
}

func stopGrace(t *task) time.Duration {
	if cs := t.Spec.ContainerSpec; cs != nil && cs.StopGracePeriod != nil {
		return *cs.StopGracePeriod
	}
	return DefaultStopGrace
}

// finish lists the changed tasks.
func (r *reconciler) finish() {
	for _, t := range r.sorted() {
		if t.dirty && !r.removed[t.ID] {
			r.plan.Puts = append(r.plan.Puts, t.encode())
		}
	}
	sort.Strings(r.plan.Deletes)
}

// setStatus moves a task to state with swarm mode's message.
func (r *reconciler) setStatus(t *task, state swarm.TaskState, msg, errText string, at time.Time) {
	if at.IsZero() {
		at = r.now
	}
	t.save()
	t.Status.State, t.Status.Message, t.Status.Err, t.Status.Timestamp = state, msg, errText, at.UTC()
	t.UpdatedAt = r.now.UTC()
}

// shutdown sets a task's desired state to shutdown, for reason.
func (r *reconciler) shutdown(t *task, reason string) {
	if t.DesiredState == swarm.TaskStateShutdown {
		return
	}
	t.save()
	t.DesiredState = swarm.TaskStateShutdown
	t.UpdatedAt = r.now.UTC()
	if t.pv().Reason == "" {
		t.pv().Reason = reason
	}
}
