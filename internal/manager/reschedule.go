package manager

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// WantsReschedule says whether a container asked to be recreated elsewhere
// when its node fails (label com.docker.swarm.reschedule-policies, which
// shoal also sets from -e reschedule:on-node-failure).
func WantsReschedule(labels map[string]string) bool {
	v, ok := labels[scheduler.LabelReschedule]
	if !ok {
		return false
	}
	var policies []string
	if json.Unmarshal([]byte(v), &policies) != nil {
		return strings.Contains(v, scheduler.RescheduleOnNodeFailure)
	}
	for _, p := range policies {
		if p == scheduler.RescheduleOnNodeFailure {
			return true
		}
	}
	return false
}

// Rescheduler moves the rescheduleable containers of nodes that stayed
// down for RescheduleAfter, and removes their stale copies when such a node
// comes back. It acts for the whole cluster, so only the leader runs it:
// two managers doing it at once would each recreate the same container.
//
// It follows the pool's event bus rather than polling the engines: an
// engine turning Unhealthy arranges a check at StateSince+RescheduleAfter,
// one turning Healthy has its stale copies removed at once. Starting (a new
// leader) and falling behind the bus both begin with a full pass over the
// pool, since the changes before that were not seen.
type Rescheduler struct {
	m *Manager
	// Now is the clock downtime is measured with (time.Now by default).
	Now func() time.Time
	// Tick, if set, replaces the timer that wakes the rescheduler when a
	// check is due: each tick acts on the checks due at Now(). Tests set
	// both to drive it on a fake clock.
	Tick <-chan time.Time
}

// Rescheduler returns the manager's rescheduling loop, to be run while
// this manager leads.
func (m *Manager) Rescheduler() *Rescheduler {
	return &Rescheduler{m: m, Now: time.Now}
}

// checks are the engines down at the last look, with when each is due to
// have its containers rescheduled.
type checks map[*engine.Engine]time.Time

// Run follows the pool until ctx ends.
func (r *Rescheduler) Run(ctx context.Context) error {
	due := checks{}
	sub := r.follow(ctx, due)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		wake := r.Tick
		if wake == nil {
			r.arm(timer, due)
			wake = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.C():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				r.m.log.Warn("rescheduler fell behind the pool's events; looking at every node again", "error", sub.Err())
				sub = r.follow(ctx, due)
				continue
			}
			r.handle(ctx, ev, due)
		case <-wake:
			r.runDue(ctx, due)
		}
	}
}

// follow subscribes to the pool, then makes a full pass: subscribing
// first means no change falls between the pass and the events.
func (r *Rescheduler) follow(ctx context.Context, due checks) *engine.Subscription {
	sub := r.m.pool.Subscribe(ctx)
	r.pass(ctx, due)
	return sub
}

// pass looks at every engine: down ones get a check (run now if due),
// healthy ones lose their stale copies.
func (r *Rescheduler) pass(ctx context.Context, due checks) {
	clear(due)
	for _, e := range r.m.pool.Engines() {
		switch st, _ := e.State(); st {
		case engine.Unhealthy:
			due[e] = e.StateSince().Add(r.m.cfg.RescheduleAfter)
		case engine.Healthy:
			r.m.removeStale(ctx, e)
		}
	}
	r.runDue(ctx, due)
}

// handle acts on an engine's state change; its other events do not
// concern the rescheduler.
func (r *Rescheduler) handle(ctx context.Context, ev engine.Event, due checks) {
	if !ev.IsState() {
		return
	}
	delete(due, ev.Engine)
	switch ev.New {
	case engine.Unhealthy:
		due[ev.Engine] = ev.Engine.StateSince().Add(r.m.cfg.RescheduleAfter)
	case engine.Healthy:
		r.m.removeStale(ctx, ev.Engine)
	}
}

// arm sets timer to the earliest check (stopped when there is none).
func (r *Rescheduler) arm(timer *time.Timer, due checks) {
	if len(due) == 0 {
		timer.Stop()
		return
	}
	var next time.Time
	for _, at := range due {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	timer.Reset(max(next.Sub(r.Now()), 0))
}

// runDue reschedules the containers of every engine whose check is due
// and that is still down and still in the pool.
func (r *Rescheduler) runDue(ctx context.Context, due checks) {
	now := r.Now()
	for e, at := range due {
		if now.Before(at) {
			continue
		}
		delete(due, e)
		if st, _ := e.State(); st != engine.Unhealthy || !r.inPool(e) {
			continue
		}
		if since := e.StateSince(); now.Sub(since) < r.m.cfg.RescheduleAfter {
			due[e] = since.Add(r.m.cfg.RescheduleAfter) // down again since the check was set
			continue
		}
		for _, c := range e.Containers() {
			if WantsReschedule(c.Labels) {
				r.m.reschedule(ctx, e, c)
			}
		}
	}
}

func (r *Rescheduler) inPool(e *engine.Engine) bool {
	for _, o := range r.m.pool.Engines() {
		if o == e {
			return true
		}
	}
	return false
}

// reschedule recreates c (on the lost engine e) on another node, under its name.
func (m *Manager) reschedule(ctx context.Context, e *engine.Engine, c *engine.Container) {
	name := c.Name()
	log := m.log.With("container", name, "id", c.ID[:12], "from", e.Name())
	if len(c.Spec) == 0 {
		log.Warn("cannot reschedule: its create spec is unknown")
		return
	}
	// Drop the lost copy from the view first, so the name is free and no
	// lookup finds two containers; if the node returns, removeStale deletes it.
	e.ForgetContainer(c.ID)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ne, cr, err := m.createFromSpec(ctx, name, c.Spec)
	if err != nil {
		log.Error("reschedule failed", "error", err)
		return
	}
	if c.State == "running" || c.State == "restarting" {
		if err := ne.Start(ctx, cr.ID); err != nil {
			log.Error("rescheduled container did not start", "node", ne.Name(), "error", err)
		}
		_ = ne.RefreshContainer(ctx, cr.ID)
	}
	log.Info("container rescheduled", "to", ne.Name(), "new_id", cr.ID[:12])
}

// removeStale deletes, on an engine that came back, the old copies of
// containers that were rescheduled elsewhere while it was down, so two
// never run.
func (m *Manager) removeStale(ctx context.Context, e *engine.Engine) {
	for _, c := range e.Containers() {
		if !WantsReschedule(c.Labels) || c.Name() == "" {
			continue
		}
		if !m.nameElsewhere(e, c.Name()) {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := e.Remove(rctx, c.ID, engine.RemoveOptions{Force: true})
		if err == nil || errors.Is(err, engine.ErrNotFound) {
			e.ForgetContainer(c.ID)
			m.log.Info("removed stale copy of a rescheduled container", "container", c.Name(), "node", e.Name(), "id", c.ID[:12])
		}
		cancel()
	}
}

// nameElsewhere says whether a healthy engine other than e has a container called name.
func (m *Manager) nameElsewhere(e *engine.Engine, name string) bool {
	for _, o := range m.pool.Engines() {
		if o == e || !o.Healthy() {
			continue
		}
		for _, c := range o.Containers() {
			if c.Name() == name {
				return true
			}
		}
	}
	return false
}
