package manager

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/image"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

func noHealthy() error {
	return errdefs.ErrUnavailable.WithMessage("no healthy node in the pool")
}

// ListImages merges every healthy engine's images by image ID, each entry
// as the engine words it at the client's API version.
func (m *Manager) ListImages(ctx context.Context, opts backend.ImageListOptions) ([]backend.Object, error) {
	objs, err := m.fetchAll(ctx, "images", (*engine.Engine).ListImages, engine.ClientQuery{Version: opts.Version, Query: opts.Query()})
	if err != nil {
		return nil, err
	}
	byID := map[string]backend.Object{}
	var order []string
	var created = map[string]int64{}
	for _, o := range objs {
		id := o.str("Id")
		prev, ok := byID[id]
		if !ok {
			byID[id] = o.obj
			order = append(order, id)
			var c int64
			_ = json.Unmarshal(o.obj["Created"], &c)
			created[id] = c
			continue
		}
		for _, k := range []string{"RepoTags", "RepoDigests"} {
			var a, b []string
			_ = json.Unmarshal(prev[k], &a)
			_ = json.Unmarshal(o.obj[k], &b)
			if merged := union(a, b); len(merged) > 0 {
				prev[k], _ = json.Marshal(merged)
			}
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		if created[order[i]] != created[order[j]] {
			return created[order[i]] > created[order[j]]
		}
		return order[i] < order[j]
	})
	out := make([]backend.Object, 0, len(order))
	for _, id := range order {
		out = append(out, byID[id])
	}
	return out, nil
}

func union(a, b []string) []string {
	for _, x := range b {
		found := false
		for _, y := range a {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			a = append(a, x)
		}
	}
	return a
}

// ResolveImage finds a healthy engine that has the image.
func (m *Manager) ResolveImage(ctx context.Context, name string) (backend.Target, error) {
	t, err := m.findImage(ctx, name)
	if m.lookAgain(ctx, err) {
		t, err = m.findImage(ctx, name)
	}
	return t, err
}

func (m *Manager) findImage(ctx context.Context, name string) (backend.Target, error) {
	engines := m.pool.Healthy()
	if len(engines) == 0 {
		return nil, noHealthy()
	}
	found := make([]bool, len(engines))
	var wg sync.WaitGroup
	var firstErr, notFound, silent error
	var mu sync.Mutex
	for i, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := m.ask(ctx, e, readPatience, func(ctx context.Context) error {
				_, err := e.InspectImage(ctx, name)
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				found[i] = true
			case errdefs.IsNotFound(err):
				if notFound == nil {
					notFound = err
				}
			case errors.Is(err, errNoAnswer):
				// Not knowing what a silent node holds is no reason to
				// fail a lookup the others answered.
				m.log.Warn("a node is left out of an image lookup", "image", name, "node", e.Name(), "error", err)
				if silent == nil {
					silent = nodeErr{e.Name(), err}
				}
			case firstErr == nil:
				firstErr = nodeErr{e.Name(), err}
			}
		}()
	}
	wg.Wait()
	for i, ok := range found {
		if ok {
			return engines[i], nil
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if notFound != nil {
		return nil, notFound
	}
	if silent != nil {
		return nil, silent
	}
	return nil, errdefs.ErrNotFound.WithMessage("No such image: " + name)
}

// streamMerger writes several engines' JSON progress streams as one, each
// message marked with its node. Errors are held back until every engine is
// done, so the caller decides whether one node's failure fails the whole.
type streamMerger struct {
	mu     sync.Mutex
	w      io.Writer
	wrote  bool
	first  error             // the first engine refusal before any output
	failed map[string]string // node → error
	ok     int
	loaded map[string]bool // "Loaded image: x" lines already said once
	// imageIDs, when not nil, holds back each node's status that is an
	// image ID (an import's last line), so that the stream ends with one
	// such status exactly as from one engine: clients take the last status
	// for the new image's ID.
	imageIDs map[string]string
}

func (s *streamMerger) copyFrom(node string, r io.Reader) {
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var msg map[string]any
		if err := dec.Decode(&msg); err != nil {
			if err != io.EOF {
				s.fail(node, err.Error())
			} else {
				s.done(node)
			}
			return
		}
		if v, ok := msg["error"].(string); ok {
			if d, ok := msg["errorDetail"].(map[string]any); ok {
				if dm, ok := d["message"].(string); ok && dm != "" {
					v = dm
				}
			}
			s.fail(node, v)
			_, _ = io.Copy(io.Discard, r)
			return
		}
		if v, ok := msg["stream"].(string); ok && strings.TrimSpace(v) != "" {
			if strings.HasPrefix(v, "Loaded image") {
				// Said once as the engine says it: clients (docker-py)
				// read the loaded images from these lines.
				s.once(v)
			}
			msg["stream"] = node + ": " + v
		}
		if v, ok := msg["id"].(string); ok && v != "" {
			msg["id"] = node + ": " + v
		} else if v, ok := msg["status"].(string); ok {
			if s.imageIDs != nil && isImageID(v) {
				s.mu.Lock()
				s.imageIDs[node] = v
				s.mu.Unlock()
				continue
			}
			msg["status"] = node + ": " + v
		}
		s.emit(msg)
	}
}

