// Package engine keeps a live, cached view of Docker engines: one loop per
// engine checks its health, follows its event stream and refreshes its
// containers, images, networks and volumes; the Pool holds them all.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/system"
)

// MinAPIVersion is the oldest engine API shoal manages.
const MinAPIVersion = "1.40"

// MaxAPIVersion is the newest API version shoal speaks to engines.
const MaxAPIVersion = "1.56"

// State is an engine's health as shoal sees it.
type State int

const (
	Pending State = iota
	Healthy
	Unhealthy
)

func (s State) String() string {
	switch s {
	case Healthy:
		return "Healthy"
	case Unhealthy:
		return "Unhealthy"
	}
	return "Pending"
}

// Options tune every engine loop of a pool.
type Options struct {
	RefreshInterval time.Duration // health check period
	ResyncInterval  time.Duration // full reload of containers/images/info
	FailureRetry    int           // consecutive failures before Unhealthy
	Timeout         time.Duration // per contact (connect, refresh); a health check: PingTimeout
	Logger          *slog.Logger
	// SubscriberBuffer is how many events a bus subscriber may fall
	// behind before it is cut off (default DefaultSubscriberBuffer).
	SubscriberBuffer int
	// PingRate bounds the health checks a second across the pool
	// (0: DefaultPingRate; negative: no bound).
	PingRate int
	// Loaded, when set, is called once, when every engine of the first
	// addresses the running pool was given has ended its first load,
	// loaded or failed: the cache then holds what the engines have, and
	// what the load allocated besides is garbage. It runs on the loop of
	// the engine that ended last, before that engine is marked Healthy.
	Loaded func()

	// loads bounds how many engines load their full state at once, so a
	// manager starting over a thousand engines does not peak in memory.
	loads chan struct{}
	// budget shares health checks and descriptors over the pool (budget.go).
	budget *budget
	// bus delivers state changes and engine events to Pool.Subscribe.
	bus *bus
	// specKeys are the label keys whose presence makes the cache keep a
	// container's create spec (Pool.KeepSpecs).
	spec *specKeys
	// firstLeft counts the first addresses' engines whose first load has
	// not ended yet (Loaded).
	firstLeft *atomic.Int64
}

type specKeys struct {
	mu   sync.RWMutex
	keys []string
}

func (o *Options) defaults() {
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = 60 * time.Second
	}
	if o.FailureRetry <= 0 {
		o.FailureRetry = 3
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// DefaultRefreshInterval is how often an engine's health is checked when
// Options leave it zero. With the default FailureRetry (3) an engine that
// stops answering (a hung dockerd: its kernel still accepts connections)
// is Unhealthy 6 to 8 s after it stopped: three checks in a row that each
// waited PingTimeout (2 s) in vain, the first up to one period after.
const DefaultRefreshInterval = 2 * time.Second

// minPingTimeout keeps very short refresh intervals (tests, simulations)
// from failing an engine that is merely busy for a moment.
const minPingTimeout = time.Second

// PingTimeout is how long a health check waits for /_ping: the refresh
// interval (a check that has not answered when the next one is due has
// failed), at least a second, at most Timeout. dockerd answers /_ping
// without work, so a busy engine still answers well within it; waiting
// the whole Timeout (made for connects and refreshes) three times is what
// made a hung engine take 17 s to be noticed.
func (o *Options) PingTimeout() time.Duration {
	return min(o.Timeout, max(o.RefreshInterval, minPingTimeout))
}

// Engine is one Docker engine of the pool and its cached state.
type Engine struct {
	Addr   string // as configured
	ID     string // node ID: stable, derived from the address
	IP     string
	client *Client
	opts   *Options

	mu         sync.RWMutex
	state      State
	failures   int
	failing    time.Time // the first failed contact of the failures in a row
	lastErr    string
	name       string
	info       *system.Info
	rawInfo    json.RawMessage // /info as the engine said it, for fields shoal does not model
	member     *MemberView     // a member shoal's leaves (member.go)
	version    string
	apiVersion string
	containers containerSet // by ID and by name (record.go)
	images     *imageList   // shared with engines that gave the same list (record.go)
	networks   []string
	volumes    []string
	updated    time.Time
	since      time.Time         // when state last changed
	avail      string            // "", "active", "pause" or "drain" (from discovery)
	ticket     uint64            // refreshes are numbered as they start...
	written    map[string]uint64 // ...and a container keeps the newest one's result
	gen        uint64            // bumped on every cache change
	changes    uint64            // event-driven changes begun (Lag, activity.go)
	unsure     uint64            // a refresh failed at this ticket: Lag says Behind until a later reload
	late       atomic.Bool       // a create's refresh finishing aside (apply.go)
	firstLoad  atomic.Bool       // one of the pool's first engines, its first load not ended (Options.Loaded)
	lagState                     // the rest of Lag (activity.go)
}

// NodeID derives a node ID from an engine address: engines cloned from one
// image share their engine ID, so the address is what keeps nodes apart.
func NodeID(addr string) string {
	sum := sha256.Sum256([]byte(addr))
	s := new(big.Int).SetBytes(sum[:]).Text(36)
	for len(s) < 25 {
		s = "0" + s
	}
	return s[:25]
}

func newEngine(addr string, c *Client, opts *Options) *Engine {
	e := &Engine{Addr: addr, ID: NodeID(addr), client: c, opts: opts}
	if c.network == "tcp" {
		host, _, _ := net.SplitHostPort(c.address)
		if ip := net.ParseIP(host); ip != nil {
			e.IP = ip.String()
		} else if ips, err := net.LookupHost(host); err == nil && len(ips) > 0 {
			e.IP = ips[0]
		}
	}
	return e
}

// Client is the engine's HTTP client (for forwarding).
func (e *Engine) Client() *Client { return e.client }

// State reports health, consecutive failures and the last error.
func (e *Engine) State() (State, string) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.state, e.lastErr
}

