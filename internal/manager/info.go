package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
)

// Info reports the cluster as one big engine: summed CPUs, memory,
// containers and images, with a warning line per node that is not healthy.
// Fields shoal does not compute (registry config, runtimes, cgroup and
// kernel features...) are a healthy engine's, as it words them.
func (m *Manager) Info(ctx context.Context) (json.RawMessage, error) {
	info, err := m.clusterInfo(ctx)
	if err != nil {
		return nil, err
	}
	// The node lines are kept encoded per engine: with a thousand nodes
	// they are most of the answer, and re-encoding them per call is what
	// would make info slow.
	status := info.DriverStatus
	info.DriverStatus = nil
	b, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	var ours map[string]json.RawMessage
	if err := json.Unmarshal(b, &ours); err != nil {
		return nil, err
	}
	ds := make([]byte, 0, 64<<10)
	ds = append(ds, '[')
	head, _ := json.Marshal(status)
	ds = append(ds, head[1:len(head)-1]...)
	for _, e := range m.pool.Engines() {
		if frag := m.engineSummary(e).statusJSON; len(frag) > 0 {
			if len(ds) > 1 {
				ds = append(ds, ',')
			}
			ds = append(ds, frag...)
		}
	}
	ds = append(ds, ']')
	ours["DriverStatus"] = ds
	var base map[string]json.RawMessage
	for _, e := range m.pool.Healthy() {
		if raw := e.RawInfo(); len(raw) > 0 && json.Unmarshal(raw, &base) == nil {
			break
		}
	}
	if base == nil {
		return joinObject(ours), nil
	}
	for _, k := range []string{"ID", "Name", "ServerVersion", "Containers", "ContainersRunning", "ContainersPaused",
		"ContainersStopped", "Images", "NCPU", "MemTotal", "Driver", "DriverStatus", "OperatingSystem", "OSType",
		"Architecture", "KernelVersion", "Labels", "Warnings", "Swarm", "SystemTime", "DockerRootDir", "Plugins"} {
		if v, ok := ours[k]; ok {
			base[k] = v
		}
	}
	return joinObject(base), nil
}

// joinObject writes a JSON object from already-encoded values, in key
// order, without the re-validation encoding/json would do.
func joinObject(fields map[string]json.RawMessage) json.RawMessage {
	keys := make([]string, 0, len(fields))
	n := 2
	for k, v := range fields {
		keys = append(keys, k)
		n += len(k) + len(v) + 4
	}
	sort.Strings(keys)
	out := make([]byte, 0, n)
	out = append(out, '{')
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		kb, _ := json.Marshal(k)
		out = append(out, kb...)
		out = append(out, ':')
		out = append(out, fields[k]...)
	}
	return append(out, '}')
}

func (m *Manager) clusterInfo(ctx context.Context) (*system.Info, error) {
	m.awaitContact(ctx)
	engines := m.pool.Engines()
	host, _ := os.Hostname()
	info := &system.Info{
		ID:                 "shoal-" + engine.NodeID("manager:"+host),
		Name:               m.Name(),
		ServerVersion:      "shoal/" + m.cfg.Version,
		OSType:             runtime.GOOS,
		Architecture:       runtime.GOARCH,
		KernelVersion:      m.kernel,
		OperatingSystem:    "shoal cluster",
		Driver:             "shoal",
		IndexServerAddress: "https://index.docker.io/v1/",
		LoggingDriver:      "json-file",
		CgroupDriver:       "cgroupfs",
		CgroupVersion:      "2",
		DockerRootDir:      "/var/lib/shoal",
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		Labels:             m.ownLabelList(),
		Warnings:           []string{},
		DefaultRuntime:     "runc",
		Swarm:              swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
	}
	if m.cfg.Cluster != nil {
		info.Swarm = m.cfg.Cluster.SwarmInfo(ctx)
	} else if m.cfg.LocalSwarm {
		info.Swarm = localSwarmInfo()
	}
	images := map[string]bool{}
	status := append(append([][2]string{{"Strategy", m.cfg.Strategy}}, m.freeLines()...), [2]string{"Nodes", fmt.Sprint(len(engines))}) // federation.go
	for _, e := range engines {
		sum := m.engineSummary(e)
		info.Containers += sum.containers
		info.ContainersRunning += sum.running
		info.ContainersPaused += sum.paused
		info.ContainersStopped += sum.stopped
		for _, id := range sum.images {
			images[id] = true
		}
		if sum.state == engine.Healthy {
			info.NCPU += sum.ncpu
			info.MemTotal += sum.memTotal
		} else {
			msg := fmt.Sprintf("WARNING: node %s (%s) is %s", e.Name(), e.Addr, strings.ToLower(sum.state.String()))
			if sum.lastErr != "" {
				msg += ": " + sum.lastErr
			}
			info.Warnings = append(info.Warnings, msg)
		}
	}
	info.Images = len(images)
	info.DriverStatus = status
	info.Plugins = system.PluginsInfo{Volume: []string{"local"}, Network: []string{"bridge", "host", "none"}, Log: []string{"json-file"}}
	return info, nil
}

// engineInfo is what info shows of one engine, computed once per change
// of its cache rather than on every call.
type engineInfo struct {
	gen                                  uint64
	state                                engine.State
	lastErr                              string
	containers, running, paused, stopped int
	ncpu                                 int
	memTotal                             int64
	reservedCPU, reservedMem             int64 // by active containers
	images                               []string
	statusJSON                           []byte // this node's DriverStatus lines, encoded, without brackets
}

