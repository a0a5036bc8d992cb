package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/docker/go-units"
)

// Container is one cached container: what filters, placement and info need,
// decoded, plus the engine's own list entry kept as JSON, ready to serve.
// Keeping the JSON is what makes `docker ps` over tens of thousands of
// containers cheap: nothing is re-encoded per request.
//
// A manager holds hundreds of thousands of these (issue 16), so the record
// is kept small: times are unix nanoseconds (StartedAt and the others give
// them back as time.Time), what inspect says of resources and environment
// is one Inspected shared by every container that has the same, and the ID
// and names share the memory of the kept JSON.
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

	// From inspect. Never nil in a record the engine gave; shared: do not modify.
	*Inspected
	HealthStatus string
	ExitCode     int
	PID          int // of its main process, while it runs
	// started, finished and created are StartedAt, FinishedAt and
	// CreatedAt (nanosecond precision, for ordering) as unix nanoseconds,
	// 0 for the zero time.
	started, finished, created int64

	// raw is the engine's list entry with Names as /<node>/<name> and
	// without Status, which ages: AppendJSON puts a fresh one in. It is
	// kept split (record.go): most of it is shared with other containers.
	raw entryJSON
}

// Inspected is what an inspect of a container says of its resources, its
// environment and its spec: the same for most containers of an image or a
// service, so containers share one (internInspected).
type Inspected struct {
	NanoCPUs          int64
	CPUShares         int64
	Memory            int64
	MemoryReservation int64
	Env               []string
	Error             string // the engine's State.Error (why it failed to start)
	// Spec is the container's create spec ({Config..., "HostConfig": ...}),
	// kept only for the label keys given to Pool.KeepSpecs.
	Spec json.RawMessage
}

// notInspected is the Inspected of a container no inspect told of.
var notInspected = &Inspected{}

// StartedAt is when the container last started (zero if never).
func (c *Container) StartedAt() time.Time { return fromUnixNano(c.started) }

// FinishedAt is when the container last stopped (zero if never).
func (c *Container) FinishedAt() time.Time { return fromUnixNano(c.finished) }

// CreatedAt is when the container was created, to the nanosecond (zero
// if it was not inspected: Created then has the second).
func (c *Container) CreatedAt() time.Time { return fromUnixNano(c.created) }

// CreatedNanos is when the container was created in unix nanoseconds: to
// the nanosecond if it was inspected, else to the second (Created).
func (c *Container) CreatedNanos() int64 {
	if c.created != 0 {
		return c.created
	}
	return c.Created * 1e9
}

// SetTimes sets StartedAt, FinishedAt and CreatedAt.
func (c *Container) SetTimes(started, finished, created time.Time) {
	c.started, c.finished, c.created = unixNano(started), unixNano(finished), unixNano(created)
}

// unixNano is t in unix nanoseconds, 0 for the zero time; times out of
// int64's range (years before 1678 or after 2262) are clamped to it.
func unixNano(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minTime):
		return minTime.UnixNano()
	case t.After(maxTime):
		return maxTime.UnixNano()
	}
	if n := t.UnixNano(); n != 0 {
		return n
	}
	return 1 // the unix epoch itself, which 0 would make the zero time
}

