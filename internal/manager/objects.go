package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// Networks and volumes live on one node each. Lists show each one under
// the Name its engine gives it (the name the client created it with, which
// clients look for in the list), with the node in an added "Node" field; a
// name several nodes have (bridge, host, none) is listed once per node.
// "node/name" addresses one; a bare name must be unique in the cluster
// (except the predefined networks, which every node has).

var predefinedNetworks = map[string]bool{"bridge": true, "host": true, "none": true}

// rawObject is one image, network or volume as an engine describes it.
type rawObject struct {
	e   *engine.Engine
	obj backend.Object
}

func (o rawObject) str(key string) string { return o.obj.String(key) }

// listFunc is an engine's list of networks or volumes.
type listFunc func(e *engine.Engine, ctx context.Context, cq engine.ClientQuery) ([]json.RawMessage, error)

// fetchAll asks every healthy engine for its list and returns the objects;
// an engine that fails or does not answer is left out and logged.
func (m *Manager) fetchAll(ctx context.Context, what string, list listFunc, cq engine.ClientQuery) ([]rawObject, error) {
	out, _, err := m.fetchEach(ctx, what, list, cq)
	return out, err
}

// fetchEach is fetchAll that also returns a warning per node left out:
// those not healthy (as info words them) and those that failed or went
// silent (see ask), for replies that carry warnings.
func (m *Manager) fetchEach(ctx context.Context, what string, list listFunc, cq engine.ClientQuery) ([]rawObject, []string, error) {
	var mu sync.Mutex
	var out []rawObject
	failed := map[*engine.Engine]error{}
	m.awaitContact(ctx)
	engines := m.pool.Healthy()
	errs := m.fanOut(ctx, engines, func(ctx context.Context, e *engine.Engine) error {
		err := m.ask(ctx, e, readPatience, func(ctx context.Context) error {
			raws, err := list(e, ctx, cq)
			if err != nil {
				return err
			}
			objs := make([]backend.Object, len(raws))
			for i, raw := range raws {
				if err := json.Unmarshal(raw, &objs[i]); err != nil {
					return fmt.Errorf("decoding the %s of node %s: %w", what, e.Name(), err)
				}
			}
			mu.Lock()
			for _, o := range objs {
				out = append(out, rawObject{e, o})
			}
			mu.Unlock()
			return nil
		})
		if err != nil {
			mu.Lock()
			failed[e] = err
			mu.Unlock()
		}
		return err
	})
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	if err := refusedByAll(errs, len(engines)); err != nil {
		return nil, nil, err
	}
	if len(engines) > 0 && len(errs) == len(engines) {
		// No node answered: an empty list would be a lie.
		return nil, nil, errs[0]
	}
	warnings := m.downWarnings()
	for _, e := range engines {
		if err := failed[e]; err != nil {
			m.log.Warn("a node is left out of a list", "what", what, "node", e.Name(), "addr", e.Addr, "error", err)
			warnings = append(warnings, nodeWarning(e, fmt.Sprintf("is left out of the %s: %v", what, err)))
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].e.Name() != out[j].e.Name() {
			return out[i].e.Name() < out[j].e.Name()
		}
		return out[i].str("Name") < out[j].str("Name")
	})
	return out, warnings, nil
}

// refusedByAll is the engines' own error when every one of the n engines
// asked that answered gave the same refusal (a bad filter pattern, say)
// and none listed anything: that is the request's fault, and the client
// gets it in the engine's words and status, as from one engine. Engines
// that failed each for their own reasons leave the answer to the others
// (nil), and so do engines that could not be reached or went silent: they
// prove nothing about the request.
func refusedByAll(errs []error, n int) error {
	if n == 0 || len(errs) != n {
		return nil
	}
	var first error
	for _, err := range errs {
		var ne nodeErr
		if !errors.As(err, &ne) {
			return nil
		}
		if errors.Is(err, engine.ErrUnreachable) {
			continue
		}
		if first == nil {
			first = ne.err
		} else if ne.err.Error() != first.Error() {
			return nil
		}
	}
	return first
}

