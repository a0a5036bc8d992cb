package manager

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
)

// shoal's own events, as classic Swarm named them.
const (
	EventNodeConnect    = "engine_connect"
	EventNodeDisconnect = "engine_disconnect"
	EventNodeReconnect  = "engine_reconnect"
)

type hub struct {
	mu   sync.Mutex
	subs map[chan map[string]any]bool
}

func (h *hub) subscribe() (chan map[string]any, func()) {
	ch := make(chan map[string]any, 64)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[chan map[string]any]bool{}
	}
	h.subs[ch] = true
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

func (h *hub) publish(ev map[string]any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default: // a slow reader loses shoal events rather than stall the pool
		}
	}
}

// EngineStateChanged is the pool's OnState hook: it turns health changes
// into shoal events for `docker events`.
func (m *Manager) EngineStateChanged(e *engine.Engine, old, new engine.State) {
	action := ""
	switch {
	case new == engine.Healthy && old == engine.Pending:
		action = EventNodeConnect
	case new == engine.Healthy:
		action = EventNodeReconnect
	case new == engine.Unhealthy:
		action = EventNodeDisconnect
	default:
		return
	}
	now := time.Now()
	attrs := nodeAttrs(e)
	attrs["name"] = e.Name()
	m.events.publish(map[string]any{
		"Type": "node", "Action": action, "status": action, "id": e.ID,
		"Actor":    map[string]any{"ID": e.ID, "Attributes": attrs},
		"scope":    "local",
		"time":     now.Unix(),
		"timeNano": now.UnixNano(),
		"engine":   e,
	})
}

func nodeAttrs(e *engine.Engine) map[string]any {
	return map[string]any{"node.name": e.Name(), "node.id": e.ID, "node.addr": e.Addr, "node.ip": e.IP}
}

// Events streams the events of every healthy engine as one, each tagged
// with its node, plus shoal's node events, until ctx ends or, with
// until, every engine's stream has ended.
func (m *Manager) Events(ctx context.Context, opts backend.EventsOptions, w io.Writer) error {
	version, q := opts.Version, opts.Query()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wmu sync.Mutex
	write := func(ev map[string]any) bool {
		b, err := json.Marshal(ev)
		if err != nil {
			return true
		}
		wmu.Lock()
		defer wmu.Unlock()
		_, err = w.Write(append(b, '\n'))
		return err == nil
	}
	// Headers go out at once: clients wait for them before anything happens.
	wmu.Lock()
	_, _ = w.Write(nil)
	wmu.Unlock()

	subs, unsubscribe := m.events.subscribe()
	defer unsubscribe()
	until := q.Get("until")
	var wg sync.WaitGroup
	streaming := map[*engine.Engine]bool{}
	start := func(e *engine.Engine, q url.Values) {
		if streaming[e] {
			return
		}
		streaming[e] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.engineEvents(ctx, e, version, q, write, cancel)
		}()
	}
	for _, e := range m.pool.Healthy() {
		start(e, q)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if until != "" {
		select {
		case <-done:
		case <-ctx.Done():
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-subs:
			e, _ := ev["engine"].(*engine.Engine)
			delete(ev, "engine")
			if !eventFilterMatches(opts.Filters, ev) {
				continue
			}
			if !write(ev) {
				return nil
			}
			if e != nil && ev["Action"] != EventNodeDisconnect {
				// A node that (re)joined: follow its events from now on.
				nq := url.Values{}
				for k, v := range q {
					nq[k] = v
				}
				nq.Set("since", strconv.FormatInt(time.Now().Unix(), 10))
				delete(streaming, e)
				start(e, nq)
			}
		}
	}
}

// eventFilterMatches applies the type filter to shoal's own events.
func eventFilterMatches(f backend.Filters, ev map[string]any) bool {
	if len(f["type"]) == 0 {
		return true
	}
	return anyOf(f["type"], func(t string) bool { return t == ev["Type"] })
}

func (m *Manager) engineEvents(ctx context.Context, e *engine.Engine, version string, q url.Values, write func(map[string]any) bool, stop func()) {
	resp, err := e.Client().Raw(ctx, "GET", e.APIPath(version, "/events"), q, nil, nil)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var ev map[string]any
		if err := dec.Decode(&ev); err != nil {
			return
		}
		actor, _ := ev["Actor"].(map[string]any)
		if actor == nil {
			actor = map[string]any{}
			ev["Actor"] = actor
		}
		attrs, _ := actor["Attributes"].(map[string]any)
		if attrs == nil {
			attrs = map[string]any{}
			actor["Attributes"] = attrs
		}
		for k, v := range nodeAttrs(e) {
			attrs[k] = v
		}
		if !write(ev) {
			stop()
			return
		}
	}
}
