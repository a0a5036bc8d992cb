package manager

import (
	"context"
	"maps"
	"strings"
	"sync"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// snapshot is the scheduler's view of the pool, with creates in flight
// added. Each node's view is rebuilt only when its engine's cache changed.
// Callers hold m.mu.
func (m *Manager) snapshot() ([]*scheduler.Node, map[string]*engine.Engine) {
	engines := m.pool.Engines()
	nodes := make([]*scheduler.Node, 0, len(engines))
	byID := make(map[string]*engine.Engine, len(engines))
	for _, e := range engines {
		gen := e.Gen()
		s := m.snaps[e.ID]
		var nl map[string]string // the built-in cluster's node labels
		if m.cfg.Cluster != nil {
			nl = m.cfg.Cluster.NodeLabels(e.Addr)
		}
		if s == nil || s.gen != gen || !maps.Equal(s.nl, nl) {
			s = &snap{gen: gen, nl: maps.Clone(nl), node: m.nodeView(e)}
			s.node.Labels = withNodeLabels(nl, s.node.Labels)
			s.leaves = leafViews(e, s.node, func(l map[string]string) map[string]string { // federation.go
				return withNodeLabels(nl, m.withOwnLabels(l))
			})
			// A published view is never written again, so the scheduler
			// may trust it by pointer (Gen must be non-zero for that).
			s.node.Gen = gen + 1
			for _, l := range s.leaves {
				l.Gen = gen + 1
			}
			m.snaps[e.ID] = s
		}
		views := []*scheduler.Node{s.node}
		if len(s.leaves) > 0 {
			views = s.leaves
		}
		for _, n := range views {
			// Views changed per call carry Gen 0: the scheduler then checks them
			// field by field instead of trusting a generation they do not have.
			if p := m.uncached(n.ID, n); len(p) > 0 {
				cp := *n
				cp.Containers = append(append(make([]scheduler.Container, 0, len(n.Containers)+len(p)), n.Containers...), p...)
				cp.Gen = 0
				n = &cp
			}
			nodes = append(nodes, n)
			byID[n.ID] = e
		}
		byID[e.ID] = e
	}
	if len(m.snaps) > len(engines)*2+16 {
		for id := range m.snaps {
			if byID[id] == nil {
				delete(m.snaps, id)
			}
		}
	}
	return nodes, byID
}

// uncached is the pending entries of node that its view n does not count
// yet: those still being created, and those created but not in the view.
// It checks the view, not the live cache: a container cached after the
// view was built must still count as pending. Callers hold m.mu.
func (m *Manager) uncached(node string, n *scheduler.Node) []scheduler.Container {
	p := m.pending[node]
	inView := func(c scheduler.Container) bool {
		id, ok := m.created[c.ID]
		return ok && n.Container(id) != nil
	}
	for i, c := range p {
		if inView(c) {
			out := append(make([]scheduler.Container, 0, len(p)-1), p[:i]...)
			for _, c := range p[i+1:] {
				if !inView(c) {
					out = append(out, c)
				}
			}
			return out
		}
	}
	return p
}

func (m *Manager) nodeView(e *engine.Engine) *scheduler.Node {
	n := &scheduler.Node{ID: e.ID, Name: e.Name(), Addr: e.Addr}
	switch st, _ := e.State(); st {
	case engine.Healthy:
		n.Health = scheduler.Healthy
		switch e.Availability() {
		case "pause":
			n.Health = scheduler.Paused
		case "drain":
			n.Health = scheduler.Drained
		}
	case engine.Pending:
		n.Health = scheduler.Pending
	default:
		n.Health = scheduler.Unhealthy
	}
	if info := e.Info(); info != nil {
		n.Labels = m.withOwnLabels(engineLabels(info.Labels))
		n.StorageDriver = info.Driver
		n.KernelVersion = info.KernelVersion
		n.OperatingSystem = info.OperatingSystem
		n.OSType = info.OSType
		n.Architecture = info.Architecture
		n.NanoCPUs = int64(info.NCPU) * 1e9
		n.Memory = info.MemTotal
	}
	cs := e.Containers()
	n.Containers = make([]scheduler.Container, 0, len(cs))
	for _, c := range cs {
		sc := scheduler.Container{
			ID: c.ID, Name: c.Name(), Image: c.Image, ImageID: c.ImageID, Labels: c.Labels, State: c.State,
			NanoCPUs: c.NanoCPUs, CPUShares: c.CPUShares, Memory: c.Memory, MemoryReservation: c.MemoryReservation,
		}
		for _, p := range c.Ports {
			if p.PublicPort != 0 {
				sc.Ports = append(sc.Ports, scheduler.Port{HostIP: p.IP, HostPort: int(p.PublicPort), Proto: p.Type})
			}
		}
		n.Containers = append(n.Containers, sc)
	}
	for _, img := range e.Images() {
		n.Images = append(n.Images, scheduler.Image{ID: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests})
	}
	nets, vols := e.NetworksVolumes()
	for _, x := range nets {
		if x != "bridge" && x != "host" && x != "none" {
			n.Networks = append(n.Networks, x)
		}
	}
	n.Volumes = vols
	return n
}

// fanOut runs f on each engine in parallel and returns the errors, each
// prefixed with its node.
func (m *Manager) fanOut(ctx context.Context, engines []*engine.Engine, f func(context.Context, *engine.Engine) error) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx, e); err != nil {
				mu.Lock()
				errs = append(errs, nodeErr{node: e.Name(), err: err})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// nodeErr names the node an error came from and keeps its class.
type nodeErr struct {
	node string
	err  error
}

func (e nodeErr) Error() string { return e.node + ": " + e.err.Error() }
func (e nodeErr) Unwrap() error { return e.err }

var _ = strings.TrimSpace
