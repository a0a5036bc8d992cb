// Package enginesim simulates Docker engines for scale benchmarks: each
// Engine answers the part of the Docker Engine API that shoal uses, with
// dockerd's JSON shapes, but holds only in-memory records, so a thousand of
// them fit in one process.
package enginesim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/volume"
)

// Errors of the simulated engine; the HTTP layer maps them to dockerd's statuses.
var (
	ErrNotFound = errors.New("enginesim: no such container")
	ErrConflict = errors.New("enginesim: conflict")
	ErrInvalid  = errors.New("enginesim: invalid request")
)

// apiError carries dockerd's message for a class of error.
type apiError struct {
	kind error
	msg  string
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.kind }

func errf(kind error, format string, args ...any) error {
	return &apiError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// Options describe one simulated engine. Zero values get dockerd-like defaults.
type Options struct {
	Addr          string   // listen address; default "127.0.0.1:0"
	Name          string   // hostname reported as Info.Name; default "sim-<port>"
	NCPU          int      // default 4
	MemTotal      int64    // bytes; default 8 GiB
	Labels        []string // engine labels, "key=value"
	Containers    int      // pre-existing containers (running)
	Stopped       int      // further pre-existing containers (exited)
	Images        int      // pre-existing images
	ServerVersion string   // default "29.0.0"
	APIVersion    string   // highest API version; default "1.52"
	// GenericResources are the node's generic resources as dockerd
	// --node-generic-resource shows them in /info.
	GenericResources []swarm.GenericResource
	// Latency, if set, delays every answer (not the event stream) to
	// imitate a remote engine.
	Latency time.Duration
	// Plugins are the names of the plugins it lists (installed, enabled).
	Plugins []string
}

func (o *Options) defaults() {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.NCPU <= 0 {
		o.NCPU = 4
	}
	if o.MemTotal <= 0 {
		o.MemTotal = 8 << 30
	}
	if o.ServerVersion == "" {
		o.ServerVersion = "29.0.0"
	}
	if o.APIVersion == "" {
		o.APIVersion = "1.52"
	}
}

// MinAPIVersion is the oldest API version the simulated engines accept, like dockerd 29.
const MinAPIVersion = "1.24"

// record is one simulated container: just what the API shows.
type record struct {
	id, name, image, imageID string
	cmd                      []string
	env                      []string
	labels                   map[string]string
	created                  time.Time
	started, finished        time.Time
	state                    container.ContainerState
	exitCode                 int
	res                      container.Resources
	seq                      uint64 // creation order: lists are newest first
	ip                       string
}

type imageRecord struct {
	id, ref string
	created int64
	size    int64
}

// Engine is one simulated Docker engine listening on its own address.
type Engine struct {
	opts Options
	id   string
	ln   net.Listener
	srv  *http.Server
	done chan struct{}

	mu         sync.Mutex
	containers map[string]*record // by ID
	names      map[string]string  // name → ID
	images     []imageRecord
	networks   []network.Summary        // created (the predefined ones are networkList)
	volumes    map[string]volume.Volume // by name
	seq        uint64
	subs       map[*subscriber]struct{}
	closed     bool
	registries map[string][2]string // registry → user name and password its pulls need (registry.go)
	pulls      map[string][]string  // image reference → the X-Registry-Auth of each pull
	logging    bool                 // keep eventLog (churn.go)
	eventLog   []LoggedEvent

	hangMu sync.Mutex
	hung   chan struct{} // while hung: closed by Resume
	held   int           // requests a hang has held
}

// Hang makes the engine stop answering, as a dockerd stopped with SIGSTOP
// does: connections are still accepted and requests read, but each is
// held, unanswered, until Resume, even when its client gives up; event
// streams already open go silent.
func (e *Engine) Hang() {
	e.hangMu.Lock()
	defer e.hangMu.Unlock()
	if e.hung == nil {
		e.hung = make(chan struct{})
	}
}

// Resume answers the held requests, and the new ones, again.
func (e *Engine) Resume() {
	e.hangMu.Lock()
	defer e.hangMu.Unlock()
	if e.hung != nil {
		close(e.hung)
		e.hung = nil
	}
}

// Held is how many requests hangs have held so far.
func (e *Engine) Held() int {
	e.hangMu.Lock()
	defer e.hangMu.Unlock()
	return e.held
}

func (e *Engine) waitWhileHung() {
	e.hangMu.Lock()
	c := e.hung
	if c != nil {
		e.held++
	}
	e.hangMu.Unlock()
	if c != nil {
		<-c
	}
}

// Start listens on opts.Addr and serves the simulated engine until Close.
func Start(opts Options) (*Engine, error) {
	opts.defaults()
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("enginesim: listen %s: %w", opts.Addr, err)
	}
	if opts.Name == "" {
		opts.Name = fmt.Sprintf("sim-%d", ln.Addr().(*net.TCPAddr).Port)
	}
	e := &Engine{
		opts:       opts,
		id:         engineID(opts.Name),
		ln:         ln,
		done:       make(chan struct{}),
		containers: map[string]*record{},
		names:      map[string]string{},
		subs:       map[*subscriber]struct{}{},
	}
	e.seed()
	e.srv = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	go func() {
		defer close(e.done)
		_ = e.srv.Serve(ln)
	}()
	return e, nil
}

