package orchestrator

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// Loop defaults.
const (
	// DefaultDebounce coalesces the changes that arrive together (a
	// service created, its tasks' containers starting) into one pass.
	DefaultDebounce = 50 * time.Millisecond
	// DefaultMaxOps bounds the container operations in flight.
	DefaultMaxOps = 32
	// StartupGrace is how long a new leader waits for a node it has not
	// seen ready yet (its engine may still be connecting: the runtime
	// waits for first contact, this covers what is left) before it
	// replaces that node's tasks; a node it saw ready and then lost has
	// its tasks replaced at once.
	StartupGrace = 5 * time.Second
	// DefaultDownGrace is how long a node must have been failing before
	// its tasks are replaced: an agent restarting (its tunnel drops, and
	// the node is marked down at once) or a blip of the network is not a
	// lost node. A node whose engine failed its health checks until it
	// was marked down has usually failed that long already (the runtime
	// gives the time of its first failure), so its tasks go at once.
	DefaultDownGrace = 3 * time.Second
	// resyncEvery makes a pass even when nothing was heard of, in case a
	// change notification was lost.
	resyncEvery = 5 * time.Second
	retryEvery  = time.Second
)

// Config is what the orchestrator needs.
type Config struct {
	Store   *store.Store
	Runtime Runtime
	Logger  *slog.Logger // slog.Default() if nil
	Clock   Clock        // real time if nil
	// Debounce and MaxOps default to DefaultDebounce and DefaultMaxOps.
	Debounce time.Duration
	MaxOps   int
	// ViewSince is when the Runtime's view of the nodes began (the
	// manager's start). A Run that begins StartupGrace or more after it
	// (a leader change in a running manager) has no startup grace: a node
	// it finds down is down, and its tasks are replaced at once. Zero:
	// every Run has the grace.
	ViewSince time.Time
	// DownGrace is DefaultDownGrace if zero; negative: none.
	DownGrace time.Duration
	// Observe, if set, is told of each pass (the metrics: observe_metrics.go).
	Observe Observer
}

// Orchestrator keeps the services in the store at their desired state
// through the Runtime. Only the leader runs it (inside run.LeaderOnly):
// it starts each time from the store and the runtime's containers, so a
// new leader neither duplicates nor loses a task. It is the only writer of
// task records; while it runs, its copy of them is the truth.
type Orchestrator struct {
	cfg      Config
	log      *slog.Logger
	clock    Clock
	services store.Services
	tasks    store.Tasks
}

// New returns an orchestrator; Run runs it.
func New(cfg Config) *Orchestrator {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.MaxOps <= 0 {
		cfg.MaxOps = DefaultMaxOps
	}
	if cfg.DownGrace == 0 {
		cfg.DownGrace = DefaultDownGrace
	}
	return &Orchestrator{cfg: cfg, log: cfg.Logger.With("component", "orchestrator"), clock: cfg.Clock,
		services: store.NewServices(cfg.Store), tasks: store.NewTasks(cfg.Store)}
}

// opResult is the outcome of one container operation.
type opResult struct {
	taskID      string
	start       bool
	containerID string
	err         error
}

// loop is one run's state, owned by the Run goroutine.
type loop struct {
	o          *Orchestrator
	svcs       map[string]store.Service
	tasks      map[string]store.Task
	toWrite    map[string]bool // tasks changed by op results, not yet written
	inflight   map[string]bool
	orphanSeen map[string]time.Time
	missing    map[string]time.Time // started tasks whose container is not seen, since when
	retryAt    map[string]time.Time // tasks whose node did not answer their start: not before
	results    chan opResult
	sem        chan struct{}
	ops        sync.WaitGroup
	graceEnd   time.Time // until when nodes not seen ready yet keep their tasks
	seenReady  map[string]bool
	downSince  map[string]time.Time // nodes not ready, since when this run saw them so
	wakeAt     time.Time
	wakeCh     <-chan time.Time
}