func (s *streamMerger) once(line string) {
	s.mu.Lock()
	if s.loaded == nil {
		s.loaded = map[string]bool{}
	}
	seen := s.loaded[line]
	s.loaded[line] = true
	s.mu.Unlock()
	if !seen {
		s.emit(map[string]any{"stream": line})
	}
}

func (s *streamMerger) emit(msg map[string]any) {
	b, _ := json.Marshal(msg)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wrote = true
	_, _ = s.w.Write(append(b, '\n'))
}

// refuse records an engine's error answer (an HTTP error, before any stream).
func (s *streamMerger) refuse(node string, err error) {
	s.mu.Lock()
	if s.first == nil {
		s.first = err
	}
	s.mu.Unlock()
	s.fail(node, err.Error())
}

func (s *streamMerger) fail(node, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = map[string]string{}
	}
	s.failed[node] = msg
}

func (s *streamMerger) done(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, bad := s.failed[node]; !bad {
		s.ok++
	}
}

// finish reports the held-back failures: as errors when strict or when no
// engine succeeded, else as status lines. When every engine refused
// before any output, it returns that refusal, so the client gets an HTTP
// error as dockerd would answer it.
func (s *streamMerger) finish(strict bool) error {
	if s.ok == 0 && !s.wrote && s.first != nil {
		return s.first
	}
	nodes := make([]string, 0, len(s.failed))
	for n := range s.failed {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	failed := len(nodes) > 0 && (strict || s.ok == 0)
	for _, n := range nodes {
		text := n + ": " + s.failed[n]
		if failed {
			s.emit(map[string]any{"errorDetail": map[string]any{"message": text}, "error": text})
		} else {
			s.emit(map[string]any{"status": text + " (the other nodes succeeded)"})
		}
	}
	if !failed {
		s.emitImageID()
	}
	return nil
}

// emitImageID ends the stream with the image ID of the first node (by
// name) that gave one; each node's import has its own ID (the creation
// time differs), and shoal finds the image by any of them.
func (s *streamMerger) emitImageID() {
	nodes := make([]string, 0, len(s.imageIDs))
	for n := range s.imageIDs {
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return
	}
	sort.Strings(nodes)
	s.emit(map[string]any{"status": s.imageIDs[nodes[0]]})
}

// isImageID reports whether v is an image ID ("sha256:" and 64 hex digits).
func isImageID(v string) bool {
	hex, ok := strings.CutPrefix(v, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	return strings.Trim(hex, "0123456789abcdef") == ""
}

// LoadImage sends the archive to every healthy engine; a failure on any
// of them fails the load.
func (m *Manager) LoadImage(ctx context.Context, req backend.ImageStreamRequest, w io.Writer) error {
	body, q := req.Body, req.Query
	m.settle(ctx)
	engines := m.pool.Healthy()
	if len(engines) == 0 {
		return noHealthy()
	}
	// Keep the archive on disk so every engine reads it at its own pace.
	f, err := os.CreateTemp("", "shoal-load-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, body); err != nil {
		return errdefs.ErrInvalidArgument.WithMessage("reading the image archive: " + err.Error())
	}
	sm := &streamMerger{w: w}
	m.fanOut(ctx, engines, m.live(writePatience, func(ctx context.Context, e *engine.Engine) error {
		r, err := os.Open(f.Name())
		if err != nil {
			sm.fail(e.Name(), err.Error())
			return err
		}
		defer r.Close()
		m.engineStream(sm, e, func() (io.ReadCloser, error) { return e.LoadImage(ctx, q, r) })
		return nil
	}))
	return sm.finish(true)
}

// engineStream runs one engine's streaming call (open) into sm and
// refreshes its images. An engine that could not be asked is a failure in
// the stream; an engine's refusal is also the error when no engine did it.
func (m *Manager) engineStream(sm *streamMerger, e *engine.Engine, open func() (io.ReadCloser, error)) {
	defer m.refreshImages(e)
	progress, err := open()
	switch {
	case errors.Is(err, engine.ErrUnreachable):
		sm.fail(e.Name(), err.Error())
		return
	case err != nil:
		sm.refuse(e.Name(), err)
		return
	}
	defer progress.Close()
	sm.copyFrom(e.Name(), progress)
}

func (m *Manager) refreshImages(e *engine.Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = m.ask(ctx, e, readPatience, e.RefreshImages)
}

// PullImage pulls on every healthy engine in parallel. It succeeds when at
// least one engine got the image (the others are reported in the stream),
// so a create can then be placed where the image is.
func (m *Manager) PullImage(ctx context.Context, req backend.ImageStreamRequest, w io.Writer) error {
	q, auth := req.Query, req.Auth
	m.settle(ctx)
	engines := m.pool.Healthy()
	if len(engines) == 0 {
		return noHealthy()
	}
	sm := &streamMerger{w: w}
	m.fanOut(ctx, engines, m.live(writePatience, func(ctx context.Context, e *engine.Engine) error {
		m.engineStream(sm, e, func() (io.ReadCloser, error) { return e.PullImage(ctx, q, auth) })
		return nil
	}))
	return sm.finish(false)
}

// TagImage tags the image on every healthy engine that has it.
func (m *Manager) TagImage(ctx context.Context, name string, opts backend.ImageTagOptions) error {
	engines := m.pool.Healthy()
	if len(engines) == 0 {
		return noHealthy()
	}
	var mu sync.Mutex
	tagged := 0
	errs := m.fanOut(ctx, engines, m.live(writePatience, func(ctx context.Context, e *engine.Engine) error {
		err := e.TagImage(ctx, name, opts.Repo, opts.Tag)
		if err == nil {
			mu.Lock()
			tagged++
			mu.Unlock()
			m.refreshImages(e)
		}
		return err
	}))
	if tagged > 0 {
		return nil
	}
	return firstError(errs, "No such image: "+name)
}

// firstError prefers an error that is not "not found"; when every engine
// said not found, it is the first engine's own words (as dockerd's).
func firstError(errs []error, notFoundMsg string) error {
	for _, err := range errs {
		if !errdefs.IsNotFound(err) {
			return err
		}
	}
	for _, err := range errs {
		var ne nodeErr
		if errors.As(err, &ne) {
			return ne.err
		}
	}
	return errdefs.ErrNotFound.WithMessage(notFoundMsg)
}

// RemoveImage removes the image from every healthy engine that has it.
// Without force, an image in use anywhere is refused before any engine
// removes it, so a refused rmi changes nothing.
func (m *Manager) RemoveImage(ctx context.Context, name string, opts backend.ImageRemoveOptions) ([]image.DeleteResponse, error) {
	q := opts.Query
	engines := m.pool.Healthy()
	if len(engines) == 0 {
		return nil, noHealthy()
	}
	if !opts.Force {
		if err := m.imageInUse(ctx, engines, name); err != nil {
			return nil, err
		}
	}
	var mu sync.Mutex
	out := []image.DeleteResponse{}
	removed := 0
	errs := m.fanOut(ctx, engines, m.live(writePatience, func(ctx context.Context, e *engine.Engine) error {
		list, err := e.RemoveImage(ctx, name, q)
		if err != nil {
			return err
		}
		mu.Lock()
		removed++
		out = append(out, list...)
		mu.Unlock()
		m.refreshImages(e)
		return nil
	}))
	if removed == 0 {
		return nil, firstError(errs, "No such image: "+name)
	}
	// Every node untags the same name: say it once.
	seen := map[image.DeleteResponse]bool{}
	uniq := out[:0]
	for _, d := range out {
		if !seen[d] {
			seen[d] = true
			uniq = append(uniq, d)
		}
	}
	out = uniq
	for _, err := range errs {
		if !errdefs.IsNotFound(err) {
			m.log.Warn("image remove failed on a node", "image", name, "error", err)
		}
	}
	return out, nil
}

func (m *Manager) imageInUse(ctx context.Context, engines []*engine.Engine, name string) error {
	for _, e := range engines {
		var img *engine.ObjectInspect
		err := m.ask(ctx, e, readPatience, func(ctx context.Context) (err error) {
			img, err = e.InspectImage(ctx, name)
			return err
		})
		if err != nil {
			continue
		}
		for _, c := range e.Containers() {
			if c.ImageID == img.ID {
				short := strings.TrimPrefix(img.ID, "sha256:")
				if len(short) > 12 {
					short = short[:12]
				}
				return errdefs.ErrConflict.WithMessage(fmt.Sprintf("conflict: unable to remove repository reference %q (must force) - container %s on node %s is using its referenced image %s", name, c.ID[:12], e.Name(), short))
			}
		}
	}
	return nil
}

// ImportImage imports on every healthy engine (the uploaded archive, or
// the URL in fromSrc), like load; the stream ends with one image ID.
func (m *Manager) ImportImage(ctx context.Context, req backend.ImageStreamRequest, w io.Writer) error {
	body, q := req.Body, req.Query
	m.settle(ctx)
	engines := m.pool.Healthy()
	if len(engines) == 0 {
		return noHealthy()
	}
	var path string
	if q.Get("fromSrc") == "-" {
		f, err := os.CreateTemp("", "shoal-import-*.tar")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if _, err := io.Copy(f, body); err != nil {
			return errdefs.ErrInvalidArgument.WithMessage("reading the archive: " + err.Error())
		}
		path = f.Name()
	}
	sm := &streamMerger{w: w, imageIDs: map[string]string{}}
	m.fanOut(ctx, engines, m.live(writePatience, func(ctx context.Context, e *engine.Engine) error {
		var rd io.Reader
		if path != "" {
			f, err := os.Open(path)
			if err != nil {
				sm.fail(e.Name(), err.Error())
				return err
			}
			defer f.Close()
			rd = f
		}
		m.engineStream(sm, e, func() (io.ReadCloser, error) { return e.ImportImage(ctx, q, rd) })
		return nil
	}))
	return sm.finish(true)
}

// ImagesChanged refreshes an engine's images after a forwarded change.
func (m *Manager) ImagesChanged(t backend.Target) {
	if e, ok := t.(*engine.Engine); ok {
		m.refreshImages(e)
	}
}

// AnyEngine returns a healthy engine (see anyAnswering).
func (m *Manager) AnyEngine() (backend.Target, error) {
	e := m.anyAnswering()
	if e == nil {
		return nil, noHealthy()
	}
	return e, nil
}

// PlaceBuild picks the engine for a build. Classic Swarm read placement
// rules from build args: --build-arg constraint:node==n1 reaches the API as
// buildargs {"constraint:node": "=n1"}; those are removed before the engine
// sees them. A node holding a --cache-from image is preferred, and a user
// network (--network) puts the build where that network is.
func (m *Manager) PlaceBuild(ctx context.Context, req backend.BuildPlacement) (backend.Target, backend.BuildPlacement, error) {
	rules, send, err := buildRules(req.Args)
	if err != nil {
		return nil, req, err
	}
	preferCacheFrom(&rules, req.CacheFrom)
	netNode, mode, err := m.buildNetwork(ctx, req.NetworkMode)
	if err != nil {
		return nil, req, err
	}
	if netNode != nil {
		x, err := scheduler.ParseExpr("constraint", "node=="+netNode.ID)
		if err != nil {
			return nil, req, err
		}
		rules.Constraints = append(rules.Constraints, x)
	}
	var target *engine.Engine
	err = m.retryWhilePending(ctx, func() error {
		m.mu.Lock()
		defer m.mu.Unlock()
		nodes, byID := m.snapshot()
		if len(nodes) == 0 {
			return noHealthy()
		}
		n, err := m.cfg.Placer.Place(&scheduler.Request{Rules: &rules, NetworkMode: mode}, nodes)
		if err != nil {
			return errdefs.ErrUnavailable.WithMessage(err.Error())
		}
		target = byID[n.ID]
		return nil
	})
	if err != nil {
		return nil, req, err
	}
	return target, backend.BuildPlacement{Args: send, CacheFrom: req.CacheFrom, NetworkMode: mode}, nil
}
