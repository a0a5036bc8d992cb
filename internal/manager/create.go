package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// placement is what the scheduler needs of a create request.
func placement(name string, b *backend.ContainerConfig) *scheduler.Request {
	req := &scheduler.Request{Name: name, Image: b.Image, Env: b.Env, Labels: b.Labels}
	h := b.HostConfig
	if h != nil {
		req.NanoCPUs, req.CPUShares, req.Memory, req.MemoryReservation = h.NanoCpus, h.CpuShares, h.Memory, h.MemoryReservation
		req.NetworkMode = h.NetworkMode
		req.VolumesFrom = h.VolumesFrom
		req.Links = h.Links
		for port, binds := range h.PortBindings {
			num, proto, _ := strings.Cut(port, "/")
			for _, bd := range binds {
				hp, err := strconv.Atoi(bd.HostPort)
				if err != nil || hp == 0 {
					if bd.HostPort == "" && h.NetworkMode != "host" {
						continue // a random port never conflicts
					}
					hp, _ = strconv.Atoi(num)
				}
				req.Ports = append(req.Ports, scheduler.Port{HostIP: bd.HostIp, HostPort: hp, Proto: protoOr(proto)})
			}
		}
		for _, bind := range h.Binds {
			src, _, _ := strings.Cut(bind, ":")
			if src != "" && !strings.HasPrefix(src, "/") {
				req.Volumes = append(req.Volumes, src)
			}
		}
		for _, mt := range h.Mounts {
			if mt.Type == "volume" && mt.Source != "" {
				req.Volumes = append(req.Volumes, mt.Source)
			}
		}
	}
	if req.NetworkMode == "host" {
		for port := range b.ExposedPorts {
			num, proto, _ := strings.Cut(port, "/")
			if p, err := strconv.Atoi(num); err == nil {
				req.Ports = append(req.Ports, scheduler.Port{HostPort: p, Proto: protoOr(proto)})
			}
		}
	}
	if b.NetworkingConfig != nil {
		for n := range b.NetworkingConfig.EndpointsConfig {
			req.Networks = append(req.Networks, n)
		}
	}
	return req
}

func protoOr(p string) string {
	if p == "" {
		return "tcp"
	}
	return p
}

