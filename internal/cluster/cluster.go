// Package cluster is shoal's built-in cluster: `shoal init` creates it (a
// root CA, join tokens, the replicated store), `shoal join --token` adds
// workers and managers, every node keeps mutual-TLS tunnels to the
// managers, and managers turn the node records of the store into the
// engine pool and serve swarm mode's node API over them.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
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
	Engine   string
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
	nodes   store.Collection[Node]
	started time.Time
	// renewFrac picks the renewal point in the 50–80% window (runAgents only).
	renewFrac float64

	mu       sync.Mutex
	cache    map[string]Node // node ID → record, refreshed by the sync loop
	lastSeen map[string]time.Time
	revoked  map[string]bool
	names    map[string]string // node ID → the hostname its engine last reported
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
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.DownAfter <= 0 {
		cfg.DownAfter = DownAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Cluster{cfg: cfg, log: cfg.Logger, cache: map[string]Node{}, lastSeen: map[string]time.Time{}, revoked: map[string]bool{}, names: map[string]string{},
		renewFrac: ca.RenewFraction()}, nil
}

func (c *Cluster) certDir() string   { return filepath.Join(c.cfg.DataDir, "certificates") }
func (c *Cluster) stateFile() string { return filepath.Join(c.cfg.DataDir, "state.json") }
func (c *Cluster) storeDir() string  { return filepath.Join(c.cfg.DataDir, "raft") }

// NodeID is this node's ID.
func (c *Cluster) NodeID() string { return c.st.NodeID }

// ClusterID is the cluster's ID.
func (c *Cluster) ClusterID() string { return c.st.ClusterID }

// IsManager says whether this node runs the manager side (store, API).
func (c *Cluster) IsManager() bool { return c.st.Role == RoleManager }

// IsLeader says whether this node's store member leads the replicated
// store: exactly one manager does, and never one cut off from the majority.
func (c *Cluster) IsLeader() bool { return c.store != nil && c.store.IsLeader() }

// ClusterAddr is this manager's cluster port as advertised.
func (c *Cluster) ClusterAddr() string { return c.st.ClusterAddr }

// Start creates, joins or reloads the node's identity and, on a manager,
// opens the store. It returns once the node can serve.
func (c *Cluster) Start(ctx context.Context) error {
	c.started = time.Now()
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
		c.nodes = store.NewCollection[Node](c.store, store.PrefixNodes)
		if c.cfg.Pool != nil {
			c.cfg.Pool.RegisterScheme("tunnel", func(ctx context.Context, id string) (net.Conn, error) {
				return c.tunnels.Endpoint(id).Dial(ctx)
			})
		}
		c.syncOnce(ctx)
	}
	return nil
}

// Close stops the store.
func (c *Cluster) Close() error {
	if c.tunnels != nil {
		c.tunnels.Close()
	}
	if c.store != nil {
		return c.store.Close()
	}
	return nil
}

func (c *Cluster) saveState() error { return c.saveStateOf(c.st) }

func (c *Cluster) saveStateOf(st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.stateFile(), b, 0o600)
}

func (c *Cluster) loadState() error {
	b, err := os.ReadFile(c.stateFile())
	if err != nil {
		return err
	}
	return json.Unmarshal(b, &c.st)
}

// listenPort is the cluster port number.
func (c *Cluster) listenPort() int {
	_, p, err := net.SplitHostPort(c.cfg.ListenAddr)
	if err != nil {
		return 2377
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return 2377
	}
	return n
}

func (c *Cluster) listenHost() string {
	h, _, _ := net.SplitHostPort(c.cfg.ListenAddr)
	return h
}

