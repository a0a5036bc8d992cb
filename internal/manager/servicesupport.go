package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/shoal-dev/shoal/internal/engine"
)

// What the services backend needs of the engines (services.Engines):
// checking a service's image, resolving node references of task filters
// and reading task containers' logs.

// imageRegistryProbes is how many engines are asked whether they could
// pull an image no engine has: one engine may lack a registry's access
// that another has, but a thousand need not all be asked.
const imageRegistryProbes = 3

// CheckImage says whether some healthy node holds image or could pull it:
// first by asking every healthy engine for the image, then by asking a
// few whether the registry has it (GET /distribution/{image}/json, a
// manifest lookup: nothing is downloaded). Engines' refusals mean the
// image cannot be pulled: an errdefs not-found error with their words;
// when no engine could be asked, an unavailable one.
func (m *Manager) CheckImage(ctx context.Context, image, encodedAuth string) error {
	healthy := m.pool.Healthy()
	if len(healthy) == 0 {
		return errdefs.ErrUnavailable.WithMessage("no healthy node to check the image on")
	}
	if m.imageOnSomeNode(ctx, healthy, image) {
		return nil
	}
	var refusals, failures []string
	for i, e := range healthy {
		if i == imageRegistryProbes {
			break
		}
		err := distributionInspect(ctx, e, image, encodedAuth)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errTransport):
			failures = append(failures, e.Name()+": "+err.Error())
		default:
			refusals = append(refusals, e.Name()+": "+err.Error())
		}
	}
	if len(refusals) > 0 {
		return errdefs.ErrNotFound.WithMessage(strings.Join(refusals, "; "))
	}
	return errdefs.ErrUnavailable.WithMessage("could not ask the nodes about image " + image + ": " + strings.Join(failures, "; "))
}

// errTransport is a failure to reach an engine, as opposed to its answer.
var errTransport = errors.New("manager: engine not reached")

// imageOnSomeNode says whether some healthy engine has image: in its
// cached image list, or else (the cache may lag a pull) as it answers,
// asked in parallel.
func (m *Manager) imageOnSomeNode(ctx context.Context, engines []*engine.Engine, image string) bool {
	ref := imageRef(image)
	if imageCached(engines, ref) {
		return true // at 10,000 engines, no 10,000 inspects for each service create
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	found := make(chan bool, len(engines))
	var wg sync.WaitGroup
	for _, e := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.InspectImage(ctx, ref)
			found <- err == nil
		}()
	}
	go func() { wg.Wait(); close(found) }()
	for ok := range found {
		if ok {
			return true
		}
	}
	return false
}

// imageCached says whether an engine's cached image list has ref (a tag
// or, for name@digest, a digest).
func imageCached(engines []*engine.Engine, ref string) bool {
	for _, e := range engines {
		for _, im := range e.Images() {
			if slices.Contains(im.RepoTags, ref) || slices.Contains(im.RepoDigests, ref) {
				return true
			}
		}
	}
	return false
}

// imageRef is image as engines name it: "busybox" is "busybox:latest".
func imageRef(image string) string {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return image
	}
	return reference.FamiliarString(reference.TagNameOnly(named))
}

// distributionInspect asks e whether the registry has image.
func distributionInspect(ctx context.Context, e *engine.Engine, image, auth string) error {
	h := http.Header{}
	if auth != "" {
		h.Set("X-Registry-Auth", auth)
	}
	resp, err := e.Client().Raw(ctx, "GET", e.APIPath("", "/distribution/"+imageRef(image)+"/json"), nil, nil, h)
	if err != nil {
		return fmt.Errorf("%w: %v", errTransport, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return engine.ResponseError(resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return nil
}

// ResolveNode is the node ID of ref (ID, unique ID prefix or hostname),
// as `docker node ls` shows it.
func (m *Manager) ResolveNode(ctx context.Context, ref string) (string, error) {
	n, err := m.Node(ctx, ref)
	if err != nil {
		return "", err
	}
	return n.ID, nil
}

// ContainerLogs opens a container's logs on a node (GET
// /containers/{id}/logs with the query q).
func (m *Manager) ContainerLogs(ctx context.Context, nodeID, containerID string, q url.Values) (io.ReadCloser, error) {
	e := m.engineOfNode(nodeID)
	if e == nil {
		return nil, errdefs.ErrNotFound.WithMessage("node " + nodeID + " is not in the pool")
	}
	if !e.Healthy() {
		_, msg := e.State()
		return nil, errdefs.ErrUnavailable.WithMessage("node " + e.Name() + " is down: " + msg)
	}
	resp, err := e.Client().Raw(ctx, "GET", e.APIPath("", "/containers/"+containerID+"/logs"), q, nil, nil)
	if err != nil {
		return nil, errdefs.ErrUnavailable.WithMessage("node " + e.Name() + ": " + err.Error())
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, engine.ResponseError(resp)
	}
	return watchNode(e, resp.Body, nodeWatchInterval), nil
}

// nodeWatchInterval is how often an open log stream checks its node.
const nodeWatchInterval = time.Second

// watchNode ends body with an error as soon as the pool counts e down: a
// dead node's connection can hang for minutes before TCP gives up, and
// the merged logs of a service should tell at once and go on without it.
func watchNode(e *engine.Engine, body io.ReadCloser, every time.Duration) io.ReadCloser {
	w := &watchedBody{ReadCloser: body, stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				if !e.Healthy() {
					_, msg := e.State()
					w.down.Store(errdefs.ErrUnavailable.WithMessage("node " + e.Name() + " went down: " + msg))
					body.Close()
					return
				}
			}
		}
	}()
	return w
}

type watchedBody struct {
	io.ReadCloser
	stop chan struct{}
	once sync.Once
	down atomic.Value // error, once the node is down
}

func (w *watchedBody) Read(p []byte) (int, error) {
	n, err := w.ReadCloser.Read(p)
	if err != nil {
		if down, ok := w.down.Load().(error); ok {
			return n, down
		}
	}
	return n, err
}

func (w *watchedBody) Close() error {
	w.once.Do(func() { close(w.stop) })
	return w.ReadCloser.Close()
}

// engineOfNode is the engine of a node ID: in the built-in cluster the
// engine at "tunnel://<node ID>", otherwise the engine with that ID.
func (m *Manager) engineOfNode(nodeID string) *engine.Engine {
	for _, e := range m.pool.Engines() {
		if e.ID == nodeID || e.Addr == "tunnel://"+nodeID {
			return e
		}
	}
	return nil
}
