package manager

import (
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/events"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
)

// eventFilter is a `docker events` filter, applied in shoal to every
// client's copy of the events (dockerd's rules: values of one key are
// alternatives, keys must all match, a key not given matches anything).
type eventFilter map[string][]string

// eventFilterKeys are the keys dockerd accepts; node is shoal's node (name,
// ID or ID prefix, address) rather than a swarm node.
var eventFilterKeys = map[string]bool{
	"config": true, "container": true, "daemon": true, "event": true, "image": true,
	"label": true, "network": true, "node": true, "plugin": true, "scope": true,
	"secret": true, "service": true, "type": true, "volume": true,
}

func newEventFilter(f backend.Filters) (eventFilter, error) {
	for k := range f {
		if !eventFilterKeys[k] {
			return nil, errdefs.ErrInvalidArgument.WithMessage("invalid filter '" + k + "'")
		}
	}
	return eventFilter(f), nil
}

// match says whether event m of engine e passes the filter.
func (f eventFilter) match(m events.Message, e *engine.Engine) bool {
	if !f.exact("type", string(m.Type)) || !f.matchEvent(string(m.Action)) || !f.exact("scope", m.Scope) {
		return false
	}
	for _, k := range []string{"container", "daemon", "network", "volume", "plugin", "service", "secret", "config"} {
		if !f.fuzzyName(k, m) {
			return false
		}
	}
	return f.matchImage(m) && f.matchNode(e) && allOf(f["label"], func(l string) bool {
		k, v, withValue := strings.Cut(l, "=")
		got, ok := m.Actor.Attributes[k]
		return ok && (!withValue || got == v)
	})
}

// exact: the value is one of the key's.
func (f eventFilter) exact(key, v string) bool {
	vals, set := f[key]
	return !set || anyOf(vals, func(x string) bool { return x == v })
}

// fuzzy: the value is one of the key's or starts with one (ID prefixes).
func (f eventFilter) fuzzy(key, v string) bool {
	vals, set := f[key]
	return !set || anyOf(vals, func(x string) bool { return x == v || strings.HasPrefix(v, x) })
}

// fuzzyName: the actor's ID or name matches the key (container=web,
// network=<id prefix>, ...): an event of another kind never does.
func (f eventFilter) fuzzyName(key string, m events.Message) bool {
	if _, set := f[key]; !set {
		return true
	}
	return f.fuzzy(key, m.Actor.ID) && m.Actor.ID != "" || f.fuzzy(key, m.Actor.Attributes["name"]) && m.Actor.Attributes["name"] != ""
}

// matchEvent: actions such as "exec_start: sh -c ..." or "health_status:
// healthy" also match their first word.
func (f eventFilter) matchEvent(action string) bool {
	head, _, _ := strings.Cut(action, ":")
	return f.exact("event", action) || f.exact("event", head)
}

// matchImage: an image event's ID or name, or a container's image, with or
// without its tag.
func (f eventFilter) matchImage(m events.Message) bool {
	if _, set := f["image"]; !set {
		return true
	}
	name := m.Actor.Attributes["image"]
	if m.Type == events.ImageEventType {
		name = m.Actor.Attributes["name"]
	}
	for _, v := range []string{m.Actor.ID, name, stripTag(m.Actor.ID), stripTag(name)} {
		if v != "" && f.exact("image", v) {
			return true
		}
	}
	return false
}

// stripTag drops an image reference's tag or digest ("busybox:1" → "busybox").
func stripTag(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}

// matchNode: the event comes from the named shoal node.
func (f eventFilter) matchNode(e *engine.Engine) bool {
	vals, set := f["node"]
	if !set {
		return true
	}
	if e == nil {
		return false
	}
	return anyOf(vals, func(v string) bool {
		return v == e.Name() || v == e.Addr || v != "" && strings.HasPrefix(e.ID, v)
	})
}