func (m *Manager) engineSummary(e *engine.Engine) *engineInfo {
	gen := e.Gen()
	m.infoMu.Lock()
	cached := m.infos[e.ID]
	m.infoMu.Unlock()
	if cached != nil && cached.gen == gen {
		return cached
	}
	st, lastErr := e.State()
	s := &engineInfo{gen: gen, state: st, lastErr: lastErr}
	cs := e.Containers()
	var cpus, mem int64
	for _, c := range cs {
		switch c.State {
		case "running", "restarting":
			s.running++
		case "paused":
			s.paused++
		default:
			s.stopped++
		}
		if c.State != "exited" && c.State != "dead" {
			cpus += c.NanoCPUs
			mem += max(c.Memory, c.MemoryReservation)
		}
	}
	s.containers = len(cs)
	s.reservedCPU, s.reservedMem = cpus, mem
	for _, img := range e.Images() {
		s.images = append(s.images, img.ID)
	}
	var labels []string
	if ei := e.Info(); ei != nil {
		s.ncpu, s.memTotal, labels = ei.NCPU, ei.MemTotal, ei.Labels
	}
	ver, _ := e.Version()
	errText := lastErr
	if errText == "" {
		errText = "(none)"
	}
	status := [][2]string{
		{" " + e.Name(), e.Addr},
		{"  └ ID", e.ID},
		{"  └ Status", st.String()},
		{"  └ Containers", fmt.Sprintf("%d (%d Running, %d Paused, %d Stopped)", len(cs), s.running, s.paused, s.stopped)},
		{"  └ Reserved CPUs", fmt.Sprintf("%g / %d", float64(cpus)/1e9, s.ncpu)},
		{"  └ Reserved Memory", fmt.Sprintf("%s / %s", units.BytesSize(float64(mem)), units.BytesSize(float64(s.memTotal)))},
		{"  └ Labels", strings.Join(labels, ", ")},
	}
	if kind, ok := memberKind(e); ok { // federation.go
		status = append(status, [2]string{"  └ Kind", kind})
	}
	status = append(status, [][2]string{
		{"  └ Error", errText},
		{"  └ ServerVersion", ver},
	}...)
	if b, err := json.Marshal(status); err == nil {
		s.statusJSON = b[1 : len(b)-1]
	}
	m.infoMu.Lock()
	m.infos[e.ID] = s
	m.infoMu.Unlock()
	return s
}

// Nodes lists every engine of the pool as a swarm-mode node.
func (m *Manager) Nodes(ctx context.Context, f backend.Filters) ([]swarm.Node, error) {
	out := []swarm.Node{}
	if m.cfg.Cluster != nil {
		all, err := m.cfg.Cluster.Nodes(ctx)
		if err != nil {
			return nil, err
		}
		members := m.membersByTunnel()
		for _, n := range all {
			if nodeMatches(n, f) {
				if kind, ok := members["tunnel://"+n.ID]; ok && n.Status.Message == "" {
					n.Status.Message = kind // federation.go
				}
				out = append(out, n)
			}
		}
		return out, nil
	}
	for _, e := range m.pool.Engines() {
		n := nodeOf(e)
		if !nodeMatches(n, f) {
			continue
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Description.Hostname != out[j].Description.Hostname {
			return out[i].Description.Hostname < out[j].Description.Hostname
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func nodeMatches(n swarm.Node, f backend.Filters) bool {
	for k, vals := range f {
		ok := anyOf(vals, func(v string) bool {
			switch k {
			case "id":
				return strings.HasPrefix(n.ID, v)
			case "name":
				return strings.HasPrefix(n.Description.Hostname, v)
			case "role":
				return string(n.Spec.Role) == v
			case "membership":
				return v == "accepted"
			case "node.label", "label":
				return labelMatch(n.Description.Engine.Labels, v)
			}
			return false
		})
		if !ok {
			return false
		}
	}
	return true
}

// Node finds one node by ID, ID prefix, hostname or address.
func (m *Manager) Node(ctx context.Context, ref string) (*swarm.Node, error) {
	if m.cfg.Cluster != nil {
		return m.cfg.Cluster.Node(ctx, ref)
	}
	e, err := m.pool.Node(ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, errdefs.ErrNotFound.WithMessage("node " + ref + " not found")
		}
		return nil, err
	}
	n := nodeOf(e)
	return &n, nil
}

func nodeOf(e *engine.Engine) swarm.Node {
	st, msg := e.State()
	n := swarm.Node{
		ID: e.ID,
		Spec: swarm.NodeSpec{
			Role:         swarm.NodeRoleWorker,
			Availability: swarm.NodeAvailabilityActive,
		},
		Description: swarm.NodeDescription{Hostname: e.Name()},
		Status:      swarm.NodeStatus{Addr: e.IP, Message: msg},
	}
	n.Spec.Labels = map[string]string{}
	switch e.Availability() {
	case "pause":
		n.Spec.Availability = swarm.NodeAvailabilityPause
	case "drain":
		n.Spec.Availability = swarm.NodeAvailabilityDrain
	}
	switch st {
	case engine.Healthy:
		n.Status.State = swarm.NodeStateReady
	case engine.Unhealthy:
		n.Status.State = swarm.NodeStateDown
	default:
		n.Status.State = swarm.NodeStateUnknown
	}
	if n.Status.Addr == "" {
		n.Status.Addr = e.Addr
	}
	if kind, ok := memberKind(e); ok && n.Status.Message == "" {
		n.Status.Message = kind // federation.go
	}
	if info := e.Info(); info != nil {
		ver, _ := e.Version()
		n.Description.Platform = swarm.Platform{Architecture: info.Architecture, OS: info.OSType}
		n.Description.Resources = swarm.Resources{NanoCPUs: int64(info.NCPU) * 1e9, MemoryBytes: info.MemTotal, GenericResources: info.GenericResources}
		n.Description.Engine = swarm.EngineDescription{EngineVersion: ver, Labels: engineLabels(info.Labels)}
	}
	return n
}
