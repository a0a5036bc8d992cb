package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
//
// The sums and the node lines come from a snapshot of the pool that is
// rebuilt only from the engines that changed since the last call
// (info_cache.go): at 10,000 nodes the lines are megabytes, and summing,
// joining and re-decoding them on every call made info slow.
func (m *Manager) Info(ctx context.Context) (json.RawMessage, error) {
	a, err := m.infoAnswer(ctx)
	if err != nil {
		return nil, err
	}
	// Room for the newline dockerapi appends, so that it does not copy
	// the answer again.
	return a.appendTo(make([]byte, 0, a.size+1)), nil
}

// InfoTo is Info for dockerapi to write out from where its parts are
// kept, without copying them into one answer first: at 10,000 nodes that
// was megabytes of garbage per call.
func (m *Manager) InfoTo(ctx context.Context) (io.WriterTo, error) {
	return m.infoAnswer(ctx)
}

func (m *Manager) infoAnswer(ctx context.Context) (*infoAnswer, error) {
	m.awaitContact(ctx)
	s := m.infoSnapshot()
	info := m.clusterInfo(ctx, s)
	now := info.SystemTime
	// The node lines are kept encoded per engine and copied into the
	// answer as they are; the rest is a template kept while it encodes
	// the same (infoTemplate), SystemTime put in per call.
	head, err := json.Marshal(info.DriverStatus)
	if err != nil {
		return nil, err
	}
	info.DriverStatus, info.SystemTime = nil, ""
	ours, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	t, err := m.infoTemplate(ours, head[1:len(head)-1])
	if err != nil {
		return nil, err
	}
	timeJSON, _ := json.Marshal(now)
	return newInfoAnswer(t, s, timeJSON), nil
}

// infoOwnKeys are the fields of info that are shoal's own; the others are
// the base engine's.
var infoOwnKeys = []string{"ID", "Name", "ServerVersion", "Containers", "ContainersRunning", "ContainersPaused",
	"ContainersStopped", "Images", "NCPU", "MemTotal", "Driver", "DriverStatus", "OperatingSystem", "OSType",
	"Architecture", "KernelVersion", "Labels", "Warnings", "Swarm", "SystemTime", "DockerRootDir", "Plugins"}

// clusterInfo is info's own fields, summed over the snapshot s; its
// DriverStatus holds the pool's lines, not the nodes'.
func (m *Manager) clusterInfo(ctx context.Context, s *infoSnap) *system.Info {
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
		Warnings:           append([]string{}, s.warnings...),
		DefaultRuntime:     "runc",
		Swarm:              swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
		Containers:         s.containers,
		ContainersRunning:  s.running,
		ContainersPaused:   s.paused,
		ContainersStopped:  s.stopped,
		Images:             s.images,
		NCPU:               s.ncpu,
		MemTotal:           s.memTotal,
	}
	if m.cfg.Cluster != nil {
		info.Swarm = m.cfg.Cluster.SwarmInfo(ctx)
	} else if m.cfg.LocalSwarm {
		info.Swarm = localSwarmInfo()
	}
	info.DriverStatus = append(append([][2]string{{"Strategy", m.cfg.Strategy}}, s.free.lines()...), [2]string{"Nodes", fmt.Sprint(len(s.engines))})
	info.Plugins = system.PluginsInfo{Volume: []string{"local"}, Network: []string{"bridge", "host", "none"}, Log: []string{"json-file"}}
	return info
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
	statusJSON                           []byte  // this node's DriverStatus lines, encoded, without brackets
	warning                              string  // info's line on it when it is not healthy
	free                                 freeSum // what its leaves can still take (itself, or a member's leaves)
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
	if st != engine.Healthy {
		s.warning = fmt.Sprintf("WARNING: node %s (%s) is %s", e.Name(), e.Addr, strings.ToLower(st.String()))
		if lastErr != "" {
			s.warning += ": " + lastErr
		}
	}
	s.free = freeOfEngine(e, s)
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
