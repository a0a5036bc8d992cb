package manager

import (
	"context"
	"maps"
	"strings"
	"sync"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// poolView is the last snapshot, kept so that the next one costs a look at
// each engine's generation, not a new slice and map of every node: at
// 10,000 engines building them for each create was 700 KiB of garbage
// and tens of thousands of map writes per `run -d`.
type poolView struct {
	list  []*engine.Engine // the pool's list it was built from (a new one at every change of membership)
	snaps []*snap          // the view of each engine of list
	nodes []*scheduler.Node
	byID  map[string]*engine.Engine // view node ID (and engine ID) → engine
	pos   map[string]int            // view node ID → index in nodes; -1 when two views share it
	out   []*scheduler.Node         // nodes with the pending entries added, reused
}

// snapshot is the scheduler's view of the pool, with creates in flight
// added. Each node's view is rebuilt only when its engine's cache changed,
// and the slice and map only when the pool's membership or a member's
// leaves changed. Callers hold m.mu, and use what it returns only while
// they do: the next call reuses both.
func (m *Manager) snapshot() ([]*scheduler.Node, map[string]*engine.Engine) {
	engines := m.pool.Engines()
	v := &m.view
	same := len(v.list) == len(engines) && (len(engines) == 0 || &v.list[0] == &engines[0])
	if !same {
		v.list = engines
		v.snaps = make([]*snap, len(engines))
		for i, e := range engines {
			v.snaps[i] = m.snaps[e.ID]
		}
	}
	rebuild := !same || v.byID == nil
	at := 0 // index in v.nodes of engine i's first view, while !rebuild
	for i, e := range engines {
		old := v.snaps[i]
		s := m.snapOf(e, old)
		if s != old {
			v.snaps[i] = s
			m.snaps[e.ID] = s
			// One view before and after (an engine, or a member of one
			// leaf keeping its ID): replaced in place. Anything else
			// changes the positions or the IDs: build everything anew.
			if !rebuild && old != nil && len(old.leaves) == len(s.leaves) && len(s.leaves) <= 1 && s.first().ID == old.first().ID {
				v.nodes[at] = s.first()
			} else {
				rebuild = true
			}
		}
		if !rebuild {
			at += max(1, len(s.leaves))
		}
	}
	if rebuild {
		m.rebuildView(v)
	}
	return m.withPending(v), v.byID
}

// snapOf is e's view: s when still current, else a new one.
func (m *Manager) snapOf(e *engine.Engine, s *snap) *snap {
	gen := e.Gen()
	var nl map[string]string // the built-in cluster's node labels
	if m.cfg.Cluster != nil {
		nl = m.cfg.Cluster.NodeLabels(e.Addr)
	}
	if s != nil && s.gen == gen && maps.Equal(s.nl, nl) {
		return s
	}
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
	return s
}

// views are the nodes the scheduler sees of one engine: the engine, or a
// member's leaves.
func (s *snap) views() []*scheduler.Node {
	if len(s.leaves) > 0 {
		return s.leaves
	}
	return []*scheduler.Node{s.node}
}

func (s *snap) first() *scheduler.Node {
	if len(s.leaves) > 0 {
		return s.leaves[0]
	}
	return s.node
}

// rebuildView lays out v's nodes and maps from its engines' views.
func (m *Manager) rebuildView(v *poolView) {
	v.nodes = v.nodes[:0]
	v.byID = make(map[string]*engine.Engine, len(v.list))
	v.pos = make(map[string]int, len(v.list))
	for i, e := range v.list {
		for _, n := range v.snaps[i].views() {
			if _, dup := v.pos[n.ID]; dup {
				v.pos[n.ID] = -1
			} else {
				v.pos[n.ID] = len(v.nodes)
			}
			v.nodes = append(v.nodes, n)
			v.byID[n.ID] = e
		}
		v.byID[e.ID] = e
	}
	if len(m.snaps) > len(v.list)*2+16 {
		for id := range m.snaps {
			if v.byID[id] == nil {
				delete(m.snaps, id)
			}
		}
	}
}

// withPending is v's nodes with the creates in flight added to the views
// of their nodes. Views changed so carry Gen 0: the scheduler then checks
// them field by field instead of trusting a generation they do not have.
func (m *Manager) withPending(v *poolView) []*scheduler.Node {
	if len(m.pending) == 0 {
		return v.nodes
	}
	v.out = append(v.out[:0], v.nodes...)
	for id := range m.pending {
		i, ok := v.pos[id]
		if !ok {
			continue
		}
		if i < 0 { // views sharing an ID (never seen): each is looked at
			for j, n := range v.out {
				if n.ID == id {
					v.out[j] = m.withUncached(n)
				}
			}
			continue
		}
		v.out[i] = m.withUncached(v.out[i])
	}
	return v.out
}

// withUncached is n with its node's pending entries that n does not count.
func (m *Manager) withUncached(n *scheduler.Node) *scheduler.Node {
	p := m.uncached(n.ID, n)
	if len(p) == 0 {
		return n
	}
	cp := *n
	cp.Containers = append(append(make([]scheduler.Container, 0, len(n.Containers)+len(p)), n.Containers...), p...)
	cp.Gen = 0
	return &cp
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
