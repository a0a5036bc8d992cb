package manager

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
)

// ResolveContainer finds the engine that holds ref: a full ID, an ID
// prefix, a name, /name, node/name, /node/name or, through a shoal of
// shoals, member/node/name. It returns the
// container's ID and the reference to use on that engine: the client's own
// words without the node, so the engine's answers (errors included) read
// as dockerd's would. A container that no engine has is sent to any
// healthy engine with id "", so the client gets that engine's own 404.
func (m *Manager) ResolveContainer(ctx context.Context, ref string) (backend.Target, string, string, error) {
	e, c, err := m.findContainer(ctx, ref)
	if err != nil {
		bare := strings.TrimPrefix(ref, "/")
		if errdefs.IsNotFound(err) && strings.ContainsAny(bare, "/?#%") {
			// A path-like name must not reach an engine's router (where
			// it could name another endpoint); dockerd's words for it are
			// these, with the name as the client wrote it.
			return nil, "", "", noSuchContainer(bare)
		}
		if errdefs.IsNotFound(err) {
			if e := m.anyAnswering(); e != nil {
				return e, "", bare, nil
			}
		}
		return nil, "", "", err
	}
	pathRef := strings.TrimPrefix(ref, "/")
	if p := engine.ParseNamePath(ref); len(p) > 1 {
		// node/name: the engine knows it as name; a longer path (or one
		// not starting with the engine) is put by ID, which needs no escaping.
		pathRef = ""
		if len(p) == 2 && isNode(e, p[0]) {
			pathRef = p[1]
		}
	}
	if pathRef == "" || strings.ContainsAny(pathRef, "/?#%") {
		pathRef = c.ID
	}
	return e, c.ID, pathRef, nil
}

// ResolveLink finds the parent container of link ref ("parent/alias", as
// `docker rm --link /web/db` names it, the parent by any reference
// ResolveContainer takes) and returns its engine, its ID and the link's
// name on that engine: the parent's name there, then the alias (dockerd
// removes a link by name only). A ref without a parent, or whose parent
// no engine has, goes to an engine as given, for its own error.
func (m *Manager) ResolveLink(ctx context.Context, ref string) (backend.Target, string, string, error) {
	r := strings.TrimPrefix(ref, "/")
	i := strings.LastIndexByte(r, '/')
	if i <= 0 {
		return m.ResolveContainer(ctx, ref)
	}
	e, c, err := m.findContainer(ctx, r[:i])
	if err != nil {
		if h := m.pool.Healthy(); errdefs.IsNotFound(err) && len(h) > 0 {
			return h[0], "", r, nil
		}
		return nil, "", "", err
	}
	return e, c.ID, strings.TrimPrefix(c.Path().String(), "/") + "/" + r[i+1:], nil
}

// isNode says whether ref names engine e (by name or ID).
func isNode(e *engine.Engine, ref string) bool { return e.Name() == ref || e.ID == ref }

// nameMatches says whether ref names container c of engine e: ref ends
// c's path under e ("web", "node1/web", "member/node1/web" for the
// container a member shoal lists as /node1/web), the node being named by
// engine name or ID.
func nameMatches(e *engine.Engine, c *engine.Container, ref engine.NamePath) bool {
	p := c.Path()
	if len(p) == 0 || len(ref) == 0 {
		return false
	}
	if p.HasSuffix(ref) {
		return true
	}
	return len(ref) == len(p)+1 && isNode(e, ref[0]) && p.Equal(ref[1:])
}

type hit struct {
	e *engine.Engine
	c *engine.Container
}

func noSuchContainer(ref string) error {
	return errdefs.ErrNotFound.WithMessage("No such container: " + ref)
}

func (m *Manager) findContainer(ctx context.Context, ref string) (*engine.Engine, *engine.Container, error) {
	e, c, err := m.findContainerOnce(ctx, ref)
	if m.lookAgain(ctx, err) {
		e, c, err = m.findContainerOnce(ctx, ref)
	}
	return e, c, err
}