// Availability is what discovery says of the node: "active" (or ""),
// "pause" or "drain"; paused and drained nodes take no new containers.
func (e *Engine) Availability() string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.avail
}

func (e *Engine) setAvailability(a string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.avail != a {
		e.avail = a
		e.gen++
	}
}

// StateSince is when the engine entered its current state.
func (e *Engine) StateSince() time.Time {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.since
}

// DownSince is when the engine began to fail while it is not Healthy:
// its first failed contact in the run of failures that made it Unhealthy
// (or the change of state when none was counted); zero while Healthy.
func (e *Engine) DownSince() time.Time {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.state == Healthy {
		return time.Time{}
	}
	if !e.failing.IsZero() {
		return e.failing
	}
	return e.since
}

// Failing says whether the engine's last health check failed while it is
// still counted Healthy (it has not failed FailureRetry times yet): a call
// to it is likely to wait in vain.
func (e *Engine) Failing() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.state == Healthy && e.failures > 0
}

// Healthy says whether the engine takes new work.
func (e *Engine) Healthy() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.state == Healthy
}

// Name is the engine's hostname, or its address until it answered once.
func (e *Engine) Name() string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.name != "" {
		return e.name
	}
	return e.Addr
}

// Info is the engine's last /info (nil before first contact). Do not modify.
func (e *Engine) Info() *system.Info {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.info
}

// RawInfo is the engine's last /info as it sent it.
func (e *Engine) RawInfo() json.RawMessage {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.rawInfo
}

// Version is the engine's server version and API version.
func (e *Engine) Version() (server, api string) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.version, e.apiVersion
}

// APIPath prefixes path with the API version to use for this engine given
// the client's version (empty: the engine's own).
func (e *Engine) APIPath(clientVersion, path string) string {
	e.mu.RLock()
	v := e.apiVersion
	e.mu.RUnlock()
	if v == "" {
		return path
	}
	if clientVersion != "" && versionLess(clientVersion, v) {
		v = clientVersion
	}
	return "/v" + v + path
}

// Updated is when the cache last changed; Gen counts changes.
func (e *Engine) Gen() uint64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.gen
}

// Containers returns the cached containers. The records are shared: do not modify.
func (e *Engine) Containers() []*Container {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Clone(e.containers.byID)
}

// ContainerNamed returns the cached container named name ("web", as
// Container.Name gives it), or nil.
func (e *Engine) ContainerNamed(name string) *Container {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.containers.named(name)
}

// Container returns the cached container with exactly this ID.
func (e *Engine) Container(id string) *Container {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.containers.get(id)
}

// Images returns the cached images. Do not modify.
func (e *Engine) Images() []image.Summary {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.images == nil {
		return nil
	}
	return e.images.imgs
}

