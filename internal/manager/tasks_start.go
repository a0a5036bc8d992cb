package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/orchestrator"
	"github.com/shoal-dev/shoal/internal/scheduler"
	"github.com/shoal-dev/shoal/internal/store"
)

// Start makes the container of t on its node (the orchestrator chose it)
// and starts it. A container of t already there is started, not made again.
// An image the node cannot pull fails with the engine's "No such image".
// The pull carries the service's registry auth (docker service create
// --with-registry-auth), as swarm mode's agents pull with it.
func (r taskRuntime) Start(ctx context.Context, svc store.Service, t store.Task) (string, error) {
	m := r.m
	e := m.nodeEngine(t.NodeID)
	if e == nil {
		return "", errdefs.ErrNotFound.WithMessage("node " + t.NodeID + " not found")
	}
	if !e.Healthy() {
		return "", fmt.Errorf("%w: %w", orchestrator.ErrUnreachable, errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("node %s (%s) is down", t.NodeID, e.Name())))
	}
	req, err := taskCreateRequest(svc.Service, t, engineNodeInfo(e))
	if err != nil {
		return "", errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	afterCreate, err := r.prepareFiles(ctx, e, svc.Service, t, &req)
	if err != nil {
		return "", err
	}
	// The cache only: a container it has not seen yet makes the create
	// fail on its name, and createTask finds it then.
	for _, c := range m.taskContainers(ctx, t, false) {
		if c.e == e {
			return m.startExisting(ctx, e, c.id, afterCreate)
		}
	}
	nets, err := m.attachTaskNetworks(ctx, e, svc.Service, t, &req) // tasks_networks.go
	if err != nil {
		return "", err
	}
	name := taskName(svc.Service, t)
	placed, existing, err := m.reserveTask(e, name, req)
	if err != nil {
		return "", err
	}
	if existing != "" {
		return m.startExisting(ctx, e, existing, afterCreate)
	}
	body, err := json.Marshal(req)
	if err != nil {
		m.unplace(e.ID, name, placed)
		return "", err
	}
	// A node that goes silent mid-way is given up on (its create may still
	// land: the next Start finds that container by its name).
	var id string
	err = m.ask(ctx, e, writePatience, func(ctx context.Context) error {
		if err := m.ensureImage(ctx, e, req.Config.Image, svc.RegistryAuth); err != nil {
			return err
		}
		var err error
		if id, err = m.createTask(ctx, e, t, name, body); err != nil {
			return err
		}
		m.bind(placed, id)
		err = afterCreate(ctx, id)
		if err == nil {
			err = m.connectTaskNetworks(ctx, e, id, nets) // tasks_networks.go
		}
		if err != nil {
			// Never left to be started without its files or networks by
			// the next Start.
			if rerr := e.Remove(context.WithoutCancel(ctx), id, engine.RemoveOptions{Force: true, Volumes: true}); rerr != nil {
				m.log.Warn("task container left half-made", "node", e.Name(), "id", id, "error", rerr)
			} else {
				id = "" // nothing of the task's is left to count or find
			}
			return err
		}
		return m.startTask(ctx, e, id)
	})
	if id == "" {
		m.unplace(e.ID, name, placed)
	} else {
		go m.unplaceWhenCached(e, name, placed, id)
	}
	if errors.Is(err, engine.ErrUnreachable) {
		err = fmt.Errorf("%w: %w", orchestrator.ErrUnreachable, err) // the node's loss, not the task's failure
	}
	return id, err
}

// unplaceWhenCached drops a task's reservation once the engine's cache
// holds its container (its create and start events refresh it), so that
// it is counted all along without a refresh of its own on the way of the
// start: that refresh made a start take twice as long. When the events
// have not cached it within cacheCatchUp, it refreshes the container
// itself, beside the start: the engine's events are applied one by one,
// and on a busy node they fall behind by more than the orchestrator's
// MissingGrace, which failed tasks that were running ("the container of
// the task is gone") and replaced them, loading the node further.
func (m *Manager) unplaceWhenCached(e *engine.Engine, name string, placed scheduler.Container, id string) {
	defer m.unplace(e.ID, name, placed)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	began := time.Now()
	refreshed := false
	for deadline := began.Add(2 * m.pool.Timeout()); e.Container(id) == nil && time.Now().Before(deadline); {
		if !refreshed && time.Since(began) >= cacheCatchUp {
			refreshed = true
			ctx, cancel := context.WithTimeout(context.Background(), m.pool.Timeout())
			if err := e.RefreshContainer(ctx, id); err != nil {
				m.log.Debug("task container refresh", "node", e.Name(), "id", id, "error", err)
			}
			cancel()
			continue
		}
		<-tick.C
	}
}

// cacheCatchUp is how long a started task's container is left to the
// engine's events to cache before the runtime refreshes it itself.
const cacheCatchUp = 500 * time.Millisecond

// startExisting starts a container of the task that exists already,
// putting its files in first: an earlier create may have landed without
// them (its node went silent before they were put in).
func (m *Manager) startExisting(ctx context.Context, e *engine.Engine, id string, afterCreate func(context.Context, string) error) (string, error) {
	return id, m.ask(ctx, e, writePatience, func(ctx context.Context) error {
		if err := afterCreate(ctx, id); err != nil {
			return err
		}
		return m.startTask(ctx, e, id)
	})
}