func (m *Manager) findContainerOnce(ctx context.Context, ref string) (*engine.Engine, *engine.Container, error) {
	r := strings.TrimPrefix(ref, "/")
	if r == "" {
		return nil, nil, noSuchContainer(ref)
	}
	engines := m.pool.Engines()
	if h, err := m.findCached(engines, r); err != nil || h.c != nil {
		return h.e, h.c, err
	}
	// Not cached (yet): the engine may have it before its event reached us.
	h, err := m.findLive(ctx, engines, r)
	if err != nil {
		return nil, nil, err
	}
	if h.c == nil {
		return nil, nil, noSuchContainer(ref)
	}
	return h.e, h.c, nil
}

func (m *Manager) findCached(engines []*engine.Engine, r string) (hit, error) {
	for _, e := range engines {
		if c := e.Container(r); c != nil {
			return hit{e, c}, nil
		}
	}
	ref := engine.ParseNamePath(r)
	name := ref.Base()
	var byName, byPrefix []hit
	for _, e := range engines {
		for _, c := range e.Containers() {
			if nameMatches(e, c, ref) {
				byName = append(byName, hit{e, c})
			} else if len(ref) == 1 && strings.HasPrefix(c.ID, r) {
				byPrefix = append(byPrefix, hit{e, c})
			}
		}
	}
	switch {
	case len(byName) == 1:
		return byName[0], nil
	case len(byName) > 1:
		nodes := make([]string, 0, len(byName))
		for _, h := range byName {
			nodes = append(nodes, h.e.Name())
		}
		return hit{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("container name %s is ambiguous: it exists on nodes %s; use <node>/%s", name, strings.Join(nodes, ", "), name))
	case len(byPrefix) == 1:
		return byPrefix[0], nil
	case len(byPrefix) > 1:
		return hit{}, errdefs.ErrInvalidArgument.WithMessage("multiple IDs found with provided prefix: " + r)
	}
	return hit{}, nil
}

// liveRef is whom findLive asks for ref, and in which words: node/name
// (or member/node/name) asks that node for the rest; any other reference
// is asked of every engine as given (a member shoal knows its node/name).
func liveRef(engines []*engine.Engine, r string) (nodeRef, name string) {
	ref := engine.ParseNamePath(r)
	if len(ref) > 1 {
		for _, e := range engines {
			if isNode(e, ref[0]) {
				return ref[0], strings.Join(ref[1:], "/")
			}
		}
	}
	return "", strings.Join(ref, "/")
}

// findLive asks the engines directly, in parallel, for a container their
// cache does not show: the node a node/name names, or else only the
// healthy engines whose cache may lag (lookup_lag.go: events being
// applied, a stream just opened). A settled cache's miss is the engine's,
// but for an event still on its way (a container made on the engine a
// moment ago): after missGrace, the cache is looked at again and the
// engines whose cache moved meanwhile are asked too.
func (m *Manager) findLive(ctx context.Context, engines []*engine.Engine, r string) (hit, error) {
	nodeRef, name := liveRef(engines, r)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if nodeRef != "" {
		var node []*engine.Engine
		for _, e := range engines {
			if e.Name() == nodeRef || e.ID == nodeRef {
				node = append(node, e)
			}
		}
		return m.askLive(ctx, node, name, r)
	}
	asked := m.lag.lagging(engines, time.Now())
	if h, err := m.askLive(ctx, asked, name, r); err != nil || h.c != nil || len(asked) == healthy(engines) {
		return h, err
	}
	select {
	case <-ctx.Done():
		return hit{}, nil
	case <-time.After(missGrace):
	}
	if h, err := m.findCached(engines, r); err != nil || h.c != nil {
		return h, err
	}
	was := make(map[*engine.Engine]bool, len(asked))
	for _, e := range asked {
		was[e] = true
	}
	var more []*engine.Engine
	for _, e := range m.lag.lagging(engines, time.Now()) {
		if !was[e] {
			more = append(more, e)
		}
	}
	return m.askLive(ctx, more, name, r)
}

