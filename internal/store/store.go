// Package store is the built-in cluster's replicated state: an etcd member
// embedded in each manager, reached over mutual TLS with certificates from
// the cluster CA, with typed collections for the records shoal keeps there
// (Collection[T] for nodes, Services for services; join tokens and CA
// material as single keys).
package store

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// Errors returned by the store; test with errors.Is.
var (
	// ErrNoQuorum means this member cannot reach a majority, so it cannot
	// commit writes. Reads of the local copy keep working.
	// It is of errdefs' "unavailable" class, so the API edge answers 503
	// without knowing the store.
	ErrNoQuorum  = errdefs.ErrUnavailable.WithMessage("store: no quorum")
	ErrNotFound  = errors.New("store: key not found")
	ErrExists    = errors.New("store: key already exists")
	ErrConflict  = errors.New("store: key changed concurrently")
	ErrClosed    = errors.New("store: closed")
	ErrConfig    = errors.New("store: invalid configuration")
	ErrNoMember  = errors.New("store: no such member")
	ErrStartup   = errors.New("store: member did not start")
	ErrLastVoter = errors.New("store: cannot remove the last voting member")
)

// Timing defaults. They are etcd's own defaults for a LAN: a leader sends
// heartbeats every 100ms and a follower starts an election after 1s of
// silence, so a dead leader is replaced in roughly 1–2s.
const (
	DefaultHeartbeat       = 100 * time.Millisecond
	DefaultElectionTimeout = 1000 * time.Millisecond
	DefaultWriteTimeout    = 5 * time.Second
	DefaultStartTimeout    = 60 * time.Second
	DefaultProbeTimeout    = 1 * time.Second
)

// TLSFiles are PEM files issued by the cluster CA (internal/ca). The same
// manager certificate serves peers and clients and authenticates this
// member to the others.
type TLSFiles struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// Config describes one member.
type Config struct {
	// Name must be unique in the cluster; shoal uses the node ID.
	Name string
	// Dir holds the member's data. If it already holds data, Open restarts
	// the member from it and ignores Join.
	Dir string
	// PeerURL and ClientURL are advertised to the other members
	// (https://host:port); they are also listened on unless the Listen
	// fields say otherwise (e.g. https://0.0.0.0:2380 behind NAT).
	PeerURL, ClientURL             string
	ListenPeerURL, ListenClientURL string
	TLS                            TLSFiles
	// AllowedHostnames, when set, admits only peers and clients whose
	// certificate carries one of these names; shoal passes the manager role
	// ("swarm-manager") so a worker certificate cannot reach the store.
	AllowedHostnames []string
	// Join lists client URLs of current members. Empty starts a new
	// single-member cluster; otherwise this member joins as a learner and
	// is promoted to a voter once it has caught up.
	Join []string
	// Cipher, when set, encrypts every value at rest (see Cipher); all
	// members of a cluster must use the same key.
	Cipher Cipher
	// ClusterToken keeps separate clusters from talking to each other by
	// accident; shoal uses the cluster ID.
	ClusterToken string

	Heartbeat       time.Duration
	ElectionTimeout time.Duration
	// WriteTimeout bounds a write. A healthy cluster commits in
	// milliseconds, so a write that cannot commit in this time is reported
	// as ErrNoQuorum.
	WriteTimeout time.Duration
	StartTimeout time.Duration
	ProbeTimeout time.Duration

	Logger *slog.Logger
	// EtcdLogLevel is etcd's own log level (its logs go to stderr); default "error".
	EtcdLogLevel string
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Heartbeat, DefaultHeartbeat)
	def(&c.ElectionTimeout, DefaultElectionTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.StartTimeout, DefaultStartTimeout)
	def(&c.ProbeTimeout, DefaultProbeTimeout)
	if c.ListenPeerURL == "" {
		c.ListenPeerURL = c.PeerURL
	}
	if c.ListenClientURL == "" {
		c.ListenClientURL = c.ClientURL
	}
	if c.ClusterToken == "" {
		c.ClusterToken = "shoal"
	}
	if c.EtcdLogLevel == "" {
		c.EtcdLogLevel = "error"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	if c.Name == "" || c.Dir == "" {
		return fmt.Errorf("%w: name and data dir are required", ErrConfig)
	}
	for _, u := range []string{c.PeerURL, c.ClientURL, c.ListenPeerURL, c.ListenClientURL} {
		if _, err := parseHTTPS(u); err != nil {
			return err
		}
	}
	if c.TLS.CAFile == "" || c.TLS.CertFile == "" || c.TLS.KeyFile == "" {
		return fmt.Errorf("%w: TLS CA, certificate and key files are required", ErrConfig)
	}
	return nil
}

func parseHTTPS(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if u.Scheme != "https" || u.Port() == "" {
		return nil, fmt.Errorf("%w: %q: want https://host:port", ErrConfig, raw)
	}
	return u, nil
}

// Store is one running member plus a client bound to it.
type Store struct {
	cfg    Config
	etcd   *embed.Etcd
	client *clientv3.Client
	log    *slog.Logger

	closeOnce     sync.Once
	closed        chan struct{}
	noLeaderSince atomic.Int64 // unix nanoseconds; 0 while a leader is known
	ciph          atomic.Pointer[cipherBox]
	obs           observers // the metrics' hooks (observe.go)
}

// Close stops the client and the member; a leader hands leadership over first.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.client.Close()
		s.etcd.Close()
	})
	return nil
}

// Err reports a fatal error of the embedded member (e.g. a listener
// failing); the manager should stop when it fires.
func (s *Store) Err() <-chan error { return s.etcd.Err() }

// Name is this member's name.
func (s *Store) Name() string { return s.cfg.Name }

// Client exposes the underlying etcd client for uses the helpers do not
// cover (leases, elections); it talks to this member only.
func (s *Store) Client() *clientv3.Client { return s.client }