// NetworksVolumes returns the names of the engine's networks and volumes.
func (e *Engine) NetworksVolumes() (networks, volumes []string) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.networks, e.volumes
}

func (e *Engine) apiPath(path string) string { return e.APIPath("", path) }

func (e *Engine) setState(s State, errMsg string) {
	e.mu.Lock()
	old := e.state
	// A health check that finds a healthy engine healthy changes nothing:
	// bumping the generation then made info and the scheduler rebuild the
	// engine's summary and node view after every check.
	changed := old != s || e.lastErr != errMsg || e.failures != 0 || e.since.IsZero()
	e.state = s
	if old != s || e.since.IsZero() {
		e.since = time.Now()
	}
	e.lastErr = errMsg
	if s == Healthy {
		e.failures, e.failing = 0, time.Time{}
	} else if e.failing.IsZero() {
		e.failing = e.since
	}
	if changed {
		e.gen++
	}
	e.mu.Unlock()
	if old != s {
		e.opts.Logger.Info("engine state", "addr", e.Addr, "name", e.Name(), "from", old.String(), "to", s.String(), "error", errMsg)
		if e.opts.bus != nil {
			e.opts.bus.publish(Event{Engine: e, Time: time.Now(), Old: old, New: s})
		}
	}
}

// fail records a failed contact; after FailureRetry in a row the engine is Unhealthy.
func (e *Engine) fail(err error) State {
	e.mu.Lock()
	e.failures++
	if e.failures == 1 {
		e.failing = time.Now()
	}
	n := e.failures
	st := e.state
	// The error shows in the engine's summary (info), cached by generation:
	// a new one bumps it even while the engine keeps its state.
	if msg := err.Error(); msg != e.lastErr {
		e.lastErr = msg
		e.gen++
	}
	e.mu.Unlock()
	if n >= e.opts.FailureRetry && st != Unhealthy {
		e.setState(Unhealthy, err.Error())
		return Unhealthy
	}
	return st
}

// connect checks the engine answers the Docker API at a supported version
// and loads its info.
func (e *Engine) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	var v system.VersionResponse
	if err := e.client.JSON(ctx, "GET", "/version", nil, nil, &v); err != nil {
		return fmt.Errorf("engine %s does not answer the Docker API: %w", e.Addr, err)
	}
	if v.APIVersion == "" || versionLess(v.APIVersion, MinAPIVersion) {
		return fmt.Errorf("engine %s speaks API %q; shoal needs %s or newer", e.Addr, v.APIVersion, MinAPIVersion)
	}
	api := v.APIVersion
	if versionLess(MaxAPIVersion, api) {
		api = MaxAPIVersion
	}
	e.mu.Lock()
	e.version, e.apiVersion = v.Version, api
	e.mu.Unlock()
	return e.refreshInfo(ctx)
}

func (e *Engine) refreshInfo(ctx context.Context) error {
	var raw json.RawMessage
	if err := e.client.JSON(ctx, "GET", e.apiPath("/info"), nil, nil, &raw); err != nil {
		return err
	}
	var info system.Info
	if err := json.Unmarshal(raw, &info); err != nil {
		return fmt.Errorf("decoding /info: %w", err)
	}
	shareInfo(&info)
	e.mu.Lock()
	e.info = &info
	e.rawInfo = raw
	e.name = info.Name
	e.gen++
	e.mu.Unlock()
	return e.RefreshMember(ctx)
}

// Ping checks the engine answers /_ping within Options.PingTimeout.
func (e *Engine) Ping(ctx context.Context) error {
	// On a connection of its own (pinger.go), kept between checks only
	// while the pool's descriptors allow it (budget.go).
	status, err := e.client.ping(ctx, "/_ping", e.opts.PingTimeout(), e.opts.budget)
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("ping: status %d", status)
	}
	return nil
}

// Resync reloads everything the cache holds from the engine. The
// connections it used are closed when it ends instead of idling for
// IdleConnTimeout: between calls an engine holds its event stream and
// its health check's connection, no more (while 1,000 engines loaded,
// the kept connections of the ~300 loaded last idled together, ~4 an
// engine, each with its buffers and two goroutines).
func (e *Engine) Resync(ctx context.Context) error {
	defer e.client.closeIdle()
	if err := e.refreshInfo(ctx); err != nil {
		return err
	}
	if err := e.refreshContainers(ctx); err != nil {
		return err
	}
	if err := e.RefreshImages(ctx); err != nil {
		return err
	}
	return e.refreshNetworksVolumes(ctx)
}