// storeConfig is this manager's store member.
func (c *Cluster) storeConfig(join []string) store.Config {
	port := c.listenPort()
	host := c.listenHost()
	if host == "" {
		host = "0.0.0.0"
	}
	dir := c.certDir()
	return store.Config{
		Name:             c.st.NodeID,
		Dir:              c.storeDir(),
		ClientURL:        fmt.Sprintf("https://%s", net.JoinHostPort(c.st.Addr, strconv.Itoa(port+1))),
		PeerURL:          fmt.Sprintf("https://%s", net.JoinHostPort(c.st.Addr, strconv.Itoa(port+2))),
		ListenClientURL:  fmt.Sprintf("https://%s", net.JoinHostPort(host, strconv.Itoa(port+1))),
		ListenPeerURL:    fmt.Sprintf("https://%s", net.JoinHostPort(host, strconv.Itoa(port+2))),
		TLS:              store.TLSFiles{CAFile: filepath.Join(dir, ca.RootCertFile), CertFile: filepath.Join(dir, ca.NodeCertFile), KeyFile: filepath.Join(dir, ca.NodeKeyFile)},
		AllowedHostnames: []string{string(ca.RoleManager)},
		Join:             join,
		ClusterToken:     c.st.ClusterID,
		WriteTimeout:     c.cfg.StoreWriteTimeout,
		Logger:           c.log,
	}
}

// advertise picks this node's address: the flag, the listen host, or
// the first non-loopback IPv4 address.
func (c *Cluster) advertise(fallback string) (string, error) {
	if c.cfg.AdvertiseAddr != "" {
		return c.cfg.AdvertiseAddr, nil
	}
	if h := c.listenHost(); h != "" && h != "0.0.0.0" && h != "::" {
		return h, nil
	}
	if fallback != "" {
		return fallback, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", errors.New("cluster: no address to advertise; use --advertise-addr")
}

// newID returns a swarm-style ID: 25 base36 characters.
func newID() string {
	n, _ := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(36), big.NewInt(25), nil))
	s := n.Text(36)
	for len(s) < 25 {
		s = "0" + s
	}
	return s
}

// initCluster creates a new cluster with this node as its first manager.
func (c *Cluster) initCluster(ctx context.Context) error {
	addr, err := c.advertise("")
	if err != nil {
		return err
	}
	clusterID := c.cfg.ClusterID
	if clusterID == "" {
		clusterID = newID()
	}
	root, err := ca.NewRootCA(clusterID, time.Now())
	if err != nil {
		return err
	}
	c.root = root
	c.st = state{NodeID: newID(), ClusterID: clusterID, Role: RoleManager, Addr: addr,
		ClusterAddr: net.JoinHostPort(addr, strconv.Itoa(c.listenPort()))}
	c.st.Managers = []string{c.st.ClusterAddr}
	life := c.cfg.CertExpiry
	if life <= 0 {
		life = ca.DefaultNodeLifetime
	}
	nc, err := root.IssueNode(ca.NodeRequest{NodeID: c.st.NodeID, Role: ca.RoleManager, Hosts: certHosts(ca.RoleManager, addr), Lifetime: life, AllowShort: true})
	if err != nil {
		return err
	}
	if err := c.saveIdentity(nc); err != nil {
		return err
	}
	s, err := store.Open(ctx, c.storeConfig(nil))
	if err != nil {
		return fmt.Errorf("cluster: open store: %w", err)
	}
	c.store = s
	tokens, err := ca.NewJoinTokens(root.CertPEM())
	if err != nil {
		return err
	}
	b, _ := json.Marshal(rootRecord{Cert: root.CertPEM(), Key: root.KeyPEM()})
	if err := s.Put(ctx, store.PrefixCA+"root", b); err != nil {
		return err
	}
	b, _ = json.Marshal(configRecord{NodeCertExpiry: life})
	if err := s.Put(ctx, store.PrefixCA+"config", b); err != nil {
		return err
	}
	b, _ = json.Marshal(tokensRecord{Tokens: tokens, Version: 1, Created: time.Now()})
	if err := s.Put(ctx, store.PrefixTokens+"current", b); err != nil {
		return err
	}
	now := time.Now().UTC()
	self := Node{ID: c.st.NodeID, Hostname: c.cfg.Hostname, Role: RoleManager, Availability: "active", Addr: addr,
		ClusterAddr: c.st.ClusterAddr, Version: 1, CreatedAt: now, UpdatedAt: now}
	if err := store.NewCollection[Node](s, store.PrefixNodes).Put(ctx, self.ID, self); err != nil {
		return err
	}
	c.log.Info("cluster initialised", "cluster", clusterID, "node", c.st.NodeID, "addr", c.st.ClusterAddr)
	return c.saveState()
}

