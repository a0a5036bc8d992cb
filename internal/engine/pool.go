package engine

import (
	"context"
	"crypto/tls"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
)

// Pool is the set of engines shoal manages. Discovery tells it the current
// addresses with Update; it starts and stops one loop per engine.
type Pool struct {
	opts Options
	tls  *tls.Config

	mu      sync.RWMutex
	ctx     context.Context
	engines map[string]*Engine // by address
	cancels map[string]context.CancelFunc
	pending []string
	started bool
	counted bool // the first addresses' loads are counted (Options.Loaded)
	wg      sync.WaitGroup
	list    []*Engine // sorted snapshot, rebuilt on change
	schemes map[string]func(ctx context.Context, address string) (net.Conn, error)
	calls   atomic.Pointer[CallObserver] // ObserveCalls (observe.go)
}

// RegisterScheme makes addresses "<scheme>://<address>" reach their engine
// through dial (the built-in cluster's agent tunnels use "tunnel://<node ID>").
// Call it before Update names such addresses.
func (p *Pool) RegisterScheme(scheme string, dial func(ctx context.Context, address string) (net.Conn, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.schemes == nil {
		p.schemes = map[string]func(ctx context.Context, address string) (net.Conn, error){}
	}
	p.schemes[scheme] = dial
}

func (p *Pool) newClient(addr string) (*Client, error) {
	if scheme, rest, ok := strings.Cut(addr, "://"); ok {
		if dial, ok := p.schemes[scheme]; ok {
			return p.observed(NewClientDial(rest, func(ctx context.Context) (net.Conn, error) { return dial(ctx, rest) }), addr), nil
		}
	}
	c, err := NewClient(addr, p.tls)
	return p.observed(c, addr), err
}

// NewPool returns an empty pool. tlsConf (may be nil) is used for tcp engines.
func NewPool(opts Options, tlsConf *tls.Config) *Pool {
	opts.defaults()
	opts.loads = make(chan struct{}, 32)
	opts.budget = newBudget()
	opts.bus = newBus(opts.SubscriberBuffer)
	opts.spec = &specKeys{}
	opts.firstLeft = new(atomic.Int64)
	return &Pool{opts: opts, tls: tlsConf, engines: map[string]*Engine{}, cancels: map[string]context.CancelFunc{}}
}

// KeepSpecs makes the cache keep the create spec (Container.Spec) of every
// container that carries any of these label keys, so it can be recreated
// elsewhere when its engine is lost. It is data, not a callback, so the
// pool depends on no consumer; the consumer (the rescheduler) still
// decides from the label's value. Call it before Run: a container already
// cached gets its spec at its next inspect.
func (p *Pool) KeepSpecs(keys ...string) {
	p.opts.spec.mu.Lock()
	defer p.opts.spec.mu.Unlock()
	p.opts.spec.keys = append(p.opts.spec.keys, keys...)
}

func (o *Options) keepSpec(labels map[string]string) bool {
	if o.spec == nil {
		return false
	}
	o.spec.mu.RLock()
	defer o.spec.mu.RUnlock()
	for _, k := range o.spec.keys {
		if _, ok := labels[k]; ok {
			return true
		}
	}
	return false
}

// Run starts the engines known so far and blocks until ctx ends, then stops them all.
func (p *Pool) Run(ctx context.Context) error {
	p.mu.Lock()
	p.ctx = ctx
	p.started = true
	pending := p.pending
	p.mu.Unlock()
	if pending != nil {
		p.Update(pending)
	}
	<-ctx.Done()
	p.mu.Lock()
	for _, c := range p.cancels {
		c()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// Update makes the pool hold exactly these engine addresses: new ones are
// added (Pending until they answer), missing ones stop and leave.
func (p *Pool) Update(addrs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started {
		p.pending = append([]string(nil), addrs...)
		return
	}
	want := map[string]bool{}
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		want[a] = true
	}
	p.opts.budget.setEngines(len(want))
	// The first addresses' engines are counted until each has ended its
	// first load (Options.Loaded); one more count, held until all of them
	// are started, keeps Loaded from coming before the last is counted.
	first := !p.counted && len(want) > 0
	if first {
		p.counted = true
		p.opts.firstLoadsLeft(1)
	}
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if _, ok := p.engines[a]; ok || a == "" {
			continue
		}
		c, err := p.newClient(a)
		if err != nil {
			p.opts.Logger.Error("bad engine address", "addr", a, "error", err)
			continue
		}
		e := newEngine(a, c, &p.opts)
		if first {
			e.firstLoad.Store(true)
			p.opts.firstLoadsLeft(1)
		}
		ctx, cancel := context.WithCancel(p.ctx)
		p.engines[a] = e
		p.cancels[a] = cancel
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			e.run(ctx)
		}()
		p.opts.Logger.Info("engine added", "addr", a)
	}
	if first {
		p.opts.firstLoadsLeft(-1)
	}
	for a, e := range p.engines {
		if !want[a] {
			e.firstLoadEnded() // a first engine removed before it loaded
			p.cancels[a]()
			delete(p.engines, a)
			delete(p.cancels, a)
			p.opts.Logger.Info("engine removed", "addr", a, "name", e.Name())
		}
	}
	p.rebuild()
}

