// Package cluster is shoal's built-in cluster: `shoal init` creates it (a
// root CA, join tokens, the replicated store), `shoal join --token` adds
// workers and managers, every node keeps mutual-TLS tunnels to the
// managers, and managers turn the node records of the store into the
// engine pool and serve swarm mode's node API over them.
package cluster

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/internal/agent"
	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/engine"
	"github.com/shoal-dev/shoal/internal/store"
)

// Errors returned by this package; test with errors.Is.
var (
	ErrNotManager    = errors.New("cluster: this node is not a manager")
	ErrNoCluster     = errors.New("cluster: the data directory holds no cluster; run shoal init or shoal join")
	ErrAlreadyMember = errors.New("cluster: the data directory already holds a cluster node")
	ErrJoinRefused   = errors.New("cluster: join refused")
)

// DownAfter is how long a node's tunnels may be gone before it is Down:
// three missed 5 s heartbeats.
const DownAfter = 15 * time.Second

// Config describes this node. Init, Join or neither (restart from DataDir).
type Config struct {
	DataDir string
	// ListenAddr is the cluster port's listen address (default 0.0.0.0:2377);
	// the store uses the next two ports (client, peer).
	ListenAddr string
	// AdvertiseAddr is the IP other nodes reach this one at (default: the
	// first non-loopback address, or the one used to reach the manager).
	AdvertiseAddr string
	// Engine is the local engine (unix:///var/run/docker.sock by default).
	Engine string
	// Hostname is the node's name; empty: its engine's (or, if the
	// engine does not answer, this host's), asked at Start.
	Hostname string

	Init      bool
	Token     string // join token (with JoinAddr)
	JoinAddr  string // a manager's cluster port, host:port
	ClusterID string // for Init; random when empty

	// Pool receives every node's engine (managers only).
	Pool   *engine.Pool
	Logger *slog.Logger
	// Timing of the tunnels (zero: agent defaults) and of Down.
	Timing    agent.Timing
	DownAfter time.Duration
	// StoreWriteTimeout bounds a store write (store default when zero).
	StoreWriteTimeout time.Duration
	// CertExpiry is the validity of node certificates (Init; default
	// ca.DefaultNodeLifetime). The caller checks its floor.
	CertExpiry time.Duration
	// AutoLock (Init) wraps the managers' keys with an unlock key, asked
	// for at each restart (docker swarm init --autolock); UnlockKey starts
	// a locked manager without asking (lock.go).
	AutoLock  bool
	UnlockKey string
}

// Cluster is one node of the built-in cluster.
type Cluster struct {
	cfg   Config
	log   *slog.Logger
	st    state
	root  *ca.RootCA
	kp    *ca.Keypair
	store *store.Store // managers only

	tunnels *agent.Tunnels
	// The node's agents (one tunnel per manager) while they run, and
	// how its calls reach the managers (tunnelcalls.go).
	agentsNow   atomic.Pointer[agents]
	calls       atomic.Pointer[nodeCalls]
	tunnelCalls atomic.Int64 // node calls served through tunnels (tests)
	portConns   atomic.Int64 // HTTP connections open on the cluster port (tests)
	nodes       store.Collection[Node]
	started     time.Time
	// renewFrac picks the renewal point in the 50–80% window (runAgents only).
	renewFrac float64
	// maxLife is the lifetime the managers issue certificates for now
	// (nanoseconds; 0 unknown) and renewNow says a manager asked for a
	// renewal (a root rotation): both make renewal come sooner.
	maxLife  atomic.Int64
	renewNow atomic.Bool

	rootMu  sync.Mutex // serialises applyRoot
	rootRev int64      // store revision of the root record last applied

	listed nodesList // the records as last listed (nodeswatch.go)

	mu       sync.Mutex
	cache    map[string]Node // node ID → record, refreshed by the sync loop
	cacheRev int64           // the store revision cache reflects
	// cacheVersion fingerprints the records in cache (NodesVersion).
	cacheVersion uint64
	// mgrAddrs and peerAddrList are managerAddrs and peerAddrs of cache,
	// worked out once per sync pass: every node's calls answer them.
	mgrAddrs     []string
	peerAddrList []string
	lastSeen     map[string]time.Time
	names        map[string]string    // node ID → the hostname its engine last reported
	refused      map[string]time.Time // removed node ID → when its refusal was last logged

	left      chan struct{} // closed once this node left the cluster
	leaveOnce sync.Once

	secrets // the store's key and autolock (lock.go, keys.go)

	overlay overlayCache // the overlay networks' names (overlay.go)
	peers   peerCache    // node certificates verified (peers.go)
	wake    *wakes       // the nodes' calls woken on change (wake.go)
	// lifetime is certLifetime as the sync loop last read it.
	lifetime atomic.Int64
}