// withNodeName is o as its engine described it plus the "Node" it is on
// (as in container inspect). The Name stays the engine's: a client that
// created "data" looks for "data" in the list.
func (m *Manager) withNodeName(o rawObject) backend.Object {
	cp := o.obj.Clone()
	_ = cp.Set("Node", m.InspectNode(o.e))
	return cp
}

// ListNetworks merges the networks of all nodes, each with its node.
func (m *Manager) ListNetworks(ctx context.Context, opts backend.ListOptions) ([]backend.Object, error) {
	objs, err := m.fetchAll(ctx, "networks", (*engine.Engine).ListNetworks, engine.ClientQuery{Version: opts.Version, Query: opts.Query()})
	if err != nil {
		return nil, err
	}
	out := make([]backend.Object, 0, len(objs))
	for _, o := range objs {
		if !backsClusterNetwork(o.obj) { // shown once, as the cluster network (networks_overlay.go)
			out = append(out, m.withNodeName(o))
		}
	}
	return append(out, m.clusterNetworkList(ctx, opts.Filters)...), nil
}

// ListVolumes merges the volumes of all nodes, each with its node.
func (m *Manager) ListVolumes(ctx context.Context, opts backend.ListOptions) (*backend.VolumeList, error) {
	objs, warnings, err := m.fetchEach(ctx, "volumes", (*engine.Engine).ListVolumes, engine.ClientQuery{Version: opts.Version, Query: opts.Query()})
	if err != nil {
		return nil, err
	}
	vols := make([]backend.Object, 0, len(objs))
	for _, o := range objs {
		vols = append(vols, m.withNodeName(o))
	}
	if warnings == nil {
		warnings = []string{}
	}
	return &backend.VolumeList{Volumes: vols, Warnings: warnings}, nil
}

// splitNode splits "node/name" when node names a pool engine.
func (m *Manager) splitNode(ref string) (*engine.Engine, string) {
	ref = strings.TrimPrefix(ref, "/")
	if i := strings.IndexByte(ref, '/'); i > 0 {
		if e, err := m.pool.Node(ref[:i]); err == nil {
			return e, ref[i+1:]
		}
	}
	return nil, ref
}

// resolveObject finds the node holding network or volume ref (kind
// "networks" or "volumes"); for a predefined network, the first healthy node.
func (m *Manager) resolveObject(ctx context.Context, kind, ref string) (*engine.Engine, string, error) {
	e, id, err := m.findObject(ctx, kind, ref)
	if m.lookAgain(ctx, err) {
		e, id, err = m.findObject(ctx, kind, ref)
	}
	return e, id, err
}

func (m *Manager) findObject(ctx context.Context, kind, ref string) (*engine.Engine, string, error) {
	e, name := m.splitNode(ref)
	candidates := m.pool.Healthy()
	if e != nil {
		candidates = []*engine.Engine{e}
	}
	if len(candidates) == 0 {
		return nil, "", noHealthy()
	}
	found := make([]string, len(candidates))
	var wg sync.WaitGroup
	for i, c := range candidates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inspect := c.InspectVolume
			if kind == "networks" {
				inspect = c.InspectNetwork
			}
			err := m.ask(ctx, c, readPatience, func(ctx context.Context) error {
				obj, err := inspect(ctx, name)
				if err == nil {
					found[i] = obj.Name
					if kind == "networks" {
						found[i] = obj.ID
					}
				}
				return err
			})
			if errors.Is(err, errNoAnswer) {
				m.log.Warn("a node is left out of a lookup", "kind", kind, "name", name, "node", c.Name(), "error", err)
			}
		}()
	}
	wg.Wait()
	var hits []int
	for i, f := range found {
		if f != "" {
			hits = append(hits, i)
		}
	}
	what := map[string]string{"networks": "network", "volumes": "volume"}[kind]
	switch {
	case len(hits) == 0:
		if kind == "volumes" {
			return nil, "", errdefs.ErrNotFound.WithMessage("get " + name + ": no such volume")
		}
		return nil, "", errdefs.ErrNotFound.WithMessage("network " + name + " not found")
	case len(hits) > 1 && !(kind == "networks" && predefinedNetworks[name]):
		var nodes []string
		for _, i := range hits {
			nodes = append(nodes, candidates[i].Name())
		}
		return nil, "", errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("%s %s exists on several nodes (%s): use <node>/%s", what, name, strings.Join(nodes, ", "), name))
	}
	return candidates[hits[0]], found[hits[0]], nil
}

