package manager

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/orchestrator"
	"github.com/shoal-dev/shoal/internal/scheduler"
	"github.com/shoal-dev/shoal/internal/store"
)

// taskRuntime is orchestrator.Runtime over the manager's engine pool: the
// orchestrator (on the leader) decides, this makes task containers on the
// nodes it chose, and reports them from the pool's cache.
type taskRuntime struct {
	m    *Manager
	data TaskData // secrets and configs to deliver (tasks_secrets.go)
}

var _ orchestrator.Runtime = taskRuntime{}

// TaskRuntime is the Runtime the orchestrator applies its plans through.
func (m *Manager) TaskRuntime() orchestrator.Runtime { return taskRuntime{m: m} }

// tunnelScheme addresses a built-in cluster node's engine: tunnel://<node ID>.
const tunnelScheme = "tunnel://"

// nodeIDOf is the node ID of an engine, as `docker node ls` shows it: the
// cluster's node ID in the built-in cluster, the engine's under manage.
func (m *Manager) nodeIDOf(e *engine.Engine) string {
	if m.cfg.Cluster != nil {
		if id, ok := strings.CutPrefix(e.Addr, tunnelScheme); ok {
			return id
		}
	}
	return e.ID
}

// nodeEngine is the engine of a node, or nil.
func (m *Manager) nodeEngine(nodeID string) *engine.Engine {
	for _, e := range m.pool.Engines() {
		if m.nodeIDOf(e) == nodeID {
			return e
		}
	}
	return nil
}

// Nodes lists the cluster's nodes: the built-in cluster's node records,
// or every engine under manage. A node is Ready while its engine is Healthy.
func (r taskRuntime) Nodes(ctx context.Context) ([]orchestrator.Node, error) {
	return r.nodes(ctx, true)
}

// nodes lists the nodes, with what their containers reserve when
// reserved is set (counting it walks every cached container).
func (r taskRuntime) nodes(ctx context.Context, reserved bool) ([]orchestrator.Node, error) {
	m := r.m
	// Right after shoal starts, engines not contacted yet would look down,
	// and their tasks lost: wait (at most one engine timeout) for them.
	m.awaitContact(ctx)
	var recs []swarm.Node
	byNode := map[string]*engine.Engine{}
	if m.cfg.Cluster != nil {
		var err error
		if recs, err = m.cfg.Cluster.Nodes(ctx); err != nil {
			return nil, err
		}
		for _, e := range m.pool.Engines() {
			byNode[m.nodeIDOf(e)] = e
		}
	} else {
		engines := m.pool.Engines()
		recs = make([]swarm.Node, 0, len(engines))
		for _, e := range engines {
			recs = append(recs, nodeOf(e))
			byNode[e.ID] = e
		}
	}
	out := make([]orchestrator.Node, 0, len(recs))
	for _, rec := range recs {
		if e := byNode[rec.ID]; e != nil && m.cfg.Cluster == nil {
			rec.Spec.Labels = memberNodeLabels(e, rec.Spec.Labels)
		}
		n := m.taskNode(rec, byNode[rec.ID])
		if e := byNode[rec.ID]; e != nil && reserved {
			n.ReservedNanoCPUs, n.ReservedMemoryBytes = m.reserved(e)
		}
		out = append(out, n)
	}
	return out, nil
}

// memberNodeLabels are a member shoal's own labels (--label) as its node
// labels under manage, where nodes have no labels of their own: a
// service's --placement-pref spread=node.labels.region or --constraint
// node.labels.region==eu then sees the members' regions.
func memberNodeLabels(e *engine.Engine, labels map[string]string) map[string]string {
	mv := e.Member()
	if mv == nil || len(mv.Labels) == 0 {
		return labels
	}
	out := make(map[string]string, len(labels)+len(mv.Labels))
	for k, v := range mv.Labels {
		out[k] = v
	}
	for k, v := range labels {
		out[k] = v
	}
	return out
}