// memberInspectConcurrency bounds the inspects in flight of one list
// refresh of a member shoal (inspectsAtOnce).
const memberInspectConcurrency = 8

// inspectsAtOnce is how many refreshes or inspects of one engine's
// containers one refresh runs at once: for an engine, no more than its
// client keeps connections (idleConnsPerEngine), so each is reused
// instead of dialed anew (a pool loads 32 engines at once: that is where
// its concurrency comes from); for a member shoal, which lists thousands
// of containers behind one address, more (one by one, or a few at a
// time, the first load of a member took minutes).
func (e *Engine) inspectsAtOnce() int {
	if e.IsShoal() {
		return memberInspectConcurrency
	}
	return idleConnsPerEngine
}

func (e *Engine) refreshContainers(ctx context.Context) error {
	e.mu.Lock()
	e.ticket++
	ticket := e.ticket
	e.mu.Unlock()
	list, err := e.List(ctx, ListOptions{All: true})
	if err != nil {
		return err
	}
	// Single refreshes write the cache meanwhile (under e.mu): read it so,
	// and see what they cached since the list (a create's own refresh).
	cached := func(id string) (*Container, bool) {
		e.mu.RLock()
		defer e.mu.RUnlock()
		c := e.containers.get(id)
		return c, c != nil
	}
	next := make(map[string]*Container, len(list))
	var lost []string // listed, not inspected, not cached then
	var nextMu sync.Mutex
	keep := func(c *Container) {
		nextMu.Lock()
		next[c.ID] = c
		nextMu.Unlock()
	}
	// Containers new to the cache are inspected a few at a time: a member
	// shoal lists thousands, each inspect a round trip through it, and one
	// by one the first load of a member took minutes.
	sem := make(chan struct{}, e.inspectsAtOnce())
	var wg sync.WaitGroup
	for _, c := range list {
		if prev, ok := cached(c.ID); ok && prev.State == c.State {
			c.CopyInspect(prev)
			keep(c)
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := e.inspectInto(ctx, c); err != nil {
				prev, ok := cached(c.ID)
				if errors.Is(err, ErrNotFound) {
					return // removed meanwhile
				}
				if !ok {
					// On the engine, not in the cache: a refresh
					// may cache it meanwhile (kept below).
					nextMu.Lock()
					lost = append(lost, c.ID)
					nextMu.Unlock()
					return
				}
				c.CopyInspect(prev) // a failed inspect must not drop a known container
			}
			keep(c)
		}()
	}
	wg.Wait()
	e.mu.Lock()
	// Single refreshes that started after this list are newer: keep theirs.
	written := map[string]uint64{}
	for id, t := range e.written {
		if t > ticket {
			written[id] = t
			if c := e.containers.get(id); c != nil {
				next[id] = c
			} else {
				delete(next, id)
			}
		}
	}
	e.written = written
	// A container the list showed and the reload could not inspect is
	// kept if a refresh cached it meanwhile; else the cache lacks one the
	// engine has until a later reload (Lag: Behind).
	if e.unsure != 0 && ticket > e.unsure {
		e.unsure = 0
	}
	for _, id := range lost {
		if c := e.containers.get(id); c != nil {
			next[id] = c
		} else if next[id] == nil {
			e.unsure = max(e.unsure, ticket)
		}
	}
	// A reload that drops a container the cache had counts as an
	// event-driven change (Lag): by the tickets above it drops none an
	// event added, but a lookup then asks the engine rather than trust it.
	for _, c := range e.containers.byID {
		if next[c.ID] == nil {
			e.changes++
			break
		}
	}
	e.containers = newContainerSet(next)
	e.updated = time.Now()
	e.gen++
	e.mu.Unlock()
	return nil
}

// inspectState is the State of a container's inspect, as inspectInto reads it.
type inspectState struct {
	Status                string
	StartedAt, FinishedAt time.Time
	ExitCode              int
	Pid                   int
	Error                 string
	Health                *struct{ Status string }
}