// Run reconciles until ctx ends; it returns nil then. Store and runtime
// errors are logged and retried.
func (o *Orchestrator) Run(ctx context.Context) error {
	l := &loop{o: o, toWrite: map[string]bool{}, inflight: map[string]bool{}, orphanSeen: map[string]time.Time{},
		results: make(chan opResult, 1024), sem: make(chan struct{}, o.cfg.MaxOps),
		graceEnd: o.graceEnd(), seenReady: map[string]bool{}, retryAt: map[string]time.Time{}}
	defer l.ops.Wait()
	rev, err := l.load(ctx)
	if err != nil {
		return nil // ctx ended
	}
	watch := o.services.Watch(ctx, rev+1)
	changed := o.cfg.Runtime.Changed(ctx)
	debounce := time.NewTimer(0) // a first pass at once
	pending := true
	resync := time.NewTicker(resyncEvery)
	defer resync.Stop()
	// gap is the wait before a pass: the debounce, or as long as the last
	// pass took when that is longer, so the loop spends at most half its
	// time reconciling while changes pour in (a 10,000-task start).
	gap := o.cfg.Debounce
	kick := func() {
		if !pending {
			pending = true
			debounce.Reset(gap)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ch, ok := <-watch:
			if !ok || ch.Err != nil {
				if ctx.Err() != nil {
					return nil
				}
				o.log.Warn("services watch ended; listing again", "error", ch.Err)
				watch = l.rewatch(ctx)
			} else {
				l.serviceChanged(ch)
			}
			kick()
		case <-changed:
			kick()
		case res := <-l.results:
			l.opDone(res)
			kick()
		case <-l.wakeCh:
			l.wakeCh, l.wakeAt = nil, time.Time{}
			kick()
		case <-resync.C:
			kick()
		case <-debounce.C:
			pending = false
			began := time.Now()
			wrote := l.pass(ctx)
			gap = max(o.cfg.Debounce, time.Since(began))
			if wrote {
				kick() // its own writes may let the next step happen at once
			}
		}
	}
}

// graceEnd is when a Run starting now stops waiting for nodes it has not
// seen ready (now when the runtime's view is established).
func (o *Orchestrator) graceEnd() time.Time {
	now := o.clock.Now()
	if vs := o.cfg.ViewSince; !vs.IsZero() && now.Sub(vs) >= StartupGrace {
		return now
	}
	return now.Add(StartupGrace)
}

// load lists the services and tasks, retrying until it can or ctx ends.
func (l *loop) load(ctx context.Context) (int64, error) {
	for {
		svcs, rev, err := l.o.services.List(ctx)
		if err == nil {
			var tasks []store.Task
			tasks, _, err = l.o.tasks.List(ctx)
			if err == nil {
				l.svcs = map[string]store.Service{}
				for _, s := range svcs {
					l.svcs[s.ID] = s
				}
				l.tasks = map[string]store.Task{}
				for _, t := range tasks {
					l.tasks[t.ID] = t
				}
				return rev, nil
			}
		}
		l.o.log.Warn("cannot read services and tasks; retrying", "error", err)
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(retryEvery):
		}
	}
}

// rewatch lists the services again and watches from there.
func (l *loop) rewatch(ctx context.Context) <-chan store.Change[store.Service] {
	for {
		svcs, rev, err := l.o.services.List(ctx)
		if err == nil {
			l.svcs = map[string]store.Service{}
			for _, s := range svcs {
				l.svcs[s.ID] = s
			}
			return l.o.services.Watch(ctx, rev+1)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retryEvery):
		}
	}
}

// serviceChanged keeps the copy of services current (an event older
// than the copy, e.g. of the loop's own write, is ignored).
func (l *loop) serviceChanged(ch store.Change[store.Service]) {
	id := ch.Item.ID
	if ch.Deleted {
		delete(l.svcs, id)
		return
	}
	if cur, ok := l.svcs[id]; ok && cur.Version.Index > ch.Item.Value.Version.Index {
		return
	}
	l.svcs[id] = ch.Item.Value
}

// pass runs one Reconcile over the current state and applies its plan; it
// says whether it changed anything.
func (l *loop) pass(ctx context.Context) bool {
	began := time.Now()
	if err := l.flush(ctx); err != nil {
		l.o.log.Warn("cannot write task states; retrying", "error", err)
		l.wake(l.o.clock.Now().Add(retryEvery))
		return false
	}
	st, err := l.state(ctx)
	if err != nil {
		l.o.log.Warn("cannot read nodes and containers; retrying", "error", err)
		l.wake(l.o.clock.Now().Add(retryEvery))
		return false
	}
	now := l.o.clock.Now()
	plan := Reconcile(st, now)
	if !plan.Empty() {
		l.o.log.Debug("pass", "puts", len(plan.Puts), "deletes", len(plan.Deletes), "starts", len(plan.Starts),
			"stops", len(plan.Stops), "removes", len(plan.Removes), "services", len(plan.Services))
		for _, t := range plan.Puts {
			l.o.log.Debug("task", "id", t.ID, "slot", t.Slot, "node", t.NodeID, "desired", t.DesiredState, "state", t.Status.State)
		}
	}
	if !plan.Wake.IsZero() {
		l.wake(plan.Wake)
	}
	wrote := l.apply(ctx, plan, now)
	l.observed(st, began)
	return wrote
}