// taskNode is a node record with what its engine (nil: none) tells.
func (m *Manager) taskNode(rec swarm.Node, e *engine.Engine) orchestrator.Node {
	n := orchestrator.Node{
		ID: rec.ID, Hostname: rec.Description.Hostname, Role: rec.Spec.Role, Availability: rec.Spec.Availability,
		Labels: rec.Spec.Labels, EngineLabels: rec.Description.Engine.Labels,
		OS: rec.Description.Platform.OS, Arch: rec.Description.Platform.Architecture,
		NanoCPUs: rec.Description.Resources.NanoCPUs, MemoryBytes: rec.Description.Resources.MemoryBytes,
		GenericResources: rec.Description.Resources.GenericResources,
	}
	if e == nil {
		return n
	}
	n.Ready = e.Healthy()
	if !n.Ready {
		n.DownSince = e.DownSince()
	}
	if info := e.Info(); info != nil {
		n.EngineLabels = engineLabels(info.Labels)
		n.OS, n.Arch = info.OSType, info.Architecture
		n.NanoCPUs, n.MemoryBytes = int64(info.NCPU)*1e9, info.MemTotal
		if len(info.GenericResources) > 0 {
			n.GenericResources = info.GenericResources // dockerd --node-generic-resource
		}
		if n.Hostname == "" {
			n.Hostname = info.Name
		}
	}
	return n
}