func (e *Engine) inspectInto(ctx context.Context, c *Container) error {
	var raw struct {
		Created    time.Time
		Config     rawRef // slices of the read buffer: used before it is reused
		HostConfig rawRef
		State      *inspectState
	}
	return e.client.JSONWith(ctx, "GET", e.apiPath("/containers/"+c.ID+"/json"), nil, func(b []byte) error {
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		e.inspected(c, raw.Created, json.RawMessage(raw.Config), json.RawMessage(raw.HostConfig), raw.State)
		return nil
	})
}

// inspected fills c from its inspect (inspectInto); it keeps nothing of
// config and hostConfig.
func (e *Engine) inspected(c *Container, created time.Time, config, hostConfig json.RawMessage, state *inspectState) {
	var ins struct {
		Config     *struct{ Env []string }
		HostConfig *struct {
			NanoCpus          int64
			CpuShares         int64
			Memory            int64
			MemoryReservation int64
		}
	}
	in := Inspected{}
	var started, finished time.Time
	if st := state; st != nil {
		c.setState(st.Status)
		started, finished, c.ExitCode = st.StartedAt, st.FinishedAt, st.ExitCode
		c.PID, in.Error = st.Pid, st.Error
		if st.Health != nil {
			c.HealthStatus = intern(st.Health.Status)
		}
	}
	c.SetTimes(started, finished, created)
	_ = json.Unmarshal(config, &ins.Config)
	_ = json.Unmarshal(hostConfig, &ins.HostConfig)
	if e.opts.keepSpec(c.Labels) && len(config) > 0 {
		if spec, err := specOf(config, hostConfig); err == nil {
			in.Spec = spec
		}
	}
	if h := ins.HostConfig; h != nil {
		in.NanoCPUs, in.CPUShares, in.Memory, in.MemoryReservation = h.NanoCpus, h.CpuShares, h.Memory, h.MemoryReservation
	}
	if ins.Config != nil {
		in.Env = ins.Config.Env
	}
	c.Inspected = internInspected(in)
}

// RefreshContainer reloads one container into the cache, or drops it if the
// engine no longer has it.
func (e *Engine) RefreshContainer(ctx context.Context, id string) error {
	e.refreshing.Add(1) // Lag: Behind while it runs
	defer e.refreshing.Add(-1)
	return e.refreshNoting(ctx, id)
}

// refreshNoting is refreshContainer, noting its failure for Lag: the
// cache may lack the container until a reload.
func (e *Engine) refreshNoting(ctx context.Context, id string) error {
	err := e.refreshContainer(ctx, id)
	if err != nil {
		e.mu.Lock()
		e.refreshFailed()
		e.mu.Unlock()
	}
	return err
}

