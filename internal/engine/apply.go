package engine

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// maxApplyBatch bounds how many queued events one pass applies together.
const maxApplyBatch = 256

// applyEvents decodes first and the events already queued behind it on
// the engine's stream and applies them as one batch, then publishes them
// all, in the engine's order, on the bus; it reports whether networks or
// volumes changed, and an event that does not decode (after applying
// those before it).
//
// Each container event used to cost its own refresh (a filtered list and
// an inspect) before the next event was read: under a churn of a thousand
// events a second an engine that fell behind only fell further behind.
// A batch refreshes each container once, however many of its events it
// holds (create, start, die, stop...), drops without asking the engine
// those it ends with destroy, and refreshes distinct containers a few at
// a time. The refresh that follows the last event of a container sees at
// least the state that event announced, so consumers, who read the bus
// after the batch applied, still find the cache as new as each event they
// read (or newer, as they always could).
func (e *Engine) applyEvents(ctx context.Context, first json.RawMessage, more <-chan json.RawMessage) (bool, error) {
	raws := []json.RawMessage{first}
drain:
	for len(raws) < maxApplyBatch {
		select {
		case raw := <-more:
			raws = append(raws, raw)
		default:
			break drain
		}
	}
	if q := e.queued.Load(); q != nil {
		// Lag: read, not applied until this returns (the stream's
		// counter: a session applies only its own stream's events).
		defer q.Add(-int64(len(raws)))
	}
	batch := make([]Event, 0, len(raws))
	var bad error
	for _, raw := range raws {
		ev, err := decodeEvent(raw)
		if err != nil {
			bad = err
			break
		}
		batch = append(batch, ev)
	}
	if len(batch) == 0 {
		return false, bad
	}
	msgs := make([]events.Message, len(batch))
	for i, ev := range batch {
		msgs[i] = ev.Message
	}
	nv := e.applyAll(ctx, msgs)
	if e.opts.bus != nil {
		now := time.Now()
		for i := range batch {
			batch[i].Engine, batch[i].Time = e, now
		}
		e.opts.bus.publishAll(batch)
	}
	return nv, bad
}

// refreshPlan is what a batch of events asks of the cache for one container.
type refreshPlan struct {
	forget     bool // its last event was destroy
	createOnly bool // its only refreshing events were create
}

// applyAll updates the cache for a batch of one engine's events, in
// order; it reports whether networks or volumes changed.
func (e *Engine) applyAll(ctx context.Context, msgs []events.Message) bool {
	b := planOf(msgs)
	e.refreshAll(ctx, b.order, b.containers)
	if b.images {
		rctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
		_ = e.RefreshImages(rctx)
		cancel()
	}
	if b.members {
		e.applyMemberEvent(ctx) // a member's leaves and their images (member.go)
	}
	return b.nv
}

// batchPlan is what a batch of events asks of the cache.
type batchPlan struct {
	containers      map[string]*refreshPlan
	order           []string // containers in the order of their first event
	images, members bool     // refresh the images; a member's view
	nv              bool     // networks or volumes changed
}

func planOf(msgs []events.Message) batchPlan {
	b := batchPlan{containers: map[string]*refreshPlan{}}
	for _, m := range msgs {
		switch m.Type {
		case events.ContainerEventType:
			action := string(m.Action)
			if !refreshes(action) {
				continue
			}
			p, ok := b.containers[m.Actor.ID]
			if !ok {
				p = &refreshPlan{createOnly: true}
				b.containers[m.Actor.ID] = p
				b.order = append(b.order, m.Actor.ID)
			}
			p.forget = action == "destroy"
			p.createOnly = p.createOnly && action == "create"
		case events.ImageEventType:
			b.images, b.members = true, true
		case events.NetworkEventType, events.VolumeEventType:
			b.nv = true
		case "node": // a member shoal's inner node came or went
			b.members = true
		}
	}
	return b
}

// refreshes says whether a container event changes what the cache holds
// (the others are about a container's streams and files).
func refreshes(action string) bool {
	switch action {
	case "attach", "detach", "resize", "top", "copy", "archive-path", "extract-to-dir", "export", "commit":
		return false
	}
	return !strings.HasPrefix(action, "exec_")
}

// refreshAll carries out the plans, a few refreshes at a time.
func (e *Engine) refreshAll(ctx context.Context, order []string, plans map[string]*refreshPlan) {
	sem := make(chan struct{}, e.inspectsAtOnce())
	var wg sync.WaitGroup
	for _, id := range order {
		p := plans[id]
		if p.forget {
			e.ForgetContainer(id)
			continue
		}
		if len(order) == 1 {
			e.refreshOne(ctx, id, p)
			return
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			e.refreshOne(ctx, id, p)
		}()
	}
	wg.Wait()
}

func (e *Engine) refreshOne(ctx context.Context, id string, p *refreshPlan) {
	wait := e.opts.Timeout
	if p.createOnly {
		wait = min(wait, createRefreshWait)
	}
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	e.refreshing.Add(1) // Lag: Behind until it, or the refresh it hands on, ends
	defer e.refreshing.Add(-1)
	err := e.refreshContainer(rctx, id)
	if err != nil && p.createOnly && rctx.Err() != nil && ctx.Err() == nil {
		// The create's refresh gave up early so as not to hold the events
		// behind it; it finishes aside. Waiting for the start event to
		// cache the container left it out of ps for as long as the start
		// took to come (seconds under churn), or for ever if none came.
		// One at a time per engine: on an overloaded manager more of them
		// would only add connections and load; the next event of the
		// container refreshes it anyway.
		if e.late.CompareAndSwap(false, true) {
			e.refreshing.Add(1) // before this one's ends
			go e.refreshLate(ctx, id)
			return
		}
	}
	if err != nil {
		e.mu.Lock()
		e.refreshFailed() // Lag: the cache may lack it until a reload
		e.mu.Unlock()
		e.opts.Logger.Debug("refresh container", "engine", e.Addr, "id", id, "error", err)
	}
}

// refreshLate refreshes a container outside the event loop, within the
// whole Timeout. A refresh for a later event may have run meanwhile:
// RefreshContainer's tickets keep whichever started last.
func (e *Engine) refreshLate(ctx context.Context, id string) {
	defer e.late.Store(false)
	defer e.refreshing.Add(-1) // counted by refreshOne
	rctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	if err := e.refreshNoting(rctx, id); err != nil {
		e.opts.Logger.Debug("refresh container", "engine", e.Addr, "id", id, "error", err)
	}
}
