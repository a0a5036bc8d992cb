package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/store"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock by d, firing the timers due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.ch <- c.now
	}
	c.timers = kept
}

var errNodeDown = errors.New("fake: node is down")

// fakeRuntime is an in-memory cluster: nodes and task containers that
// start at once (or exit, or fail to start) by their image.
type fakeRuntime struct {
	mu         sync.Mutex
	clock      Clock
	nodes      []Node
	containers map[string]*Observed // by task ID
	exit       map[string]int       // image → its containers exit at once with this code
	missing    map[string]bool      // image → a start fails as an engine's would
	auth       map[string]string    // image → the registry auth its pull needs
	unreached  map[string]bool      // node → starts there fail with ErrUnreachable (its engine died, not yet seen down)
	unreachedN int                  // starts that failed so
	starts     int
	changed    chan struct{}
	nextID     int
}

func newFakeRuntime(clock Clock, n int) *fakeRuntime {
	return &fakeRuntime{clock: clock, nodes: nodes(n), containers: map[string]*Observed{},
		exit: map[string]int{}, missing: map[string]bool{}, auth: map[string]string{}, unreached: map[string]bool{}, changed: make(chan struct{}, 1)}
}

func (r *fakeRuntime) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *fakeRuntime) Nodes(context.Context) ([]Node, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Node(nil), r.nodes...), nil
}

func (r *fakeRuntime) Containers(context.Context) ([]Observed, []string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var stale []string
	down := map[string]bool{}
	for _, n := range r.nodes {
		if !n.Ready {
			stale = append(stale, n.ID)
			down[n.ID] = true
		}
	}
	out := make([]Observed, 0, len(r.containers))
	for _, c := range r.containers {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ContainerID < out[j].ContainerID })
	return out, stale, nil
}

func (r *fakeRuntime) nodeUp(id string) bool {
	for _, n := range r.nodes {
		if n.ID == id {
			return n.Ready
		}
	}
	return false
}

func (r *fakeRuntime) Start(_ context.Context, svc store.Service, t store.Task) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.nodeUp(t.NodeID) {
		return "", errNodeDown
	}
	if r.unreached[t.NodeID] {
		r.unreachedN++
		return "", fmt.Errorf("fake: node %s does not answer: %w", t.NodeID, ErrUnreachable)
	}
	image := t.Spec.ContainerSpec.Image
	if want, ok := r.auth[image]; r.missing[image] || ok && svc.RegistryAuth != want {
		return "", fmt.Errorf("No such image: %s", image)
	}
	c := r.containers[t.ID]
	if c == nil {
		r.nextID++
		c = &Observed{TaskID: t.ID, NodeID: t.NodeID, ContainerID: fmt.Sprintf("c%06d", r.nextID)}
		r.containers[t.ID] = c
	}
	r.starts++
	now := r.clock.Now()
	c.State, c.StartedAt, c.PID = "running", now, 1000+r.nextID
	if code, ok := r.exit[image]; ok {
		c.State, c.ExitCode, c.FinishedAt, c.PID = "exited", code, now, 0
	}
	r.notify()
	return c.ContainerID, nil
}

func (r *fakeRuntime) Stop(_ context.Context, t store.Task, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.nodeUp(t.NodeID) {
		return errNodeDown
	}
	if c := r.containers[t.ID]; c != nil && c.State == "running" {
		c.State, c.ExitCode, c.FinishedAt, c.PID = "exited", 0, r.clock.Now(), 0
		r.notify()
	}
	return nil
}

func (r *fakeRuntime) Remove(_ context.Context, t store.Task) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.containers[t.ID]; c != nil {
		if !r.nodeUp(c.NodeID) {
			return errNodeDown
		}
		delete(r.containers, t.ID)
		r.notify()
	}
	return nil
}

func (r *fakeRuntime) Changed(context.Context) <-chan struct{} { return r.changed }

// setNode changes a node.
func (r *fakeRuntime) setNode(id string, fn func(*Node)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.nodes {
		if r.nodes[i].ID == id {
			fn(&r.nodes[i])
		}
	}
	r.notify()
}

func (r *fakeRuntime) addNode(n Node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nodes = append(r.nodes, n)
	r.notify()
}

// running are the running containers.
func (r *fakeRuntime) running() []Observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Observed
	for _, c := range r.containers {
		if c.State == "running" {
			out = append(out, *c)
		}
	}
	return out
}

func (r *fakeRuntime) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.containers)
}
