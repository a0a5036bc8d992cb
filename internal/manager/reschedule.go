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

// rescheduleLoop moves the rescheduleable containers of nodes that stayed
// down for RescheduleAfter, and removes their stale copies when such a
// node comes back.
func (m *Manager) rescheduleLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.rescheduleOnce(ctx, time.Now())
		}
	}
}

func (m *Manager) rescheduleOnce(ctx context.Context, now time.Time) {
	if !m.isPrimary() {
		return // a replica leaves this to the primary, or both would recreate
	}
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