func (p *Pool) rebuild() {
	list := make([]*Engine, 0, len(p.engines))
	for _, e := range p.engines {
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Addr < list[j].Addr })
	p.list = list
}

// SetAvailability records what discovery says of the engine at addr:
// "active", "pause" or "drain" (swarm-mode discovery reports it).
func (p *Pool) SetAvailability(addr, availability string) {
	p.mu.RLock()
	e := p.engines[strings.TrimSpace(addr)]
	p.mu.RUnlock()
	if e != nil {
		e.setAvailability(availability)
	}
}

// Add puts one engine into a running pool (used by tests and simulations).
func (p *Pool) Add(addr string) {
	p.mu.RLock()
	addrs := make([]string, 0, len(p.engines)+1)
	for a := range p.engines {
		addrs = append(addrs, a)
	}
	p.mu.RUnlock()
	p.Update(append(addrs, addr))
}

// Engines returns every engine, ordered by address. Do not modify the slice.
func (p *Pool) Engines() []*Engine {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.list
}

// Healthy returns the engines that take work now.
func (p *Pool) Healthy() []*Engine {
	var out []*Engine
	for _, e := range p.Engines() {
		if e.Healthy() {
			out = append(out, e)
		}
	}
	return out
}

// Timeout is how long one contact with an engine may take (Options.Timeout).
func (p *Pool) Timeout() time.Duration { return p.opts.Timeout }

// PingTimeout is how long a health check waits for an engine's answer
// (Options.PingTimeout).
func (p *Pool) PingTimeout() time.Duration { return p.opts.PingTimeout() }

// Node finds an engine by node ID, unique ID prefix, hostname or address.
func (p *Pool) Node(ref string) (*Engine, error) {
	var byName, byPrefix []*Engine
	for _, e := range p.Engines() {
		if e.ID == ref || e.Addr == ref {
			return e, nil
		}
		if e.Name() == ref {
			byName = append(byName, e)
		} else if strings.HasPrefix(e.ID, ref) {
			byPrefix = append(byPrefix, e)
		}
	}
	switch {
	case len(byName) == 1:
		return byName[0], nil
	case len(byName) > 1:
		return nil, errdefs.ErrInvalidArgument.WithMessage("node name " + ref + " is ambiguous: " + strconv.Itoa(len(byName)) + " nodes have it; use the node ID")
	case len(byPrefix) == 1:
		return byPrefix[0], nil
	case len(byPrefix) > 1:
		return nil, errdefs.ErrInvalidArgument.WithMessage("node " + ref + " is ambiguous (" + strconv.Itoa(len(byPrefix)) + " matches found)")
	}
	return nil, errdefs.ErrNotFound.WithMessage("node " + ref + " not found")
}
