package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/events"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
)

var timestampRe = regexp.MustCompile(`^-?[0-9]+(\.[0-9]{1,9})?$`)

// shoal's own events, as classic Swarm named them.
const (
	EventNodeConnect    = "engine_connect"
	EventNodeDisconnect = "engine_disconnect"
	EventNodeReconnect  = "engine_reconnect"
)

// eventsRequest is a parsed `docker events` request.
type eventsRequest struct {
	since, until time.Time
	filter       eventFilter
}

// eventsRequestOf checks what the edge could not (the filter keys events
// accept) and reads the timestamps, already checked there.
func eventsRequestOf(opts backend.EventsOptions) (*eventsRequest, error) {
	req := &eventsRequest{}
	for k, v := range map[string]string{"since": opts.Since, "until": opts.Until} {
		if v == "" {
			continue
		}
		if !timestampRe.MatchString(v) {
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid value for %s: %q is not a unix timestamp (seconds[.nanoseconds])", k, v))
		}
		if k == "since" {
			req.since = parseTimestamp(v)
		} else {
			req.until = parseTimestamp(v)
		}
	}
	f, err := newEventFilter(opts.Filters)
	if err != nil {
		return nil, err
	}
	req.filter = f
	return req, nil
}

// parseTimestamp reads seconds[.nanoseconds] (already validated).
func parseTimestamp(v string) time.Time {
	secs, frac, _ := strings.Cut(v, ".")
	s, _ := strconv.ParseInt(secs, 10, 64)
	var ns int64
	if frac != "" {
		ns, _ = strconv.ParseInt((frac + "000000000")[:9], 10, 64)
	}
	if strings.HasPrefix(secs, "-") {
		ns = -ns
	}
	return time.Unix(s, ns)
}

// Events streams the events of every engine as one, each tagged with its
// node, plus shoal's node events, until ctx ends or until passes. The
// engines' JSON is kept as they sent it whatever the client's version.
//
// Every client reads the pool's event bus, which is fed by the one stream
// each engine's loop already follows, and filters in shoal: a thousand
// clients cost the engines nothing more. Only the past (since, or until,
// up to now) is asked of each healthy engine; the live part comes from the
// bus, subscribed before the past is asked so there is no gap, and an
// engine event at or before that instant is skipped so there is no
// duplicate (this assumes the engines' clocks agree with the manager's,
// as dockerd's own since/until do).
func (m *Manager) Events(ctx context.Context, opts backend.EventsOptions, w io.Writer) error {
	req, err := eventsRequestOf(opts)
	if err != nil {
		return err
	}
	return m.streamEvents(ctx, req, w)
}

func (m *Manager) streamEvents(ctx context.Context, req *eventsRequest, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub := m.pool.Subscribe(ctx)
	cut := time.Now()
	out := &eventWriter{w: w, stop: cancel}
	out.headers()

	history := !req.since.IsZero() || !req.until.IsZero()
	if history && (req.since.IsZero() || req.since.Before(cut)) {
		end := cut
		if !req.until.IsZero() && req.until.Before(cut) {
			end = req.until
		}
		m.eventHistory(ctx, req, end, out)
	}
	if !req.until.IsZero() && !req.until.After(cut) {
		return nil
	}
	var untilC <-chan time.Time
	if !req.until.IsZero() {
		t := time.NewTimer(req.until.Sub(time.Now()))
		defer t.Stop()
		untilC = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-untilC:
			return nil
		case ev, ok := <-sub.C():
			if !ok {
				if errors.Is(sub.Err(), engine.ErrSubscriberTooSlow) {
					m.log.Warn("events client too slow: its stream ends rather than lose events", "error", sub.Err())
				}
				return nil
			}
			if history && !ev.IsState() && ev.Message.TimeNano <= cut.UnixNano() {
				continue // already sent as history
			}
			if !m.writeBusEvent(ev, req.filter, out) {
				return nil
			}
		}
	}
}

// eventWriter writes whole JSON lines from several goroutines.
type eventWriter struct {
	mu   sync.Mutex
	w    io.Writer
	stop func()
}

// headers sends the response headers at once: clients wait for them
// before anything happens.
func (o *eventWriter) headers() {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, _ = o.w.Write(nil)
}

// write sends one event; false (and the stream stopped) once the client is gone.
func (o *eventWriter) write(ev map[string]any) bool { return o.writeLine(eventLine(ev)) }