// ResolveNetwork finds the node and ID of a network.
func (m *Manager) ResolveNetwork(ctx context.Context, ref string) (backend.Target, string, error) {
	e, id, err := m.resolveObject(ctx, "networks", ref)
	if err != nil {
		return nil, "", err
	}
	return e, id, nil
}

// ResolveVolume finds the node and name of a volume.
func (m *Manager) ResolveVolume(ctx context.Context, ref string) (backend.Target, string, error) {
	e, name, err := m.resolveObject(ctx, "volumes", ref)
	if err != nil {
		return nil, "", err
	}
	return e, name, nil
}

// ResolveNetworkFor finds network ref on the node of container cref, for
// connect and disconnect.
func (m *Manager) ResolveNetworkFor(ctx context.Context, ref, cref string) (backend.Target, string, string, error) {
	ce, c, err := m.findContainer(ctx, cref)
	if err != nil {
		return nil, "", "", err
	}
	ne, name := m.splitNode(ref)
	if ne != nil && ne != ce {
		return nil, "", "", errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("container %s is on node %s, network %s on node %s: a container can only join a network of its own node", cref, ce.Name(), name, ne.Name()))
	}
	if name, err = m.connectName(ctx, ce, name); err != nil { // tasks_networks.go
		return nil, "", "", err
	}
	obj, err := ce.InspectNetwork(ctx, name)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, "", "", errdefs.ErrNotFound.WithMessage(fmt.Sprintf("network %s not found on node %s, where container %s runs", name, ce.Name(), cref))
		}
		return nil, "", "", err
	}
	return ce, obj.ID, c.ID, nil
}

// pickNode chooses where a network or volume without a node goes: the
// node the scheduler would place an unconstrained container on.
func (m *Manager) pickNode(ctx context.Context) (*engine.Engine, error) {
	var e *engine.Engine
	err := m.retryWhilePending(ctx, func() error {
		m.mu.Lock()
		defer m.mu.Unlock()
		nodes, byID := m.snapshot()
		n, err := m.cfg.Placer.Place(&scheduler.Request{Rules: &scheduler.Rules{}}, nodes)
		if err != nil {
			return errdefs.ErrUnavailable.WithMessage(err.Error())
		}
		e = byID[n.ID]
		return nil
	})
	return e, err
}