// reserved is what the node's active containers reserve, counted as the
// scheduler counts it, plus the creates in flight there.
func (m *Manager) reserved(e *engine.Engine) (cpu, mem int64) {
	add := func(c scheduler.Container) {
		if !c.Active() {
			return
		}
		if c.NanoCPUs > 0 {
			cpu += c.NanoCPUs
		} else {
			cpu += c.CPUShares * 1e9 / 1024
		}
		mem += max(c.Memory, c.MemoryReservation)
	}
	for _, c := range e.Containers() {
		add(scheduler.Container{State: c.State, NanoCPUs: c.NanoCPUs, CPUShares: c.CPUShares, Memory: c.Memory, MemoryReservation: c.MemoryReservation})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.pending[e.ID] {
		if id, ok := m.created[c.ID]; ok && e.Container(id) != nil {
			continue // the cache counts it already
		}
		add(c)
	}
	return cpu, mem
}

// Containers reports every cached container with a task ID label, and the
// nodes whose engine is not Healthy (their containers are the last known).
func (r taskRuntime) Containers(ctx context.Context) ([]orchestrator.Observed, []string, error) {
	r.m.awaitContact(ctx)
	var obs []orchestrator.Observed
	var stale []string
	for _, e := range r.m.pool.Engines() {
		node := r.m.nodeIDOf(e)
		if !e.Healthy() {
			stale = append(stale, node)
		}
		for _, c := range e.Containers() {
			if tid, ok := c.Labels[labelTaskID]; ok && ownTask(c, node) {
				obs = append(obs, observed(tid, node, c))
			}
		}
	}
	return obs, stale, nil
}

// ownTask says whether a task container on node is this shoal's: one
// made on a member by a shoal above (a federation) names that shoal's
// node for the member, not one of the member's own, and is left to it:
// taken for an orphan here, it would be removed under the shoal above.
func ownTask(c *engine.Container, node string) bool {
	id, ok := c.Labels[labelNodeID]
	return !ok || id == node
}

func observed(taskID, node string, c *engine.Container) orchestrator.Observed {
	health := c.HealthStatus
	if health == "none" {
		health = ""
	}
	return orchestrator.Observed{
		TaskID: taskID, NodeID: node, ContainerID: c.ID,
		State: c.State, Health: health, ExitCode: c.ExitCode, Error: c.Error, PID: c.PID,
		StartedAt: c.StartedAt(), FinishedAt: c.FinishedAt(), Ports: publishedHostPorts(c.Ports),
	}
}

// publishedHostPorts are the ports a task's container publishes on its node (its
// service's host-mode ports: the mesh's are not published by the engine),
// once each (the engine lists a port for IPv4 and IPv6), sorted.
func publishedHostPorts(ports []engine.Port) []swarm.PortConfig {
	var out []swarm.PortConfig
	for _, p := range ports {
		if p.PublicPort == 0 {
			continue
		}
		pc := swarm.PortConfig{Protocol: network.IPProtocol(cmp.Or(p.Type, "tcp")), TargetPort: uint32(p.PrivatePort),
			PublishedPort: uint32(p.PublicPort), PublishMode: swarm.PortConfigPublishModeHost}
		if !slices.Contains(out, pc) {
			out = append(out, pc)
		}
	}
	slices.SortFunc(out, func(a, b swarm.PortConfig) int {
		return cmp.Or(cmp.Compare(a.PublishedPort, b.PublishedPort), cmp.Compare(a.TargetPort, b.TargetPort), cmp.Compare(a.Protocol, b.Protocol))
	})
	return out
}

// taskContainers finds the containers of task t in the cache of its node
// (a task never moves; only when its node has no engine any more are all
// searched); when the cache has none and live is set, by asking its node
// (the cache may not have seen a container made a moment ago).
func (m *Manager) taskContainers(ctx context.Context, t store.Task, live bool) []cachedTask {
	var out []cachedTask
	home := m.nodeEngine(t.NodeID)
	engines := m.pool.Engines()
	if home != nil {
		engines = []*engine.Engine{home}
	}
	for _, e := range engines {
		for _, c := range e.Containers() {
			if c.Labels[labelTaskID] == t.ID {
				out = append(out, cachedTask{e, c.ID})
			}
		}
	}
	if len(out) > 0 || !live || home == nil || !home.Healthy() {
		return out
	}
	list, err := home.List(ctx, engine.ListOptions{All: true, Filters: map[string][]string{"label": {labelTaskID + "=" + t.ID}}})
	if err != nil {
		m.log.Debug("task container lookup", "task", t.ID, "node", home.Name(), "error", err)
		return nil
	}
	for _, c := range list {
		out = append(out, cachedTask{home, c.ID})
	}
	return out
}

type cachedTask struct {
	e  *engine.Engine
	id string
}

// Stop stops the container of t, killing it after timeout (rounded up to
// whole seconds, as the engine takes it). No container is no error.
func (r taskRuntime) Stop(ctx context.Context, t store.Task, timeout time.Duration) error {
	var errs []error
	for _, c := range r.m.taskContainers(ctx, t, true) {
		var tp *time.Duration
		if timeout > 0 {
			secs := (timeout + time.Second - 1).Truncate(time.Second)
			tp = &secs
		}
		err := r.m.ask(ctx, c.e, writePatience, func(ctx context.Context) error { return c.e.Stop(ctx, c.id, tp) })
		if err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("stopping task %s on %s: %w", t.ID, c.e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Remove removes the container of t with its anonymous volumes, as swarm
// mode does; a container already gone is success.
func (r taskRuntime) Remove(ctx context.Context, t store.Task) error {
	var errs []error
	for _, c := range r.m.taskContainers(ctx, t, true) {
		err := r.m.ask(ctx, c.e, writePatience, func(ctx context.Context) error {
			return c.e.Remove(ctx, c.id, engine.RemoveOptions{Force: true, Volumes: true})
		})
		if err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing task %s on %s: %w", t.ID, c.e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// nodePoll is how often Changed compares the nodes: node records change
// (drain, labels, role) without an event on the pool's bus.
const nodePoll = time.Second

// Changed signals (coalesced into one pending value) each event of a task
// container, each engine state change, and each change of the nodes'
// availability, role, labels or readiness, until ctx ends.
func (r taskRuntime) Changed(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	poke := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	go func() {
		tick := time.NewTicker(nodePoll)
		defer tick.Stop()
		dg := newNodeDigester(r)
		last := dg.digest(ctx)
		for ctx.Err() == nil {
			sub := r.m.pool.Subscribe(ctx)
			r.follow(ctx, sub, tick.C, dg, &last, poke)
			poke() // the subscription fell behind and ended: events may be lost
		}
	}()
	return ch
}

// follow pokes for the subscription's relevant events and the node
// changes seen at each tick, until the subscription ends.
func (r taskRuntime) follow(ctx context.Context, sub *engine.Subscription, tick <-chan time.Time, dg *nodeDigester, last *uint64, poke func()) {
	for {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			if ev.IsState() || isTaskEvent(ev) {
				poke()
			}
		case <-tick:
			if d := dg.digest(ctx); d != *last {
				*last = d
				poke()
			}
		}
	}
}

func isTaskEvent(ev engine.Event) bool {
	if ev.Message.Type != "container" {
		return false
	}
	_, ok := ev.Message.Actor.Attributes[labelTaskID]
	return ok
}