// writeLine sends one event already encoded (its line may be shared:
// it is not modified).
func (o *eventWriter) writeLine(line []byte) bool {
	if line == nil {
		return true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, err := o.w.Write(line); err != nil {
		o.stop()
		return false
	}
	return true
}

// writeBusEvent sends one event of the bus if it passes the filter.
func (m *Manager) writeBusEvent(ev engine.Event, f eventFilter, out *eventWriter) bool {
	if ev.IsState() {
		msg, ok := nodeEvent(ev)
		if !ok || !f.match(nodeMessage(msg), ev.Engine) {
			return true
		}
		return out.write(msg)
	}
	if !f.match(ev.Message, ev.Engine) {
		return true
	}
	line := ev.Shared(func() any { return eventLine(engineEventJSON(ev.Raw, ev.Engine)) }).([]byte)
	return out.writeLine(line)
}

// eventLine is an event as a JSON line (nil if it cannot be encoded).
func eventLine(ev map[string]any) []byte {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil
	}
	return append(b, '\n')
}

// nodeEvent turns an engine state change into shoal's node event.
func nodeEvent(ev engine.Event) (map[string]any, bool) {
	action := ""
	switch {
	case ev.New == engine.Healthy && ev.Old == engine.Pending:
		action = EventNodeConnect
	case ev.New == engine.Healthy:
		action = EventNodeReconnect
	case ev.New == engine.Unhealthy:
		action = EventNodeDisconnect
	default:
		return nil, false
	}
	e := ev.Engine
	attrs := nodeAttrs(e)
	attrs["name"] = e.Name()
	return map[string]any{
		"Type": "node", "Action": action, "status": action, "id": e.ID,
		"Actor":    map[string]any{"ID": e.ID, "Attributes": attrs},
		"scope":    "local",
		"time":     ev.Time.Unix(),
		"timeNano": ev.Time.UnixNano(),
	}, true
}

// nodeMessage is a node event as the filter sees it.
func nodeMessage(ev map[string]any) events.Message {
	actor := ev["Actor"].(map[string]any)
	attrs := map[string]string{}
	for k, v := range actor["Attributes"].(map[string]any) {
		attrs[k], _ = v.(string)
	}
	return events.Message{Type: "node", Action: events.Action(ev["Action"].(string)), Scope: "local",
		Actor: events.Actor{ID: actor["ID"].(string), Attributes: attrs}}
}

func nodeAttrs(e *engine.Engine) map[string]any {
	return map[string]any{"node.name": e.Name(), "node.id": e.ID, "node.addr": e.Addr, "node.ip": e.IP}
}

// engineEventJSON is an engine's event as it sent it, with the node.*
// attributes added. Bus events are encoded once for all clients (Event.Shared).
func engineEventJSON(raw json.RawMessage, e *engine.Engine) map[string]any {
	var ev map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // timeNano does not fit a float64
	if dec.Decode(&ev) != nil || ev == nil {
		ev = map[string]any{}
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
	inner, _ := attrs["node.name"].(string)
	innerID, _ := attrs["node.id"].(string)
	for k, v := range nodeAttrs(e) {
		if inner != "" && (k == "node.addr" || k == "node.ip") {
			continue // a member's event: the address of its inner node
		}
		attrs[k] = v
	}
	if inner != "" {
		// A member's event already names its inner node: the name stacks
		// ("siteA/e1"), as its containers' names do.
		attrs["node.name"] = e.Name() + "/" + inner
		if innerID != "" {
			attrs["node.id"] = e.ID + "/" + innerID
		}
		if ev["Type"] == "node" {
			if n, ok := attrs["name"].(string); ok {
				attrs["name"] = e.Name() + "/" + n
			}
		}
	}
	return ev
}

// eventHistory sends what every healthy engine recorded from req.since up
// to end, and returns when all have answered.
func (m *Manager) eventHistory(ctx context.Context, req *eventsRequest, end time.Time, out *eventWriter) {
	var wg sync.WaitGroup
	for _, e := range m.pool.Healthy() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := m.ask(ctx, e, writePatience, func(ctx context.Context) error {
				return e.Events(ctx, req.since, end, func(ev engine.Event) bool {
					return !req.filter.match(ev.Message, e) || out.write(engineEventJSON(ev.Raw, e))
				})
			})
			if err != nil {
				m.log.Debug("event history", "node", e.Name(), "error", err)
			}
		}()
	}
	wg.Wait()
}