// objectNode decides the node of a network or volume to create: the one
// named by "node/name", else the scheduler's pick.
func (m *Manager) objectNode(ctx context.Context, name string) (*engine.Engine, string, error) {
	if prefix, _, ok := strings.Cut(name, "/"); ok && (prefix == "" || prefix == "." || prefix == "..") {
		// A path, not <node>/<name>: no node is named so; the engine
		// answers such a name in its own words (400, invalid characters).
		e, err := m.pickNode(ctx)
		return e, name, err
	}
	var e *engine.Engine
	var bare string
	// A node named right after shoal starts may not have answered yet.
	err := m.retryWhilePending(ctx, func() error {
		e, bare = m.splitNode(name)
		if e == nil && strings.Contains(bare, "/") {
			return errdefs.ErrNotFound.WithMessage("node " + bare[:strings.IndexByte(bare, '/')] + " not found")
		}
		if e != nil && !e.Healthy() {
			return errdefs.ErrUnavailable.WithMessage("node " + e.Name() + " is not healthy")
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if e != nil {
		return e, bare, nil
	}
	e, err = m.pickNode(ctx)
	return e, bare, err
}

// CreateNetwork creates a network on one node (see objectNode). Names are
// unique in the cluster, as on one engine.
func (m *Manager) CreateNetwork(ctx context.Context, r backend.ObjectCreateRequest) (backend.Object, error) {
	if r.Body.String("Driver") == driverOverlay { // networks_overlay.go
		return m.createClusterNetwork(ctx, r)
	}
	version, name, req := r.Version, r.Name, r.Body.Clone()
	e, bare, err := m.objectNode(ctx, name)
	if err != nil {
		return nil, err
	}
	if !predefinedNetworks[bare] {
		if owner, _, err := m.resolveObject(ctx, "networks", bare); err == nil || errdefs.IsInvalidArgument(err) {
			where := "several nodes"
			if owner != nil {
				where = "node " + owner.Name()
			}
			return nil, errdefs.ErrConflict.WithMessage(fmt.Sprintf("network with name %s already exists (on %s)", bare, where))
		}
	}
	_ = req.Set("Name", bare)
	return m.createObject(ctx, e, version, req, (*engine.Engine).CreateNetwork)
}

// CreateVolume creates a volume on one node; creating a name that exists
// returns the existing volume, as dockerd does.
func (m *Manager) CreateVolume(ctx context.Context, r backend.ObjectCreateRequest) (backend.Object, error) {
	version, name, req := r.Version, r.Name, r.Body.Clone()
	var e *engine.Engine
	var bare string
	var err error
	if name != "" {
		if e, bare, err = m.objectNode(ctx, name); err != nil {
			return nil, err
		}
		if owner, _, err := m.resolveObject(ctx, "volumes", bare); err == nil {
			if strings.Contains(name, "/") && owner != e {
				return nil, errdefs.ErrConflict.WithMessage(fmt.Sprintf("volume %s already exists on node %s", bare, owner.Name()))
			}
			e = owner
		} else if errdefs.IsInvalidArgument(err) {
			return nil, errdefs.ErrConflict.WithMessage(fmt.Sprintf("volume %s exists on several nodes: use <node>/%s", bare, bare))
		}
		_ = req.Set("Name", bare)
	} else if e, err = m.pickNode(ctx); err != nil {
		return nil, err
	}
	return m.createObject(ctx, e, version, req, (*engine.Engine).CreateVolume)
}

// createObject creates a network or volume on e from the client's request
// and answers as the engine did.
func (m *Manager) createObject(ctx context.Context, e *engine.Engine, version string, req backend.Object,
	create func(e *engine.Engine, ctx context.Context, version string, body json.RawMessage) (*engine.ObjectInspect, error)) (backend.Object, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	created, err := create(e, ctx, version, body)
	if err != nil {
		return nil, nodeErr{e.Name(), err}
	}
	m.refreshObjects(e)
	var resp backend.Object
	if err := json.Unmarshal(created.Raw, &resp); err != nil {
		return nil, nodeErr{e.Name(), err}
	}
	return resp, nil
}

// ObjectsChanged refreshes a node's networks and volumes after a forwarded change.
func (m *Manager) ObjectsChanged(t backend.Target) {
	if e, ok := t.(*engine.Engine); ok {
		m.refreshObjects(e)
	}
}

func (m *Manager) refreshObjects(e *engine.Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), 10e9)
	defer cancel()
	_ = m.ask(ctx, e, readPatience, e.RefreshNetworksVolumes)
}

// PruneNetworks prunes the networks of every healthy node.
func (m *Manager) PruneNetworks(ctx context.Context, opts backend.PruneOptions) (*network.PruneReport, error) {
	opts.Filters = keepClusterNetworks(opts.Filters) // networks_overlay.go
	return prune(ctx, m, (*engine.Engine).PruneNetworks, opts, func(sum *network.PruneReport, one network.PruneReport) {
		sum.NetworksDeleted = append(sum.NetworksDeleted, one.NetworksDeleted...)
	})
}

// PruneVolumes prunes the volumes of every healthy node.
func (m *Manager) PruneVolumes(ctx context.Context, opts backend.PruneOptions) (*volume.PruneReport, error) {
	return prune(ctx, m, (*engine.Engine).PruneVolumes, opts, func(sum *volume.PruneReport, one volume.PruneReport) {
		sum.VolumesDeleted = append(sum.VolumesDeleted, one.VolumesDeleted...)
		sum.SpaceReclaimed += one.SpaceReclaimed
	})
}

// PruneImages prunes the images of every healthy node.
func (m *Manager) PruneImages(ctx context.Context, opts backend.PruneOptions) (*image.PruneReport, error) {
	return prune(ctx, m, (*engine.Engine).PruneImages, opts, func(sum *image.PruneReport, one image.PruneReport) {
		sum.ImagesDeleted = append(sum.ImagesDeleted, one.ImagesDeleted...)
		sum.SpaceReclaimed += one.SpaceReclaimed
	})
}

// PruneBuildCache prunes the build cache of every healthy node.
func (m *Manager) PruneBuildCache(ctx context.Context, opts backend.PruneOptions) (*build.CachePruneReport, error) {
	return prune(ctx, m, (*engine.Engine).PruneBuildCache, opts, func(sum *build.CachePruneReport, one build.CachePruneReport) {
		sum.CachesDeleted = append(sum.CachesDeleted, one.CachesDeleted...)
		sum.SpaceReclaimed += one.SpaceReclaimed
	})
}

// prune runs an engine's prune (e.g. (*engine.Engine).PruneNetworks) on
// every healthy node and adds up the reports with add.
func prune[R any](ctx context.Context, m *Manager, run func(e *engine.Engine, ctx context.Context, cq engine.ClientQuery) (R, error), opts backend.PruneOptions, add func(sum *R, one R)) (*R, error) {
	cq := engine.ClientQuery{Version: opts.Version, Query: opts.EngineQuery()}
	var mu sync.Mutex
	merged := new(R)
	ok := 0
	engines := m.pool.Healthy()
	errs := m.fanOut(ctx, engines, m.live(writePatience, func(ctx context.Context, e *engine.Engine) error {
		rep, err := run(e, ctx, cq)
		if err != nil {
			return err
		}
		mu.Lock()
		ok++
		add(merged, rep)
		mu.Unlock()
		m.refreshObjects(e)
		m.refreshImages(e)
		return nil
	}))
	if ok == 0 && len(errs) > 0 {
		return nil, errs[0]
	}
	if len(engines) == 0 {
		return nil, noHealthy()
	}
	for _, err := range errs {
		m.log.Warn("prune failed on a node", "error", err)
	}
	return merged, nil
}

// mergeReport adds one engine's report to merged: lists are joined,
// numbers added up, anything else kept from the first engine.
func mergeReport(merged, rep map[string]any) {
	for k, v := range rep {
		switch x := v.(type) {
		case []any:
			prev, _ := merged[k].([]any)
			merged[k] = append(prev, x...)
		case float64:
			prev, _ := merged[k].(float64)
			merged[k] = prev + x
		default:
			if _, seen := merged[k]; !seen {
				merged[k] = v
			}
		}
	}
}

// DiskUsage merges /system/df of every healthy node.
func (m *Manager) DiskUsage(ctx context.Context, opts backend.DiskUsageOptions) (backend.Report, error) {
	cq := engine.ClientQuery{Version: opts.Version, Query: opts.Query}
	m.awaitContact(ctx)
	var mu sync.Mutex
	merged := backend.Report{}
	engines := m.pool.Healthy()
	errs := m.fanOut(ctx, engines, m.live(readPatience, func(ctx context.Context, e *engine.Engine) error {
		df, err := e.DiskUsage(ctx, cq)
		if err != nil {
			return err
		}
		containers, _ := df["Containers"].([]any)
		for _, c := range containers {
			if cm, ok := c.(map[string]any); ok {
				if names, ok := cm["Names"].([]any); ok {
					for i, n := range names {
						if s, ok := n.(string); ok {
							names[i] = "/" + e.Name() + "/" + strings.TrimPrefix(s, "/")
						}
					}
				}
			}
		}
		mu.Lock()
		defer mu.Unlock()
		mergeReport(merged, df)
		return nil
	}))
	if err := refusedByAll(errs, len(engines)); err != nil {
		return nil, err
	}
	if len(engines) > 0 && len(errs) == len(engines) {
		return nil, errs[0]
	}
	// The reply has no warnings: the nodes left out are logged.
	for _, err := range errs {
		m.log.Warn("a node is left out of the disk usage", "error", err)
	}
	for _, k := range []string{"Images", "Containers", "Volumes", "BuildCache"} {
		if merged[k] == nil {
			merged[k] = []any{}
		}
	}
	return merged, nil
}