func nameInUse(name, id string) error {
	return errdefs.ErrConflict.WithMessage(fmt.Sprintf("Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, id))
}

// nameOwner returns the ID of the container that has name anywhere in the
// cluster, "pending" if a create is reserving it, or "".
func (m *Manager) nameOwner(name string) string {
	if m.names[name] {
		return "pending"
	}
	for _, e := range m.pool.Engines() {
		if c := e.ContainerNamed(name); c != nil {
			return c.ID
		}
	}
	return ""
}

// confirmNameOwner checks with its engine that the cached holder of name
// still exists, and forgets it if not: the engine's destroy event may not
// have arrived yet (`docker run --rm --name x ...; docker run --name x ...`).
func (m *Manager) confirmNameOwner(ctx context.Context, name string) {
	if name == "" {
		return
	}
	for _, e := range m.pool.Engines() {
		if c := e.ContainerNamed(name); c != nil && e.Healthy() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := e.Inspect(cctx, c.ID)
			cancel()
			if errdefs.IsNotFound(err) {
				e.ForgetContainer(c.ID)
			} else if err == nil {
				_ = e.RefreshContainer(ctx, c.ID) // it may have been renamed
			}
		}
	}
}

// createFromSpec recreates a container from its kept create spec, through
// placement and the engine's typed create: not through the API, whose
// checks are for clients' requests.
func (m *Manager) createFromSpec(ctx context.Context, name string, spec []byte) (*engine.Engine, engine.Created, error) {
	var cb backend.ContainerConfig
	if err := json.Unmarshal(spec, &cb); err != nil {
		return nil, engine.Created{}, fmt.Errorf("decoding the create spec: %w", err)
	}
	return m.create(ctx, engine.CreateSpec{Name: name, Body: spec}, &cb)
}

// CreateContainer places a container on a node and creates it there.
func (m *Manager) CreateContainer(ctx context.Context, creq backend.ContainerCreateRequest) (*container.CreateResponse, error) {
	m.confirmNameOwner(ctx, creq.Name)
	_, cr, err := m.create(ctx, engine.CreateSpec{Name: creq.Name, Platform: creq.Platform, Body: creq.Body, APIVersion: creq.Version}, &creq.Config)
	if err != nil {
		return nil, err
	}
	return &container.CreateResponse{ID: cr.ID, Warnings: cr.Warnings}, nil
}

// create places a container on a node and creates it there, through the
// engine's typed create; the spec's body goes to the engine as sent, but
// for shoal's directives. The API's creates and the rescheduler use it.
func (m *Manager) create(ctx context.Context, spec engine.CreateSpec, cb *backend.ContainerConfig) (*engine.Engine, engine.Created, error) {
	name := spec.Name
	rules, env, err := scheduler.ParseRules(cb.Env, cb.Labels)
	if err != nil {
		return nil, engine.Created{}, errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	req := placement(name, cb)
	att, err := m.clusterAttachment(ctx, cb, req) // tasks_networks.go
	if err != nil {
		return nil, engine.Created{}, err
	}
	// Prefer nodes that already have the image: a soft affinity, dropped
	// when no node has it (then the client pulls, and retries).
	placeRules := rules
	if x, err := scheduler.ParseExpr("affinity", "image==~"+cb.Image); err == nil {
		placeRules.Affinities = append(append([]scheduler.Expr(nil), rules.Affinities...), x)
	}
	placeRules = m.memberScoped(placeRules) // federation.go
	req.Rules = &placeRules

	var e *engine.Engine
	var placed scheduler.Container
	err = m.retryWhilePending(ctx, func() (err error) {
		e, placed, err = m.place(req)
		return err
	})
	if err != nil {
		return nil, engine.Created{}, err
	}
	release := func() { m.unplace(e.ID, name, placed) }
	defer func() { release() }()
	if spec.Body, err = att.apply(ctx, m, e, spec.Body, cb); err != nil { // tasks_networks.go
		return nil, engine.Created{}, err
	}

	body := spec.Body
	if spec.Body, err = m.withRules(body, cb, env, rules, m.leafPlaced(e, placed)); err != nil {
		return nil, engine.Created{}, err
	}
	cr, err := m.createOn(ctx, e, spec)
	for tries := 0; err != nil && errdefs.IsUnavailable(err) && !errors.Is(err, errNoAnswer) && !errors.Is(err, engine.ErrUnreachable) && e.Member() != nil && tries < 3; tries++ {
		// A member refused the leaf chosen here (its view above was behind):
		// refresh that view and place once more elsewhere, saying why.
		refused, leaf, why := e, m.leafPlaced(e, placed), err
		release()
		release = func() {}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = refused.RefreshMember(rctx)
		cancel()
		err = errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("member %s refused the container: %v", refused.Name(), why))
		req = avoidingID(req, refused.ID+"/"+leaf)
		e2, p2, perr := m.place(req)
		if perr != nil {
			if errdefs.IsUnavailable(perr) {
				err = errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("%v; and no other node fits: %v", err, perr))
			}
			break
		}
		m.log.Warn("create moved off a member that refused it", "name", name, "from", refused.Name()+"/"+leaf, "to", e2.Name(), "error", why)
		e, placed = e2, p2
		release = func() { m.unplace(e2.ID, name, p2) }
		if spec.Body, err = m.withRules(body, cb, env, rules, m.leafPlaced(e, placed)); err != nil {
			return nil, engine.Created{}, err
		}
		cr, err = m.createOn(ctx, e, spec)
	}
	if errors.Is(err, errNoAnswer) {
		// The node took the create and went silent (a hung engine not yet
		// marked Unhealthy): place it once more, elsewhere. What the
		// abandoned create makes is removed when it lands (createOn).
		silent, why := e, err
		release()
		release = func() {}
		err = errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s (%s) does not answer (%v): the container was not created", silent.Name(), silent.Addr, why))
		if e2, p2, perr := m.place(avoiding(req, silent)); perr == nil {
			m.log.Warn("create moved off a node that does not answer", "name", name, "from", silent.Name(), "to", e2.Name(), "error", why)
			e, placed = e2, p2
			release = func() { m.unplace(e2.ID, name, p2) }
			cr, err = m.createOn(ctx, e, spec)
			if errors.Is(err, errNoAnswer) {
				err = errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("nodes %s and %s do not answer (%v): the container was not created", silent.Name(), e.Name(), err))
			}
		}
	}
	if errors.Is(err, engine.ErrUnreachable) {
		// The engine may have created it before the failure: undo by name.
		if name != "" {
			m.removeQuietly(e, name)
		}
		if ctx.Err() != nil {
			return nil, engine.Created{}, ctx.Err()
		}
		return nil, engine.Created{}, errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s: %v", e.Name(), err))
	}
	if err != nil {
		return nil, engine.Created{}, err
	}
	m.bind(placed, cr.ID)
	if ctx.Err() != nil { // the client hung up: nobody will ever use it
		m.removeQuietly(e, cr.ID)
		return nil, engine.Created{}, ctx.Err()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := e.RefreshContainer(rctx, cr.ID); err != nil || e.Container(cr.ID) == nil {
		m.removeQuietly(e, cr.ID)
		return nil, engine.Created{}, errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s failed right after creating the container: %v", e.Name(), err))
	}
	if cr.Warnings == nil {
		cr.Warnings = []string{}
	}
	m.log.Info("container created", "id", cr.ID[:12], "name", name, "node", e.Name())
	return e, cr, nil
}