// wake arranges a pass at t (the earliest asked for wins).
func (l *loop) wake(t time.Time) {
	if l.wakeCh != nil && !t.Before(l.wakeAt) {
		return
	}
	l.wakeAt = t
	l.wakeCh = l.o.clock.After(max(t.Sub(l.o.clock.Now()), 0))
}

// state is what Reconcile decides from.
func (l *loop) state(ctx context.Context) (State, error) {
	nodes, err := l.o.cfg.Runtime.Nodes(ctx)
	if err != nil {
		return State{}, err
	}
	obs, stale, err := l.o.cfg.Runtime.Containers(ctx)
	if err != nil {
		return State{}, err
	}
	now := l.o.clock.Now()
	seen := map[string]time.Time{}
	for _, c := range obs {
		if _, ok := l.tasks[c.TaskID]; ok {
			continue
		}
		at, ok := l.orphanSeen[c.ContainerID]
		if !ok {
			at = now
		}
		seen[c.ContainerID] = at
	}
	l.orphanSeen = seen
	l.missing = l.missingContainers(obs, stale, now)
	st := State{Nodes: nodes, Observed: obs, StaleNodes: stale, OrphanSeen: seen, MissingSince: l.missing,
		Unconfirmed: l.unconfirmed(nodes, now), DownSince: l.nodesDown(nodes, now),
		Services: make([]store.Service, 0, len(l.svcs)), Tasks: make([]store.Task, 0, len(l.tasks))}
	for _, s := range l.svcs {
		st.Services = append(st.Services, s)
	}
	for _, t := range l.tasks {
		st.Tasks = append(st.Tasks, t)
	}
	sort.Slice(st.Tasks, func(i, j int) bool { return st.Tasks[i].ID < st.Tasks[j].ID })
	return st, nil
}

// nodesDown notes since when each node not ready has been so.
func (l *loop) nodesDown(nodes []Node, now time.Time) map[string]time.Time {
	out := map[string]time.Time{}
	for _, n := range nodes {
		if n.Ready {
			continue
		}
		at, ok := l.downSince[n.ID]
		if !ok {
			at = now
		}
		out[n.ID] = at
	}
	l.downSince = out
	return out
}

// unconfirmed are the nodes not ready whose tasks are kept for now: those
// this run has not seen ready while it is in its startup grace, and those
// failing for less than the down grace.
func (l *loop) unconfirmed(nodes []Node, now time.Time) []string {
	var out []string
	grace := l.graceEnd
	for _, n := range nodes {
		switch {
		case n.Ready:
			l.seenReady[n.ID] = true
		case !l.seenReady[n.ID] && now.Before(grace):
			out = append(out, n.ID)
			l.wake(grace)
		case l.o.cfg.DownGrace > 0 && now.Before(l.downAt(n, now).Add(l.o.cfg.DownGrace)):
			out = append(out, n.ID)
			l.wake(l.downAt(n, now).Add(l.o.cfg.DownGrace))
		}
	}
	return out
}

// downAt is when node n (not ready) began to fail: as the runtime says,
// or else when this run first saw it down.
func (l *loop) downAt(n Node, now time.Time) time.Time {
	if !n.DownSince.IsZero() {
		return n.DownSince
	}
	if at, ok := l.downSince[n.ID]; ok {
		return at
	}
	return now
}

// missingContainers notes since when each started task's container has
// been missing from the runtime's view.
func (l *loop) missingContainers(obs []Observed, stale []string, now time.Time) map[string]time.Time {
	seen := make(map[string]bool, len(obs))
	for _, c := range obs {
		seen[c.TaskID] = true
	}
	staleNode := map[string]bool{}
	for _, id := range stale {
		staleNode[id] = true
	}
	out := map[string]time.Time{}
	for id, t := range l.tasks {
		started := t.Status.State == swarm.TaskStateStarting || t.Status.State == swarm.TaskStateRunning
		if !started || seen[id] || staleNode[t.NodeID] {
			continue
		}
		at, ok := l.missing[id]
		if !ok {
			at = now
		}
		out[id] = at
	}
	return out
}