// Addr is the engine's host:port.
func (e *Engine) Addr() string { return e.ln.Addr().String() }

// Name is the engine's hostname (Info.Name).
func (e *Engine) Name() string { return e.opts.Name }

// Close stops the listener, ends every event stream and open connection.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.Resume()
	for s := range e.subs {
		s.close()
	}
	e.subs = nil
	e.mu.Unlock()
	err := e.srv.Close()
	<-e.done
	return err
}

// engineID looks like dockerd's engine ID (a UUID since 23.0).
func engineID(name string) string {
	s := sha256.Sum256([]byte("enginesim:" + name))
	h := hex.EncodeToString(s[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (e *Engine) seed() {
	now := time.Now()
	for i := 0; i < e.opts.Images; i++ {
		s := sha256.Sum256(fmt.Appendf(nil, "image-%d", i))
		e.images = append(e.images, imageRecord{
			id:      "sha256:" + hex.EncodeToString(s[:]),
			ref:     fmt.Sprintf("sim/image-%d:latest", i),
			created: now.Add(-time.Duration(i+1) * time.Hour).Unix(),
			size:    int64(1<<20 + i*4096),
		})
	}
	for i := 0; i < e.opts.Containers+e.opts.Stopped; i++ {
		img := "busybox:latest"
		if len(e.images) > 0 {
			img = e.images[i%len(e.images)].ref
		}
		r := e.newRecord(fmt.Sprintf("%s-c%d", e.opts.Name, i), img, []string{"sleep", "infinity"}, nil, nil, container.Resources{})
		r.created = now.Add(-time.Duration(e.opts.Containers+e.opts.Stopped-i) * time.Minute)
		if i < e.opts.Containers {
			r.state, r.started = container.StateRunning, r.created.Add(time.Second)
		} else {
			r.state, r.started, r.finished = container.StateExited, r.created.Add(time.Second), now.Add(-time.Minute)
		}
	}
}

// imageID is the ID of ref if the engine has it, else a made-up stable one:
// the simulated engine "has" every image.
func (e *Engine) imageID(ref string) string {
	for _, im := range e.images {
		if im.ref == ref {
			return im.id
		}
	}
	s := sha256.Sum256([]byte(ref))
	return "sha256:" + hex.EncodeToString(s[:])
}

// newRecord adds a created container; e.mu must be held.
func (e *Engine) newRecord(name, image string, cmd, env []string, labels map[string]string, res container.Resources) *record {
	e.seq++
	if labels == nil {
		labels = map[string]string{}
	}
	r := &record{
		id: newID(), name: name, image: image, imageID: e.imageID(image),
		cmd: cmd, env: env, labels: labels, created: time.Now(),
		state: container.StateCreated, res: res, seq: e.seq,
		ip: fmt.Sprintf("172.17.%d.%d", (e.seq>>8)&0xff, e.seq&0xff),
	}
	e.containers[r.id] = r
	e.names[name] = r.id
	return r
}

// lookup finds a container by full ID, name, or unique ID prefix; e.mu must be held.
func (e *Engine) lookup(ref string) (*record, error) {
	ref = strings.TrimPrefix(ref, "/")
	if r, ok := e.containers[ref]; ok {
		return r, nil
	}
	if id, ok := e.names[ref]; ok {
		return e.containers[id], nil
	}
	var found *record
	if ref != "" {
		for id, r := range e.containers {
			if strings.HasPrefix(id, ref) {
				if found != nil {
					return nil, errf(ErrInvalid, "multiple IDs found with provided prefix: %s", ref)
				}
				found = r
			}
		}
	}
	if found == nil {
		return nil, errf(ErrNotFound, "No such container: %s", ref)
	}
	return found, nil
}

// sortedRecords returns the containers newest first, like dockerd; e.mu must be held.
func (e *Engine) sortedRecords() []*record {
	out := make([]*record, 0, len(e.containers))
	for _, r := range e.containers {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq > out[j].seq })
	return out
}

// CreateSpec is what a create request sets on a simulated container.
type CreateSpec struct {
	Name      string
	Image     string
	Cmd       []string
	Env       []string
	Labels    map[string]string
	Resources container.Resources
}

// Create records a new container (state "created") and emits "create".
func (e *Engine) Create(s CreateSpec) (string, error) {
	if s.Image == "" {
		return "", errf(ErrInvalid, "no image specified")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.Name == "" {
		s.Name = fmt.Sprintf("sim_%d_%s", e.seq+1, newID()[:6])
	}
	s.Name = strings.TrimPrefix(s.Name, "/")
	if id, ok := e.names[s.Name]; ok {
		return "", errf(ErrConflict, "Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", s.Name, id)
	}
	r := e.newRecord(s.Name, s.Image, s.Cmd, s.Env, s.Labels, s.Resources)
	e.emit(r, "create")
	return r.id, nil
}

// StartContainer starts a created or exited container and emits "start".
func (e *Engine) StartContainer(ref string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.lookup(ref)
	if err != nil {
		return err
	}
	if r.state == container.StateRunning {
		return nil // dockerd answers 304
	}
	r.state, r.started, r.exitCode = container.StateRunning, time.Now(), 0
	e.emit(r, "start")
	return nil
}

// StopContainer stops a running container with exit code, emitting what
// dockerd emits: kill (if killed), die, stop.
func (e *Engine) StopContainer(ref string, kill bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.lookup(ref)
	if err != nil {
		return err
	}
	if r.state != container.StateRunning {
		if kill {
			return errf(ErrConflict, "cannot kill container: %s: container %s is not running", ref, r.id)
		}
		return nil
	}
	e.stop(r, kill)
	return nil
}

func (e *Engine) stop(r *record, kill bool) {
	code := 0
	if kill {
		code = 137
		e.emit(r, "kill")
	}
	r.state, r.finished, r.exitCode = container.StateExited, time.Now(), code
	e.emit(r, "die")
	if !kill {
		e.emit(r, "stop")
	}
}

// RemoveContainer deletes a container (force kills a running one) and emits "destroy".
func (e *Engine) RemoveContainer(ref string, force bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.lookup(ref)
	if err != nil {
		return err
	}
	if r.state == container.StateRunning {
		if !force {
			return errf(ErrConflict, "cannot remove container \"/%s\": container is running: stop the container before removing or force remove", r.name)
		}
		e.stop(r, true)
	}
	delete(e.containers, r.id)
	delete(e.names, r.name)
	e.emit(r, "destroy")
	return nil
}

// Count reports how many containers the engine holds and how many run.
func (e *Engine) Count() (all, running int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.containers {
		if r.state == container.StateRunning {
			running++
		}
	}
	return len(e.containers), running
}

// Listeners reports how many event streams are open.
func (e *Engine) Listeners() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs)
}

// subscriber is one open /events stream. Its buffer is bounded: a reader
// that falls behind is cut off (and will resync), never blocks the engine.
type subscriber struct {
	ch   chan events.Message
	once sync.Once
	gone chan struct{}
}

func (s *subscriber) close() { s.once.Do(func() { close(s.gone) }) }

// emit sends a container event to every stream; e.mu must be held.
func (e *Engine) emit(r *record, action string) {
	now := time.Now()
	e.logEvent(r.id, action, now.UnixNano())
	if len(e.subs) == 0 {
		return
	}
	attrs := make(map[string]string, len(r.labels)+3)
	for k, v := range r.labels {
		attrs[k] = v
	}
	attrs["image"], attrs["name"] = r.image, r.name
	if action == "die" {
		attrs["exitCode"] = fmt.Sprint(r.exitCode)
	}
	m := events.Message{
		Type: events.ContainerEventType, Action: events.Action(action),
		Actor: events.Actor{ID: r.id, Attributes: attrs},
		Scope: "local", Time: now.Unix(), TimeNano: now.UnixNano(),
	}
	for s := range e.subs {
		select {
		case s.ch <- m:
		default:
			s.close()
			delete(e.subs, s)
		}
	}
}

func (e *Engine) subscribe() *subscriber {
	s := &subscriber{ch: make(chan events.Message, 64), gone: make(chan struct{})}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		s.close()
		return s
	}
	e.subs[s] = struct{}{}
	return s
}

func (e *Engine) unsubscribe(s *subscriber) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.subs, s)
	s.close()
}