// saveIdentity writes the root (with its key when held) and the node
// certificate, and loads the certificate for TLS.
func (c *Cluster) saveIdentity(nc ca.NodeCert) error {
	if err := ca.SaveRootCA(c.certDir(), c.root); err != nil {
		return err
	}
	if err := ca.SaveNodeCert(c.certDir(), nc); err != nil {
		return err
	}
	cert, err := nc.TLS()
	if err != nil {
		return err
	}
	c.kp = ca.NewKeypair(cert)
	return nil
}

// restart reloads a node from its data directory.
func (c *Cluster) restart(ctx context.Context) error {
	if err := c.loadState(); err != nil {
		return err
	}
	root, err := ca.LoadRootCAFrom(c.certDir())
	if err != nil {
		return err
	}
	c.root = root
	nc, err := ca.LoadNodeCertFrom(c.certDir())
	if err != nil {
		return err
	}
	cert, err := nc.TLS()
	if err != nil {
		return err
	}
	c.kp = ca.NewKeypair(cert)
	if !c.IsManager() {
		c.dropManagerFiles() // a demoted manager that stopped half-way
		c.log.Info("cluster node restarted", "node", c.st.NodeID, "role", c.st.Role)
		return nil
	}
	if c.root.CanSign() && c.renewIn() == 0 {
		// A manager that was down past its renewal point signs its own,
		// so its store peers accept it again.
		if err := c.reissueSelf(ctx); err != nil {
			return err
		}
	}
	joining := len(c.st.StoreJoin) > 0
	s, err := store.Open(ctx, c.storeConfig(c.st.StoreJoin))
	if err != nil {
		return fmt.Errorf("cluster: open store: %w", err)
	}
	c.store = s
	if joining {
		// Promoted: the root key comes from the store, as on a manager join.
		if err := c.loadRootKey(ctx); err != nil {
			return err
		}
		c.st.StoreJoin = nil
		if err := c.saveState(); err != nil {
			return err
		}
	}
	c.log.Info("cluster node restarted", "node", c.st.NodeID, "role", c.st.Role, "joined_store", joining)
	return nil
}

// loadRootKey reads the CA key managers share through the store.
func (c *Cluster) loadRootKey(ctx context.Context) error {
	kv, err := c.store.Get(ctx, store.PrefixCA+"root")
	if err != nil {
		return fmt.Errorf("cluster: read root CA: %w", err)
	}
	var rr rootRecord
	if err := json.Unmarshal(kv.Value, &rr); err != nil {
		return err
	}
	if c.root, err = ca.LoadRootCA(rr.Cert, rr.Key); err != nil {
		return err
	}
	return ca.SaveRootCA(c.certDir(), c.root)
}

// reissueSelf signs a fresh certificate for this manager with its own CA
// key, keeping the lifetime of the one it replaces.
func (c *Cluster) reissueSelf(ctx context.Context) error {
	life := ca.DefaultNodeLifetime
	if l := c.leaf(); l != nil {
		life = l.NotAfter.Sub(l.NotBefore) - 5*time.Minute // the backdate
	}
	nc, err := c.root.IssueNode(ca.NodeRequest{NodeID: c.st.NodeID, Role: ca.RoleManager, Hosts: certHosts(ca.RoleManager, c.st.Addr),
		Lifetime: max(life, ca.MinTestLifetime), AllowShort: true})
	if err != nil {
		return err
	}
	c.log.Info("certificate reissued locally at restart", "node", c.st.NodeID)
	return c.installCert(nc)
}