// apply writes the plan and starts its container operations.
func (l *loop) apply(ctx context.Context, p Plan, now time.Time) bool {
	for _, w := range p.Services {
		l.writeService(ctx, w, now)
	}
	if len(p.Puts)+len(p.Deletes) > 0 {
		if err := applyTasks(ctx, l.o.tasks, p.Puts, p.Deletes); err != nil {
			l.o.log.Warn("cannot write tasks; reading them again", "error", err)
			if _, err := l.load(ctx); err == nil {
				l.wake(now)
			}
			return false
		}
		for _, t := range p.Puts {
			l.tasks[t.ID] = t
		}
		for _, id := range p.Deletes {
			delete(l.tasks, id)
		}
	}
	for _, s := range p.Stops {
		l.op(ctx, s.Task.ID, false, func(ctx context.Context) (string, error) {
			err := l.o.cfg.Runtime.Stop(ctx, s.Task, s.Timeout)
			if err == nil && s.Remove {
				err = l.o.cfg.Runtime.Remove(ctx, s.Task)
			}
			return "", err
		})
	}
	for _, t := range p.Removes {
		l.op(ctx, t.ID, false, func(ctx context.Context) (string, error) { return "", l.o.cfg.Runtime.Remove(ctx, t) })
	}
	retry := map[string]time.Time{}
	for _, t := range p.Starts {
		svc, ok := l.svcs[t.ServiceID]
		if !ok {
			continue
		}
		if at, ok := l.retryAt[t.ID]; ok && now.Before(at) {
			retry[t.ID] = at
			l.wake(at)
			continue
		}
		l.op(ctx, t.ID, true, func(ctx context.Context) (string, error) { return l.o.cfg.Runtime.Start(ctx, svc, t) })
	}
	l.retryAt = retry // the others started, or are no longer to start
	return len(p.Services)+len(p.Puts)+len(p.Deletes) > 0
}

// writeService makes a status write on the service as it is now.
func (l *loop) writeService(ctx context.Context, w ServiceWrite, now time.Time) {
	svc, err := l.o.services.Change(ctx, w.ID, 0, func(s *store.Service) error { return applyWrite(s, w, now) })
	switch {
	case err == nil:
		l.svcs[w.ID] = svc
		if us := w.UpdateStatus; us != nil {
			l.o.log.Info("service update status", "service", svc.Spec.Name, "state", us.State, "message", us.Message)
		}
	case errors.Is(err, errStale), errors.Is(err, store.ErrNotFound):
	default:
		l.o.log.Warn("cannot write service status", "service", w.ID, "error", err)
	}
}

// op runs a container operation of a task in the background (one at a
// time per task, at most MaxOps at once).
func (l *loop) op(ctx context.Context, taskID string, start bool, fn func(context.Context) (string, error)) {
	if l.inflight[taskID] {
		return
	}
	l.inflight[taskID] = true
	l.ops.Add(1)
	go func() {
		defer l.ops.Done()
		select {
		case l.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		cid, err := fn(ctx)
		<-l.sem
		select {
		case l.results <- opResult{taskID: taskID, start: start, containerID: cid, err: err}:
		case <-ctx.Done():
		}
	}()
}

// opDone records an operation's outcome: a started task is STARTING with
// its container, one whose start failed REJECTED with the engine's words.
func (l *loop) opDone(res opResult) {
	delete(l.inflight, res.taskID)
	t, ok := l.tasks[res.taskID]
	if !res.start {
		if res.err != nil {
			l.o.log.Warn("container operation failed", "task", res.taskID, "error", res.err)
		}
		return
	}
	if !ok || t.Status.State != swarm.TaskStateAssigned {
		return
	}
	now := l.o.clock.Now().UTC()
	if errors.Is(res.err, ErrUnreachable) {
		// The node's loss, not the task's failure: it stays assigned, is
		// tried again, and is replaced once the node is seen down.
		l.o.log.Info("task start: node unreachable; trying again", "task", res.taskID, "error", res.err)
		l.retryAt[res.taskID] = l.o.clock.Now().Add(retryEvery)
		return
	}
	if res.err != nil {
		l.o.log.Info("task rejected", "task", res.taskID, "error", res.err)
		t.Status = swarm.TaskStatus{State: swarm.TaskStateRejected, Message: msgPreparing, Err: res.err.Error(), Timestamp: now}
	} else {
		t.Status = swarm.TaskStatus{State: swarm.TaskStateStarting, Message: msgStarting, Timestamp: now,
			ContainerStatus: &swarm.ContainerStatus{ContainerID: res.containerID}}
	}
	l.tasks[res.taskID] = t
	l.toWrite[res.taskID] = true
}

// flush writes the task states op results changed.
func (l *loop) flush(ctx context.Context) error {
	if len(l.toWrite) == 0 {
		return nil
	}
	puts := make([]store.Task, 0, len(l.toWrite))
	for id := range l.toWrite {
		if t, ok := l.tasks[id]; ok {
			puts = append(puts, t)
		}
	}
	sort.Slice(puts, func(i, j int) bool { return puts[i].ID < puts[j].ID })
	if err := applyTasks(ctx, l.o.tasks, puts, nil); err != nil {
		return err
	}
	clear(l.toWrite)
	return nil
}