func (m *Manager) removeQuietly(e *engine.Engine, ref string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := e.Remove(ctx, ref, engine.RemoveOptions{Force: true, Volumes: true})
	if err != nil && !errdefs.IsNotFound(err) {
		m.log.Warn("could not remove half-created container", "node", e.Name(), "ref", ref, "error", err)
	}
	e.ForgetContainer(ref)
}

// retryWhilePending retries a placement that failed while some engines
// are still being contacted (right after shoal starts), for up to 10 s,
// rather than refuse work those engines could take.
func (m *Manager) retryWhilePending(ctx context.Context, place func() error) error {
	err := place()
	for wait := time.Now().Add(10 * time.Second); err != nil && m.anyPending() && time.Now().Before(wait) && ctx.Err() == nil; {
		time.Sleep(100 * time.Millisecond)
		err = place()
	}
	return err
}

// settle waits (up to 10 s) for engines still being contacted, so an
// operation meant for every node (load, pull, import) reaches them all.
func (m *Manager) settle(ctx context.Context) {
	for wait := time.Now().Add(10 * time.Second); m.anyPending() && time.Now().Before(wait) && ctx.Err() == nil; {
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *Manager) anyPending() bool {
	for _, e := range m.pool.Engines() {
		if st, _ := e.State(); st == engine.Pending {
			return true
		}
	}
	return false
}

// place reserves the name and a slot on the chosen node, atomically with
// respect to other creates, so parallel creates never overcommit a node.
func (m *Manager) place(req *scheduler.Request) (*engine.Engine, scheduler.Container, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if req.Name != "" {
		if id := m.nameOwner(req.Name); id != "" {
			return nil, scheduler.Container{}, nameInUse(req.Name, id)
		}
	}
	nodes, byID := m.snapshot()
	if len(nodes) == 0 {
		return nil, scheduler.Container{}, errdefs.ErrUnavailable.WithMessage("no node available: the pool has no engines")
	}
	n, err := m.cfg.Placer.Place(req, nodes)
	if err != nil {
		var nf *scheduler.NoFitError
		if errors.As(err, &nf) || errors.Is(err, scheduler.ErrNoNodes) {
			return nil, scheduler.Container{}, errdefs.ErrUnavailable.WithMessage(err.Error())
		}
		return nil, scheduler.Container{}, errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	e := byID[n.ID]
	m.seq++
	c := scheduler.Container{
		ID: "pending-" + strconv.FormatUint(m.seq, 10), Name: req.Name, Image: req.Image, Labels: req.Labels, State: "created",
		NanoCPUs: req.NanoCPUs, CPUShares: req.CPUShares, Memory: req.Memory, MemoryReservation: req.MemoryReservation,
		Ports: req.Ports,
	}
	m.pending[n.ID] = append(m.pending[n.ID], c)
	m.placedOn[c.ID] = n.ID
	if req.Name != "" {
		m.names[req.Name] = true
	}
	return e, c, nil
}

// withRules puts the placement directives of a create where the engine
// does not see them: out of Env (they stay on the container as classic
// Swarm's labels, so they survive a reschedule). For a member, the rules
// go on pinned to the leaf chosen here (pinToLeaf).
func (m *Manager) withRules(body []byte, cb *backend.ContainerConfig, env []string, rules scheduler.Rules, leaf string) ([]byte, error) {
	if len(env) == len(cb.Env) && leaf == "" {
		return body, nil
	}
	if leaf != "" {
		var err error
		if rules, err = pinToLeaf(rules, leaf); err != nil {
			return nil, errdefs.ErrInvalidArgument.WithMessage(err.Error())
		}
	}
	labels := map[string]string{}
	for k, v := range cb.Labels {
		labels[k] = v
	}
	for k, v := range rules.Labels() {
		labels[k] = v
	}
	out, err := setFields(body, map[string]any{"Env": env, "Labels": labels})
	if err != nil {
		return nil, errdefs.ErrInvalidArgument.WithMessage("invalid JSON: " + err.Error())
	}
	return out, nil
}

// leafPlaced is the member's leaf that c was placed on ("" for an engine).
func (m *Manager) leafPlaced(e *engine.Engine, c scheduler.Container) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return leafOf(e, m.placedOn[c.ID])
}

// bind records the ID the engine gave the container placed as c: from
// the moment the engine's cache holds it, the cache counts it and the
// pending entry no longer does (see snapshot), so it is never counted
// twice while the create finishes.
func (m *Manager) bind(c scheduler.Container, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.created == nil {
		m.created = map[string]string{}
	}
	m.created[c.ID] = id
}

// unplace drops the reservation of c, once the engine's cache holds the
// container (or the create failed and was undone).
func (m *Manager) unplace(nodeID, name string, c scheduler.Container) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.names, name)
	delete(m.created, c.ID)
	if at, ok := m.placedOn[c.ID]; ok {
		nodeID = at // a member's leaf
		delete(m.placedOn, c.ID)
	}
	p := m.pending[nodeID]
	for i := range p {
		if p[i].ID == c.ID {
			p = append(p[:i:i], p[i+1:]...)
			break
		}
	}
	if len(p) == 0 {
		delete(m.pending, nodeID)
	} else {
		m.pending[nodeID] = p
	}
}

