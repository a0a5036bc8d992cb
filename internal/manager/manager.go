// Package manager is shoal's cluster brain: it implements the Docker API
// backend over the engine pool, finding the engine that owns each object,
// placing new containers through the scheduler, and merging lists and info.
package manager

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/scheduler"
)

// Placer chooses a node for a container (the scheduler).
type Placer interface {
	Place(req *scheduler.Request, nodes []*scheduler.Node) (*scheduler.Node, error)
}

// Config wires a Manager.
type Config struct {
	Pool     *engine.Pool
	Placer   Placer
	Strategy string // shown in info
	// RescheduleAfter is how long a node must stay unhealthy before its
	// containers with the on-node-failure policy are recreated elsewhere
	// (DefaultRescheduleAfter if zero).
	RescheduleAfter time.Duration
	Version         string
	Logger          *slog.Logger
	// Cluster, when set, is the built-in cluster: nodes, swarm and node
	// labels come from it (nil: classic mode, engines listed as nodes).
	Cluster Cluster
	// LocalSwarm (shoal manage with a store of its own) makes /info show an
	// active swarm manager, as the docker CLI wants before a stack deploy.
	LocalSwarm bool
	// Name is this shoal's name in /info and above it in a federation
	// (default: the host's name). Labels are its own labels: shown in
	// /info, and held by every node in it for placement (federation.go).
	Name   string
	Labels map[string]string
}

// Manager implements dockerapi.Backend over an engine pool.
type Manager struct {
	cfg  Config
	pool *engine.Pool
	log  *slog.Logger

	mu       sync.Mutex // placement and name reservations
	names    map[string]bool
	pending  map[string][]scheduler.Container // node ID → placed, not yet cached
	placedOn map[string]string                // pending entry ID → its node ID (a member's leaf)
	created  map[string]string                // pending entry ID → the container's ID, once created
	seq      uint64                           // numbers pending entries
	snaps    map[string]*snap                 // node ID → scheduler view at a cache generation
	view     poolView                         // the last snapshot, kept for the next (snapshot.go)

	infoMu    sync.Mutex
	infos     map[string]*engineInfo
	infoCache infoCache // info_cache.go

	execMu sync.Mutex
	execs  map[string]execEntry

	lag lagTracker // whose cache may lag, for lookups that miss (lookup_lag.go)

	engineNets keyLock // one ensureEngineNetwork per engine and network at a time

	kernel string
}

type execEntry struct {
	e    *engine.Engine
	seen time.Time
}

type snap struct {
	gen    uint64
	node   *scheduler.Node
	leaves []*scheduler.Node // a member's, one per inner node (federation.go)
	nl     map[string]string // the node labels (built-in cluster) the views hold
}

// DefaultRescheduleAfter is RescheduleAfter when the config leaves it zero
// (shoal init and join have no flag for it).
const DefaultRescheduleAfter = 10 * time.Second

// New returns a Manager over cfg.Pool.
func New(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RescheduleAfter <= 0 {
		cfg.RescheduleAfter = DefaultRescheduleAfter
	}
	m := &Manager{
		cfg: cfg, pool: cfg.Pool, log: cfg.Logger,
		names:    map[string]bool{},
		pending:  map[string][]scheduler.Container{},
		placedOn: map[string]string{},
		snaps:    map[string]*snap{},
		execs:    map[string]execEntry{},
		infos:    map[string]*engineInfo{},
	}
	if cfg.Pool != nil {
		// The rescheduler recreates these from their kept spec.
		cfg.Pool.KeepSpecs(scheduler.LabelReschedule)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	return m
}

// Run does the manager's housekeeping until ctx ends. The cluster-wide
// loops are separate components run only by the leader (Rescheduler).
// It returns once its lag watcher has stopped too.
func (m *Manager) Run(ctx context.Context) error {
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		m.lag.watch(ctx, m.pool)
	}()
	defer func() { <-watched }()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.expireExecs(time.Now().Add(-time.Hour))
		}
	}
}

// KernelVersion is the manager host's kernel.
func (m *Manager) KernelVersion() string { return m.kernel }

func (m *Manager) expireExecs(before time.Time) {
	m.execMu.Lock()
	defer m.execMu.Unlock()
	for id, x := range m.execs {
		if x.seen.Before(before) {
			delete(m.execs, id)
		}
	}
}