var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
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
	// The entries and their values are slices of raw (rawRef), not copies:
	// copying them made a third of what loading an engine allocated.
	var entries []rawRef
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("decoding container list: %w", err)
	}
	// One allocation for the records and one for their own JSON values:
	// fewer, larger objects than one per container (less overhead and
	// fragmentation; the records of a list are replaced together).
	out := make([]*Container, len(entries))
	recs := make([]Container, len(entries))
	ends := make([]int, len(entries))
	var names []string                  // every container's, one allocation
	counts := make([]int, len(entries)) // of names; -1: none (nil)
	var sh sharer
	var sp splitter
	obj := make(map[string]rawRef) // one entry's top-level values, reused
	var out1 bytes.Buffer          // one entry's JSON, reused
	enc := json.NewEncoder(&out1)  // escapes as json.Marshal does
	for i, ent := range entries {
		var l leanSummary
		if err := json.Unmarshal(ent, &l); err != nil {
			return nil, fmt.Errorf("decoding container list: %w", err)
		}
		c := &recs[i]
		*c = Container{ID: l.ID, Image: intern(l.Image), ImageID: intern(l.ImageID), Created: l.Created,
			Labels: sh.labels(l.Labels), State: intern(l.State), Status: intern(l.Status), Ports: sh.ports(l.Ports), Mounts: sh.mounts(l.Mounts),
			Inspected: notInspected}
		counts[i] = -1
		if l.Names != nil {
			names = append(names, l.Names...)
			counts[i] = len(l.Names)
		}
		if l.NetworkSettings != nil && len(l.NetworkSettings.Networks) > 0 {
			nets := make(map[string]string, len(l.NetworkSettings.Networks))
			for name, n := range l.NetworkSettings.Networks {
				nets[name] = n.NetworkID
			}
			c.Networks = sh.labels(nets)
		}
		clear(obj)
		if err := json.Unmarshal(ent, &obj); err != nil {
			return nil, err
		}
		delete(obj, "Status")
		under := make([]string, len(l.Names))
		for i, n := range l.Names {
			under[i] = ParseNamePath(n).Under(node).String()
		}
		obj["Names"], _ = json.Marshal(under)
		out1.Reset()
		if err := enc.Encode(obj); err != nil {
			return nil, err
		}
		b := bytes.TrimSuffix(out1.Bytes(), []byte("\n"))
		if skel, ok := sp.split(b); ok {
			c.raw.skel = skel
		} else {
			sp.vals = append(sp.vals, b...) // kept whole
		}
		ends[i] = len(sp.vals)
		out[i] = c
	}
	vals, start, next := string(sp.vals), 0, 0
	for i, c := range out {
		c.raw.vals, start = vals[start:ends[i]], ends[i]
		// The ID and names are in the entry's own values too (the names
		// with the node in front): the record's share their bytes.
		c.ID = within(c.raw.vals, c.ID)
		if k := counts[i]; k >= 0 {
			c.Names = names[next : next+k : next+k]
			for j, n := range c.Names {
				c.Names[j] = within(c.raw.vals, n)
			}
			next += k
		}
	}
	return out, nil
}

// rawRef is a JSON value kept as a slice of the input it was decoded
// from, which must outlive it (json.RawMessage copies the value).
type rawRef []byte

func (r *rawRef) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

func (r rawRef) MarshalJSON() ([]byte, error) { return r, nil }

// within returns s, sharing hay's bytes if hay holds them.
func within(hay, s string) string {
	if i := strings.Index(hay, s); i >= 0 && s != "" {
		return hay[i : i+len(s)]
	}
	return s
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

// CopyInspect takes what prev's inspect said (a listed container that
// was not inspected again).
func (c *Container) CopyInspect(prev *Container) {
	c.Inspected, c.HealthStatus, c.ExitCode, c.PID = prev.Inspected, prev.HealthStatus, prev.ExitCode, prev.PID
	c.started, c.finished, c.created = prev.started, prev.finished, prev.created
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
	if c.started == 0 && c.State != "created" {
		return c.Status // not inspected: keep the engine's words
	}
	since := func(n int64) string { return units.HumanDuration(now.Sub(fromUnixNano(n))) }
	switch c.State {
	case "running":
		if c.HealthStatus != "" && c.HealthStatus != "none" {
			h := c.HealthStatus
			if h == "starting" {
				h = "health: starting"
			}
			return "Up " + since(c.started) + " (" + h + ")"
		}
		return "Up " + since(c.started)
	case "paused":
		return "Up " + since(c.started) + " (Paused)"
	case "restarting":
		return fmt.Sprintf("Restarting (%d) %s ago", c.ExitCode, since(c.finished))
	case "removing":
		return "Removal In Progress"
	case "dead":
		return "Dead"
	case "created":
		return "Created"
	}
	if c.finished == 0 {
		return c.Status
	}
	return fmt.Sprintf("Exited (%d) %s ago", c.ExitCode, since(c.finished))
}

// Name is the container's own name, without its node ("web" whether the
// engine lists it as /web or, being a shoal, as /node1/web).
//
// It is c.Path().Base() without allocating: the cache's name index
// compares names on every lookup.
func (c *Container) Name() string {
	best, fewest := "", 0
	for _, n := range c.Names {
		segments, last := 0, ""
		for n != "" {
			seg, rest, _ := strings.Cut(n, "/")
			if seg != "" {
				segments, last = segments+1, seg
			}
			n = rest
		}
		if segments > 0 && (fewest == 0 || segments < fewest) {
			best, fewest = last, segments
		}
	}
	return best
}