// refreshContainer is RefreshContainer without its part in Lag (a
// create's refresh that gives up early finishes aside, apply.go).
func (e *Engine) refreshContainer(ctx context.Context, id string) error {
	// Two refreshes of one container may overlap (an event and a forwarded
	// call); the one that started last saw the newest state, so it wins.
	e.mu.Lock()
	e.ticket++
	e.changes++
	ticket := e.ticket
	e.mu.Unlock()
	list, err := e.List(ctx, ListOptions{All: true, Filters: map[string][]string{"id": {id}}})
	if err != nil {
		return err
	}
	var found *Container
	for _, c := range list {
		if c.ID == id {
			found = c
		}
	}
	if found != nil {
		// Only the engine saying so means it is gone: an engine failing
		// mid-refresh must not drop a container (it would never be
		// rescheduled).
		if err := e.inspectInto(ctx, found); errors.Is(err, ErrNotFound) {
			found = nil
		} else if err != nil {
			return err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.written == nil {
		e.written = map[string]uint64{}
	}
	if e.written[id] > ticket {
		return nil
	}
	if found == nil {
		e.containers.remove(id)
	} else {
		e.containers.put(found)
	}
	e.written[id] = ticket
	e.gen++
	return nil
}

// ForgetContainer drops a container from the cache (after a successful remove).
func (e *Engine) ForgetContainer(id string) {
	e.mu.Lock()
	e.containers.remove(id)
	if e.written == nil {
		e.written = map[string]uint64{}
	}
	e.ticket++
	e.changes++
	e.written[id] = e.ticket
	e.gen++
	e.mu.Unlock()
}

// RefreshImages reloads the engine's image list.
func (e *Engine) RefreshImages(ctx context.Context) error {
	var imgs *imageList
	if err := e.client.JSONWith(ctx, "GET", e.apiPath("/images/json"), nil, func(b []byte) (err error) {
		imgs, err = sharedImageList(b)
		return err
	}); err != nil {
		return err
	}
	e.mu.Lock()
	e.images = imgs
	e.gen++
	e.mu.Unlock()
	return nil
}

// RefreshNetworksVolumes reloads the names of the engine's networks and volumes.
func (e *Engine) RefreshNetworksVolumes(ctx context.Context) error {
	return e.refreshNetworksVolumes(ctx)
}

func (e *Engine) refreshNetworksVolumes(ctx context.Context) error {
	var nets []struct{ Name string }
	if err := e.client.JSON(ctx, "GET", e.apiPath("/networks"), nil, nil, &nets); err != nil {
		return err
	}
	var vols struct{ Volumes []struct{ Name string } }
	if err := e.client.JSON(ctx, "GET", e.apiPath("/volumes"), nil, nil, &vols); err != nil {
		return err
	}
	n := make([]string, 0, len(nets))
	for _, x := range nets {
		n = append(n, x.Name)
	}
	v := make([]string, 0, len(vols.Volumes))
	for _, x := range vols.Volumes {
		v = append(v, x.Name)
	}
	sort.Strings(n)
	sort.Strings(v)
	e.mu.Lock()
	e.networks, e.volumes = n, v
	e.gen++
	e.mu.Unlock()
	return nil
}

// run is the engine's life: connect, follow events, check health, resync;
// on trouble mark it and start over, until ctx ends.
func (e *Engine) run(ctx context.Context) {
	defer e.client.closePing()
	for ctx.Err() == nil {
		if err := e.session(ctx); err != nil && ctx.Err() == nil {
			aside(func() { // stream.go: this goroutine's stack stays small
				e.opts.Logger.Debug("engine session ended", "engine", e.Addr, "error", err)
				e.fail(err)
			})
			select {
			case <-ctx.Done():
			case <-time.After(e.opts.RefreshInterval):
			}
		}
	}
}

// session is one connected period of an engine. It waits most of the
// time and runs aside (stream.go) what it does in between, so that its
// goroutine, which lives as long as the engine is connected, keeps a small
// stack.
func (e *Engine) session(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer e.following.Store(false) // Lag: its events are no longer applied
	var evs <-chan json.RawMessage
	var errc <-chan error
	var err error
	aside(func() {
		evs, errc, err = e.load(sctx)
		e.firstLoadEnded()
		if err == nil && sctx.Err() == nil {
			// Lag: the cache is current but for the events read since
			// the stream opened (counted as they are read); a stream
			// (re)opened counts as an event-driven change.
			e.mu.Lock()
			e.changes++
			e.mu.Unlock()
			e.following.Store(true)
			e.setState(Healthy, "")
		}
	})
	if err != nil || sctx.Err() != nil {
		return err
	}

	// Health checks come every healthInterval ± 10%, on the pool's grid
	// (nextHealth: the checks due are made together, a few times a
	// second), resyncs every resyncInterval ± 10% (the first anywhere from
	// half of one to one and a half): engines that connected together are
	// not all checked or reloaded in the same instant.
	next := func() time.Duration { return e.opts.nextHealth(time.Now()) } // budget.go
	health := time.NewTimer(next())
	defer health.Stop()
	resync := time.NewTimer(e.opts.resyncInterval()/2 + rand.N(e.opts.resyncInterval()))
	defer resync.Stop()
	refreshNV := false
	for {
		var down error // set aside: why the session ends
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if err == nil {
				err = errors.New("event stream closed")
			}
			return err
		case raw := <-evs:
			aside(func() {
				nv, err := e.applyEvents(sctx, raw, evs) // apply.go: with those queued behind it
				refreshNV = refreshNV || nv
				down = err
			})
		case <-health.C:
			health.Reset(next())
			aside(func() {
				if err := e.Ping(sctx); err != nil {
					if e.fail(err) == Unhealthy {
						down = err
					}
					return
				}
				e.setState(Healthy, "")
				if refreshNV {
					refreshNV = false
					_ = e.refreshNetworksVolumes(sctx)
				}
			})
		case <-resync.C:
			resync.Reset(jitter(e.opts.resyncInterval()))
			aside(func() {
				rctx, rcancel := context.WithTimeout(sctx, 4*e.opts.Timeout+30*time.Second)
				defer rcancel()
				if err := e.Resync(rctx); err != nil && e.fail(err) == Unhealthy {
					down = err
				}
			})
		}
		if down != nil {
			return down
		}
	}
}

// firstLoadEnded counts the end of the engine's first load, if it is one
// of the pool's first engines, and calls Options.Loaded after the last.
func (e *Engine) firstLoadEnded() {
	if e.firstLoad.CompareAndSwap(true, false) {
		e.opts.firstLoadsLeft(-1)
	}
}

// firstLoadsLeft adds d to the first loads not ended yet, and calls
// Loaded when none is left.
func (o *Options) firstLoadsLeft(d int64) {
	if o.firstLeft.Add(d) == 0 && o.Loaded != nil {
		o.Loaded()
	}
}

// load connects, then opens the event stream and loads the engine's
// state holding one of the pool's load slots: engines waiting for their
// turn hold no event stream (ten thousand opened at once, with the
// connects' idle connections, went past the open-files limit while only
// 32 loaded). The connect comes first, outside the slots, so engines that
// do not answer (hung, unreachable) fail it without holding a slot.
func (e *Engine) load(ctx context.Context) (<-chan json.RawMessage, <-chan error, error) {
	if err := e.connect(ctx); err != nil {
		return nil, nil, err
	}
	if e.opts.loads != nil {
		select {
		case e.opts.loads <- struct{}{}:
		case <-ctx.Done():
			return nil, nil, nil
		}
		defer func() { <-e.opts.loads }()
	}
	evs, errc, err := e.openEvents(ctx)
	if err != nil {
		return nil, nil, err
	}
	rctx, rcancel := context.WithTimeout(ctx, 4*e.opts.Timeout+30*time.Second)
	defer rcancel()
	if err := e.Resync(rctx); err != nil {
		return nil, nil, err
	}
	return evs, errc, nil
}

// openEvents starts the engine's event stream and returns once the engine
// accepted it, so a resync right after misses nothing. The stream has a
// connection of its own (Client.openStream), closed when ctx ends; its
// events come undecoded (readEvents, stream.go).
func (e *Engine) openEvents(ctx context.Context) (<-chan json.RawMessage, <-chan error, error) {
	st, err := e.client.openStream(ctx, e.apiPath("/events"), e.opts.Timeout)
	if err != nil {
		return nil, nil, err
	}
	if st.StatusCode != 200 {
		defer st.Close()
		return nil, nil, ResponseError(st.Response)
	}
	// A read-ahead of 16 events: the session applies those queued
	// together as one batch (apply.go).
	out := make(chan json.RawMessage, 16)
	errc := make(chan error, 1)
	st.queued = new(atomic.Int64) // this stream's own: one ending late counts nowhere seen
	e.queued.Store(st.queued)
	go readEvents(ctx, st, out, errc)
	return out, errc, nil
}

// createRefreshWait bounds the refresh on a container's create event:
// dockerd answers the inspect of a container only once a start under way
// ends (it holds the container's lock), and starts take seconds on a busy
// node; events are applied one by one, so each create waiting out the
// whole Timeout held every later event back (tens of seconds behind for
// a service's tasks starting together). The start event that follows
// caches such a container.
var createRefreshWait = 250 * time.Millisecond // a var for tests

// apply updates the cache for one engine event; it reports whether
// networks or volumes changed. The session applies the events queued
// together as one batch (applyEvents, apply.go).
func (e *Engine) apply(ctx context.Context, m events.Message) bool {
	return e.applyAll(ctx, []events.Message{m})
}

// versionLess compares Docker API versions "1.41" < "1.50".
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// VersionLess reports whether API version a is older than b.
func VersionLess(a, b string) bool { return versionLess(a, b) }

// Do sends a request to the engine (its URL host is set here).
func (e *Engine) Do(req *http.Request) (*http.Response, error) { return e.client.Do(req) }

// Dial opens a raw connection to the engine, for hijacked streams.
func (e *Engine) Dial(ctx context.Context) (net.Conn, error) { return e.client.Dial(ctx) }

// specOf builds a create request body from an inspect's Config and HostConfig.
func specOf(config, hostConfig json.RawMessage) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(config, &obj); err != nil {
		return nil, err
	}
	delete(obj, "Hostname") // the old container's ID; let the new one have its own
	if len(hostConfig) > 0 {
		obj["HostConfig"] = hostConfig
	}
	return json.Marshal(obj)
}