func healthy(engines []*engine.Engine) int {
	n := 0
	for _, e := range engines {
		if e.Healthy() {
			n++
		}
	}
	return n
}

// askLive asks the healthy ones of engines for the container name (r as
// the client wrote it), caching what they have.
func (m *Manager) askLive(ctx context.Context, engines []*engine.Engine, name, r string) (hit, error) {
	var mu sync.Mutex
	var found []hit
	var wg sync.WaitGroup
	for _, e := range engines {
		if !e.Healthy() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A member's node/name stays two segments, as its router expects.
			ins, err := e.Inspect(ctx, name)
			if err != nil {
				return
			}
			if err := e.RefreshContainer(ctx, ins.ID); err != nil {
				return
			}
			if c := e.Container(ins.ID); c != nil {
				mu.Lock()
				found = append(found, hit{e, c})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	switch len(found) {
	case 0:
		return hit{}, nil
	case 1:
		return found[0], nil
	}
	return hit{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("%s matches containers on %d nodes; use <node>/<name> or a full ID", r, len(found)))
}

// ContainerChanged refreshes the cache after a call forwarded to the engine changed a container.
func (m *Manager) ContainerChanged(ctx context.Context, t backend.Target, id string, removed bool) {
	e, ok := t.(*engine.Engine)
	if !ok || id == "" {
		return
	}
	if removed {
		e.ForgetContainer(id)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := e.RefreshContainer(ctx, id); err != nil {
		m.log.Debug("refresh after change", "node", e.Name(), "id", id, "error", err)
	}
}

// InspectNode is the "Node" object added to container inspect, as classic Swarm did.
func (m *Manager) InspectNode(t backend.Target) *backend.NodeSummary {
	e, ok := t.(*engine.Engine)
	if !ok {
		return nil
	}
	n := &backend.NodeSummary{ID: e.ID, IP: e.IP, Addr: e.Addr, Name: e.Name(), Labels: map[string]string{}}
	if info := e.Info(); info != nil {
		n.Cpus, n.Memory = info.NCPU, info.MemTotal
		n.Labels = engineLabels(info.Labels)
	}
	return n
}

func engineLabels(ls []string) map[string]string {
	out := make(map[string]string, len(ls))
	for _, l := range ls {
		k, v, _ := strings.Cut(l, "=")
		out[k] = v
	}
	return out
}

// ExecCreated remembers which engine holds an exec instance.
func (m *Manager) ExecCreated(t backend.Target, id string) {
	e, ok := t.(*engine.Engine)
	if !ok {
		return
	}
	m.execMu.Lock()
	m.execs[id] = execEntry{e: e, seen: time.Now()}
	m.execMu.Unlock()
}

// ResolveExec finds the engine of an exec instance; after a manager
// restart it asks the engines.
func (m *Manager) ResolveExec(ctx context.Context, id string) (backend.Target, error) {
	m.execMu.Lock()
	x, ok := m.execs[id]
	if ok {
		x.seen = time.Now()
		m.execs[id] = x
	}
	m.execMu.Unlock()
	if ok {
		return x.e, nil
	}
	if !execIDShape(id) {
		// No engine has it (dockerd finds an exec by its whole ID only):
		// no need to ask every one.
		return nil, errdefs.ErrNotFound.WithMessage("No such exec instance: " + id)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	var found *engine.Engine
	var wg sync.WaitGroup
	for _, e := range m.pool.Healthy() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.InspectExec(ctx, id); err == nil {
				mu.Lock()
				found = e
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if found == nil {
		return nil, errdefs.ErrNotFound.WithMessage("No such exec instance: " + id)
	}
	m.ExecCreated(found, id)
	return found, nil
}

// execIDShape says whether id can be an exec instance's ID as dockerd
// makes them: 64 lower-case hex digits.
func execIDShape(id string) bool {
	if len(id) != 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
