package engine

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/docker/go-units"
)

// Container is one cached container: what filters, placement and info need,
// decoded, plus the engine's own list entry kept as JSON, ready to serve.
// Keeping the JSON is what makes `docker ps` over tens of thousands of
// containers cheap: nothing is re-encoded per request.
type Container struct {
	ID      string
	Names   []string // as the engine has them ("/web")
	Image   string
	ImageID string
	Created int64 // unix seconds
	Labels  map[string]string
	State   string
	Status  string // the engine's words when it was listed
	Ports   []Port
	// Networks maps the networks the container is on to their IDs.
	Networks map[string]string
	Mounts   []Mount

	// From inspect.
	NanoCPUs              int64
	CPUShares             int64
	Memory                int64
	MemoryReservation     int64
	Env                   []string
	StartedAt, FinishedAt time.Time
	ExitCode              int
	HealthStatus          string
	PID                   int       // of its main process, while it runs
	Error                 string    // the engine's State.Error (why it failed to start)
	CreatedAt             time.Time // nanosecond precision, for ordering
	// Spec is the container's create spec ({Config..., "HostConfig": ...}),
	// kept only for the label keys given to Pool.KeepSpecs.
	Spec json.RawMessage

	// raw is the engine's list entry with Names as /<node>/<name> and
	// without Status, which ages: AppendJSON puts a fresh one in. It is
	// kept split (record.go): most of it is shared with other containers.
	raw entryJSON
}

// Port is a port of a container as the engine lists it.
type Port struct {
	IP          string
	PrivatePort uint16
	PublicPort  uint16
	Type        string
}

// Mount is a mount of a container as the engine lists it.
type Mount struct {
	Name, Source, Destination string
}

type leanSummary struct {
	ID              string `json:"Id"`
	Names           []string
	Image           string
	ImageID         string
	Created         int64
	Labels          map[string]string
	State           string
	Status          string
	Ports           []Port
	NetworkSettings *struct {
		Networks map[string]struct{ NetworkID string }
	}
	Mounts []Mount
}

// DecodeContainers reads an engine's /containers/json answer; node is the
// engine's name, put in front of each name in the kept JSON. The strings
// and maps that repeat from one container to the next are shared.
func DecodeContainers(raw []byte, node string) ([]*Container, error) {
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("decoding container list: %w", err)
	}
	// One allocation for the records and one for their own JSON values:
	// fewer, larger objects than one per container (less overhead and
	// fragmentation; the records of a list are replaced together).
	out := make([]*Container, len(entries))
	recs := make([]Container, len(entries))
	ends := make([]int, len(entries))
	var sh sharer
	var sp splitter
	for i, ent := range entries {
		var l leanSummary
		if err := json.Unmarshal(ent, &l); err != nil {
			return nil, fmt.Errorf("decoding container list: %w", err)
		}
		c := &recs[i]
		*c = Container{ID: l.ID, Names: l.Names, Image: intern(l.Image), ImageID: intern(l.ImageID), Created: l.Created,
			Labels: sh.labels(l.Labels), State: intern(l.State), Status: intern(l.Status), Ports: sh.ports(l.Ports), Mounts: sh.mounts(l.Mounts)}
		if l.NetworkSettings != nil && len(l.NetworkSettings.Networks) > 0 {
			nets := make(map[string]string, len(l.NetworkSettings.Networks))
			for name, n := range l.NetworkSettings.Networks {
				nets[name] = n.NetworkID
			}
			c.Networks = sh.labels(nets)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(ent, &obj); err != nil {
			return nil, err
		}
		delete(obj, "Status")
		names := make([]string, len(l.Names))
		for i, n := range l.Names {
			names[i] = ParseNamePath(n).Under(node).String()
		}
		obj["Names"], _ = json.Marshal(names)
		b, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		if skel, ok := sp.split(b); ok {
			c.raw.skel = skel
		} else {
			sp.vals = append(sp.vals, b...) // kept whole
		}
		ends[i] = len(sp.vals)
		out[i] = c
	}
	vals, start := string(sp.vals), 0
	for i, c := range out {
		c.raw.vals, start = vals[start:ends[i]], ends[i]
	}
	return out, nil
}

// setState takes the state an inspect gave (when it gave one) over the
// list's: dockerd emits a container's die event, and answers its list,
// before its list view has the exit (the inspect waits for it), so a
// refresh on that event would keep a container that exited "running"
// until the next full refresh.
func (c *Container) setState(state string) {
	if state == "" || state == c.State {
		return
	}
	c.State = intern(state)
	if c.raw.empty() {
		return
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(c.raw.bytes(), &obj) != nil {
		return
	}
	obj["State"], _ = json.Marshal(state)
	if b, err := json.Marshal(obj); err == nil {
		c.raw = newEntryJSON(b)
	}
}

func (c *Container) copyInspect(prev *Container) {
	c.NanoCPUs, c.CPUShares, c.Memory, c.MemoryReservation, c.Env, c.Spec = prev.NanoCPUs, prev.CPUShares, prev.Memory, prev.MemoryReservation, prev.Env, prev.Spec
	c.StartedAt, c.FinishedAt, c.ExitCode, c.HealthStatus, c.CreatedAt = prev.StartedAt, prev.FinishedAt, prev.ExitCode, prev.HealthStatus, prev.CreatedAt
	c.PID, c.Error = prev.PID, prev.Error
}

// AppendJSON appends the container's list entry, with the given status
// (see StatusText), to buf.
func (c *Container) AppendJSON(buf []byte, status string) []byte {
	buf = append(buf, `{"Status":`...)
	buf = appendJSONString(buf, status)
	start := len(buf)
	buf = c.raw.appendTo(buf)
	switch {
	case len(buf)-start > 2:
		buf[start] = ',' // the entry's own '{'
	default:
		buf = append(buf[:start], '}')
	}
	return buf
}

// appendJSONString appends s as a JSON string; the plain ASCII that
// statuses are made of is copied as is.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b == '"' || b == '\\' || b >= 0x7f {
			q, _ := json.Marshal(s)
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// HasRaw says whether the container carries its engine JSON.
func (c *Container) HasRaw() bool { return !c.raw.empty() }

// StatusText is the human status ("Up 5 minutes", "Exited (0) 2 hours
// ago") as dockerd would word it at now; the cached one ages.
func (c *Container) StatusText(now time.Time) string {
	if c.StartedAt.IsZero() && c.State != "created" {
		return c.Status // not inspected: keep the engine's words
	}
	since := func(t time.Time) string { return units.HumanDuration(now.Sub(t)) }
	switch c.State {
	case "running":
		if c.HealthStatus != "" && c.HealthStatus != "none" {
			h := c.HealthStatus
			if h == "starting" {
				h = "health: starting"
			}
			return "Up " + since(c.StartedAt) + " (" + h + ")"
		}
		return "Up " + since(c.StartedAt)
	case "paused":
		return "Up " + since(c.StartedAt) + " (Paused)"
	case "restarting":
		return fmt.Sprintf("Restarting (%d) %s ago", c.ExitCode, since(c.FinishedAt))
	case "removing":
		return "Removal In Progress"
	case "dead":
		return "Dead"
	case "created":
		return "Created"
	}
	if c.FinishedAt.IsZero() {
		return c.Status
	}
	return fmt.Sprintf("Exited (%d) %s ago", c.ExitCode, since(c.FinishedAt))
}

// Name is the container's own name, without its node ("web" whether the
// engine lists it as /web or, being a shoal, as /node1/web).
func (c *Container) Name() string { return c.Path().Base() }