func engineNodeInfo(e *engine.Engine) taskNodeInfo {
	n := taskNodeInfo{Hostname: e.Name()}
	if info := e.Info(); info != nil {
		n.OS, n.Arch = info.OSType, info.Architecture
	}
	return n
}

// reserveTask takes the task's name in the manager's name table and counts
// its reservation with the creates in flight (see place), so a parallel
// `docker run --name` or create cannot take either. It does not scan the
// cluster for the name, as a docker run does: a name holding a new random
// task ID is nobody's yet (a scan of every cached container per task would
// cost seconds over a large service), and on the node the engine itself
// refuses a duplicate.
//
// A container of this name made on e and not cached yet (see
// unplaceWhenCached) is returned as existing.
func (m *Manager) reserveTask(e *engine.Engine, name string, req container.CreateRequest) (placed scheduler.Container, existing string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.names[name] {
		for _, c := range m.pending[e.ID] {
			if id := m.created[c.ID]; c.Name == name && id != "" {
				return scheduler.Container{}, id, nil
			}
		}
		return scheduler.Container{}, "", nameInUse(name, "pending")
	}
	m.seq++
	res := req.HostConfig.Resources
	c := scheduler.Container{
		ID: "pending-" + strconv.FormatUint(m.seq, 10), Name: name, Image: req.Config.Image, Labels: req.Config.Labels,
		State: "created", NanoCPUs: res.NanoCPUs, CPUShares: res.CPUShares, Memory: res.Memory, MemoryReservation: res.MemoryReservation,
	}
	m.pending[e.ID] = append(m.pending[e.ID], c)
	m.names[name] = true
	return c, "", nil
}

// createTask creates the container; when the engine says the name is
// taken by this very task's container (made by an attempt whose answer
// was lost), that container is the one.
func (m *Manager) createTask(ctx context.Context, e *engine.Engine, t store.Task, name string, body []byte) (string, error) {
	cr, err := e.Create(ctx, engine.CreateSpec{Name: name, Body: body})
	if err == nil {
		return cr.ID, nil
	}
	if errdefs.IsConflict(err) {
		if ins, ierr := e.Inspect(ctx, name); ierr == nil && inspectTaskID(ins) == t.ID {
			return ins.ID, nil
		}
	}
	return "", err
}

func inspectTaskID(ins *engine.ContainerInspect) string {
	var cfg struct{ Labels map[string]string }
	_ = json.Unmarshal(ins.Config, &cfg)
	return cfg.Labels[labelTaskID]
}

// startTask starts the container. The cache learns of it from the
// engine's events (Changed then signals). A refusal is worded as swarm
// mode words it ("starting container failed: ..."), keeping the engine's
// error class.
func (m *Manager) startTask(ctx context.Context, e *engine.Engine, id string) error {
	if err := e.Start(ctx, id); err != nil {
		return fmt.Errorf("starting container failed: %w", err)
	}
	return nil
}

// ensureImage pulls ref on the node unless the node holds it, with the
// encoded registry auth (X-Registry-Auth, "" for none). A pull that fails
// is told as the engine's create would tell it ("No such image:
// x:latest"), which is what swarm mode shows for such a task (its agent
// logs the pull's error and goes on to the create); the pull's own error
// goes to the log. Neither ever holds the auth.
func (m *Manager) ensureImage(ctx context.Context, e *engine.Engine, ref, auth string) error {
	if engineHasImage(e, ref) {
		return nil
	}
	err := pullOn(ctx, e, ref, auth)
	if err == nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.pool.Timeout())
		defer cancel()
		_ = e.RefreshImages(rctx)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	m.log.Warn("task image pull failed", "node", e.Name(), "image", ref, "error", err)
	return errdefs.ErrNotFound.WithMessage("No such image: " + ref)
}

func engineHasImage(e *engine.Engine, ref string) bool {
	imgs := e.Images()
	n := scheduler.Node{Images: make([]scheduler.Image, len(imgs))}
	for i, img := range imgs {
		n.Images[i] = scheduler.Image{ID: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests}
	}
	return n.HasImage(ref)
}

// pullTimeout bounds one image pull for a task.
const pullTimeout = 10 * time.Minute

// pullOn pulls ref on the engine with auth and reads its progress to the
// end: the engine tells a failure mid-stream, as an "error" line.
func pullOn(ctx context.Context, e *engine.Engine, ref, auth string) error {
	ctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	repo, tag := splitRef(ref)
	q := url.Values{"fromImage": {repo}}
	if tag != "" {
		q.Set("tag", tag)
	}
	rc, err := e.PullImage(ctx, q, auth)
	if err != nil {
		return err
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var line struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&line); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the pull of %s: %w", ref, err)
		}
		if line.Error != "" {
			return fmt.Errorf("pulling %s: %s", ref, line.Error)
		}
	}
}

// splitRef splits an image reference into its repository and its tag or
// digest ("" when it has neither).
func splitRef(ref string) (repo, tag string) {
	if r, d, ok := strings.Cut(ref, "@"); ok {
		r, _ = splitRef(r) // a digest pins the image: a tag beside it is dropped
		return r, d
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}