// setFields replaces top-level fields of a JSON object, keeping the rest verbatim.
func setFields(body []byte, fields map[string]any) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, err
	}
	for k, v := range fields {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		obj[k] = b
	}
	return json.Marshal(obj)
}

// CheckRename reserves newName for a rename, or says it is taken.
// The API edge has checked the name.
func (m *Manager) CheckRename(ctx context.Context, id, newName string) (func(), error) {
	newName = strings.TrimPrefix(newName, "/")
	m.confirmNameOwner(ctx, newName)
	m.mu.Lock()
	defer m.mu.Unlock()
	if owner := m.nameOwner(newName); owner != "" && owner != id {
		return nil, nameInUse(newName, owner)
	}
	m.names[newName] = true
	return func() {
		m.mu.Lock()
		delete(m.names, newName)
		m.mu.Unlock()
	}, nil
}

// PruneContainers prunes on every healthy engine and adds up the reports.
func (m *Manager) PruneContainers(ctx context.Context, opts backend.PruneOptions) (*container.PruneReport, error) {
	cq := engine.ClientQuery{Query: opts.EngineQuery()}
	rep := &container.PruneReport{ContainersDeleted: []string{}}
	var mu sync.Mutex
	ok := 0
	errs := m.fanOut(ctx, m.pool.Healthy(), m.live(writePatience, func(ctx context.Context, e *engine.Engine) error {
		r, err := e.PruneContainers(ctx, cq)
		if err != nil {
			return err
		}
		mu.Lock()
		ok++
		rep.ContainersDeleted = append(rep.ContainersDeleted, r.ContainersDeleted...)
		rep.SpaceReclaimed += r.SpaceReclaimed
		mu.Unlock()
		return nil
	}))
	if len(errs) > 0 && ok == 0 {
		return nil, errs[0]
	}
	for _, err := range errs {
		m.log.Warn("prune failed on a node", "error", err)
	}
	return rep, nil
}
