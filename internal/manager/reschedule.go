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
type Rescheduler struct {
	m *Manager
	// Now is the clock a pass measures downtime with (time.Now by default).
	Now func() time.Time
	// Tick, if set, starts each pass instead of a one-second ticker.
	Tick <-chan time.Time
}

// Rescheduler returns the manager's rescheduling loop, to be run while
// this manager leads.
func (m *Manager) Rescheduler() *Rescheduler {
	return &Rescheduler{m: m, Now: time.Now}
}

// Run makes a pass at every tick until ctx ends.
func (r *Rescheduler) Run(ctx context.Context) error {
	tick := r.Tick
	if tick == nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			r.m.rescheduleOnce(ctx, r.Now())
		}
	}
}

func (m *Manager) rescheduleOnce(ctx context.Context, now time.Time) {
	for _, e := range m.pool.Engines() {
		st, _ := e.State()
		switch {
		case st == engine.Unhealthy && now.Sub(e.StateSince()) >= m.cfg.RescheduleAfter:
			for _, c := range e.Containers() {
				if WantsReschedule(c.Labels) {
					m.reschedule(ctx, e, c)
				}
			}
		case st == engine.Healthy:
			m.removeStale(ctx, e)
		}
	}
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
