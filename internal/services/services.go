// Package services serves swarm mode's service and task API over shoal's
// store: it validates and normalizes service specs as swarm mode does,
// keeps the service records (the orchestrator turns them into tasks and
// containers), filters services and tasks as dockerd does, and merges the
// logs of a service's task containers from the engines that run them.
package services

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// Engines is what the backend needs of the engines: checking an image
// before a create and reading task containers' logs. Node IDs are the IDs
// `docker node ls` shows through shoal (Task.NodeID).
type Engines interface {
	// CheckImage says whether some node holds image or can pull it (with
	// the client's encoded registry auth, "" for none): nil if so, an
	// errdefs not-found error saying why if no node has it and no node
	// can pull it, any other error when that could not be found out.
	CheckImage(ctx context.Context, image, encodedAuth string) error
	// ResolveNode is the ID of the node ref names (ID, unique ID prefix
	// or hostname), or an errdefs not-found error.
	ResolveNode(ctx context.Context, ref string) (string, error)
	// ContainerLogs opens GET /containers/{id}/logs on the node with the
	// query q, and returns the engine's stream (multiplexed unless the
	// container has a TTY).
	ContainerLogs(ctx context.Context, nodeID, containerID string, q url.Values) (io.ReadCloser, error)
}

// Refs checks a service's secret and config references (internal/secrets).
type Refs interface {
	CheckRefs(ctx context.Context, c *swarm.ContainerSpec) error
}

// Config wires a Backend.
type Config struct {
	Store   *store.Store
	Engines Engines
	// Refs checks secret and config references (nil: every one is
	// refused as missing).
	Refs   Refs
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// LogRetry is how often a followed task's logs are asked for again
	// while its node is down (0: DefaultLogRetry).
	LogRetry time.Duration
}

// DefaultLogRetry is Config.LogRetry when left zero.
const DefaultLogRetry = 2 * time.Second

// Backend serves the service and task calls (dockerapi.Services).
type Backend struct {
	st       *store.Store
	services store.Services
	networks store.Networks // the cluster networks, where the VIPs are (vip.go)
	tasks    store.Tasks
	ports    store.Ports // published ports being claimed (ports.go)
	engines  Engines
	refs     Refs
	log      *slog.Logger
	now      func() time.Time
	logRetry time.Duration

	// createMu serializes this manager's creates, so two creates of one
	// name through it cannot both pass the name check (creates through
	// two managers are caught after the write: see create).
	createMu sync.Mutex
}

// New returns the backend over cfg.Store.
func New(cfg Config) *Backend {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LogRetry <= 0 {
		cfg.LogRetry = DefaultLogRetry
	}
	return &Backend{
		st:       cfg.Store,
		services: store.NewServices(cfg.Store),
		networks: store.NewNetworks(cfg.Store),
		tasks:    store.NewTasks(cfg.Store),
		ports:    store.NewPorts(cfg.Store),
		engines:  cfg.Engines,
		refs:     cfg.Refs,
		log:      cfg.Logger,
		now:      cfg.Now,
		logRetry: cfg.LogRetry,
	}
}