// New checks cfg; Start does the work.
func New(cfg Config) (*Cluster, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: no data directory", store.ErrConfig)
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "0.0.0.0:2377"
	}
	if cfg.Engine == "" {
		cfg.Engine = "unix:///var/run/docker.sock"
	}
	if cfg.DownAfter <= 0 {
		cfg.DownAfter = DownAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Cluster{cfg: cfg, log: cfg.Logger, cache: map[string]Node{}, lastSeen: map[string]time.Time{}, names: map[string]string{},
		refused: map[string]time.Time{}, left: make(chan struct{}), renewFrac: ca.RenewFraction(), wake: newWakes()}, nil
}

// NodeID is this node's ID.
func (c *Cluster) NodeID() string { return c.st.NodeID }

// ClusterID is the cluster's ID.
func (c *Cluster) ClusterID() string { return c.st.ClusterID }

// IsManager says whether this node runs the manager side (store, API).
func (c *Cluster) IsManager() bool { return c.st.Role == RoleManager }

// IsLeader says whether this node's store member leads the replicated
// store: exactly one manager does, and never one cut off from the majority.
func (c *Cluster) IsLeader() bool { return c.store != nil && c.store.IsLeader() }

// Store is the replicated store on a manager (nil on a worker), where
// services and tasks are kept; valid between Start and Close.
func (c *Cluster) Store() *store.Store { return c.store }

// RootPool is the pool of root certificates this node trusts now: the
// cluster's root, and during a root CA rotation the next root too. It
// changes with a rotation, so a listener should call it at each handshake.
func (c *Cluster) RootPool() *x509.CertPool { return c.root.Pool() }

// ClusterAddr is this manager's cluster port as advertised.
func (c *Cluster) ClusterAddr() string { return c.st.ClusterAddr }

// Start creates, joins or reloads the node's identity and, on a manager,
// opens the store. It returns once the node can serve.
func (c *Cluster) Start(ctx context.Context) error {
	c.started = time.Now()
	if c.cfg.Hostname == "" {
		c.cfg.Hostname = c.nodeHostname(ctx)
	}
	if err := os.MkdirAll(c.cfg.DataDir, 0o700); err != nil {
		return err
	}
	_, err := os.Stat(c.stateFile())
	exists := err == nil
	switch {
	case exists:
		// A node restarted with its data (init or join again) rejoins as
		// what it was; the token is not needed any more.
		err = c.restart(ctx)
	case c.cfg.Init:
		err = c.initCluster(ctx)
	case c.cfg.Token != "":
		err = c.join(ctx)
	default:
		return ErrNoCluster
	}
	if err != nil {
		return err
	}
	if c.IsManager() {
		c.tunnels = agent.NewTunnels(c.root, c.cfg.Timing, c.log)
		c.tunnels.ServeCalls(markTunnelCalls(c.tunnelCallsHandler(c.handler()))) // tunnelcalls.go
		c.nodes = store.NewCollection[Node](c.store, store.PrefixNodes)
		if c.cfg.Pool != nil {
			c.cfg.Pool.RegisterScheme("tunnel", func(ctx context.Context, id string) (net.Conn, error) {
				return c.tunnels.Dial(ctx, id) // not Endpoint(id): that builds an http.Transport per dial
			})
		}
		c.syncOnce(ctx)
	}
	return nil
}

// Close stops the store.
func (c *Cluster) Close() error {
	defer c.forgetKeys()
	if c.mem != nil {
		c.mem.close()
	}
	if c.tunnels != nil {
		c.tunnels.Close()
	}
	if c.store != nil {
		return c.store.Close()
	}
	return nil
}
