package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Open starts this member: restarting from Dir if it holds data, creating a
// new cluster if cfg.Join is empty, or otherwise joining the cluster at
// cfg.Join as a learner and returning once promoted to a voter. It blocks
// until the member serves requests, which needs a quorum.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()

	ecfg, err := embedConfig(cfg)
	if err != nil {
		return nil, err
	}
	var learnerID uint64
	switch {
	case hasData(cfg.Dir):
		ecfg.ClusterState = embed.ClusterStateFlagExisting
		cfg.Logger.Info("store: restarting member from its data", "name", cfg.Name, "dir", cfg.Dir)
	case len(cfg.Join) > 0:
		learnerID, ecfg.InitialCluster, err = addLearner(ctx, cfg)
		if err != nil {
			return nil, err
		}
		ecfg.ClusterState = embed.ClusterStateFlagExisting
		cfg.Logger.Info("store: joining as learner", "name", cfg.Name, "id", fmt.Sprintf("%x", learnerID))
	default:
		ecfg.ClusterState = embed.ClusterStateFlagNew
		cfg.Logger.Info("store: creating cluster", "name", cfg.Name)
	}
	s, err := start(ctx, cfg, ecfg)
	if err != nil {
		return nil, err
	}
	if learnerID != 0 {
		if err := s.promote(ctx, learnerID); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func hasData(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "member", "wal"))
	return err == nil
}

func embedConfig(cfg Config) (*embed.Config, error) {
	e := embed.NewConfig()
	e.Name = cfg.Name
	e.Dir = cfg.Dir
	e.TickMs = uint(cfg.Heartbeat / time.Millisecond)
	e.ElectionMs = uint(cfg.ElectionTimeout / time.Millisecond)
	e.InitialClusterToken = cfg.ClusterToken
	e.InitialCluster = cfg.Name + "=" + cfg.PeerURL
	e.LogLevel = cfg.EtcdLogLevel
	e.LogOutputs = []string{"stderr"}
	e.AutoCompactionMode = "revision"
	e.AutoCompactionRetention = "10000"
	e.PreVote = true
	urls, err := parseURLs(cfg.PeerURL, cfg.ClientURL, cfg.ListenPeerURL, cfg.ListenClientURL)
	if err != nil {
		return nil, err
	}
	e.AdvertisePeerUrls, e.AdvertiseClientUrls = urls[0:1], urls[1:2]
	e.ListenPeerUrls, e.ListenClientUrls = urls[2:3], urls[3:4]
	e.PeerTLSInfo = serverTLSInfo(cfg)
	// Peers are authenticated by the cluster CA and the manager role in
	// their certificate, not by the source address of their connection,
	// which NAT or a second interface may change.
	e.PeerTLSInfo.SkipClientSANVerify = true
	e.ClientTLSInfo = serverTLSInfo(cfg)
	return e, nil
}

func serverTLSInfo(cfg Config) transport.TLSInfo {
	return transport.TLSInfo{
		CertFile:         cfg.TLS.CertFile,
		KeyFile:          cfg.TLS.KeyFile,
		TrustedCAFile:    cfg.TLS.CAFile,
		ClientCertAuth:   true,
		AllowedHostnames: cfg.AllowedHostnames,
	}
}

func parseURLs(raw ...string) ([]url.URL, error) {
	out := make([]url.URL, 0, len(raw))
	for _, r := range raw {
		u, err := parseHTTPS(r)
		if err != nil {
			return nil, err
		}
		out = append(out, *u)
	}
	return out, nil
}

// start runs the embedded member and waits until it serves clients.
func start(ctx context.Context, cfg Config, ecfg *embed.Config) (*Store, error) {
	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStartup, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("%w: %w", ErrStartup, err)
	case <-ctx.Done():
		e.Server.HardStop()
		e.Close()
		return nil, fmt.Errorf("%w: not ready (no quorum?): %w", ErrStartup, ctx.Err())
	}
	client, err := newClient(cfg, []string{cfg.ClientURL})
	if err != nil {
		e.Close()
		return nil, err
	}
	s := &Store{cfg: cfg, etcd: e, client: client, log: cfg.Logger, closed: make(chan struct{})}
	if cfg.Cipher != nil {
		s.SetCipher(cfg.Cipher)
	}
	go s.trackLeader()
	return s, nil
}

func newClient(cfg Config, endpoints []string) (*clientv3.Client, error) {
	info := transport.TLSInfo{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, TrustedCAFile: cfg.TLS.CAFile}
	tlsCfg, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("store: client TLS: %w", err)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  tlsCfg,
		DialTimeout:          cfg.ElectionTimeout * 2,
		DialKeepAliveTime:    cfg.ElectionTimeout * 2,
		DialKeepAliveTimeout: cfg.ElectionTimeout * 2,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("store: client: %w", err)
	}
	return c, nil
}

// addLearner registers this member with the existing cluster as a learner
// (reusing a registration left by an earlier attempt that never started)
// and returns its ID and the initial-cluster string etcd needs to start.
func addLearner(ctx context.Context, cfg Config) (uint64, string, error) {
	c, err := newClient(cfg, cfg.Join)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	list, err := c.MemberList(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("store: join %v: list members: %w", cfg.Join, mapErr(err))
	}
	members := list.Members
	var id uint64
	for _, m := range members {
		if !slices.Contains(m.PeerURLs, cfg.PeerURL) {
			continue
		}
		if m.Name != "" {
			return 0, "", fmt.Errorf("%w: peer URL %s already belongs to member %q; remove it first", ErrExists, cfg.PeerURL, m.Name)
		}
		id = m.ID
	}
	if id == 0 {
		resp, err := memberAdd(ctx, c, cfg)
		if err != nil {
			return 0, "", fmt.Errorf("store: join %v: add learner: %w", cfg.Join, mapErr(err))
		}
		id, members = resp.Member.ID, resp.Members
	}
	var parts []string
	for _, m := range members {
		name := m.Name
		if m.ID == id {
			name = cfg.Name
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, name+"="+u)
		}
	}
	return id, strings.Join(parts, ","), nil
}

// memberAdd adds the learner, waiting while the leader calls the cluster
// unhealthy: etcd refuses a new member until the leader has been connected
// to a quorum for 5s, so a manager joining right after another one waits.
func memberAdd(ctx context.Context, c *clientv3.Client, cfg Config) (*clientv3.MemberAddResponse, error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := c.MemberAddAsLearner(ctx, []string{cfg.PeerURL})
		if !errors.Is(err, rpctypes.ErrUnhealthy) {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-tick.C:
		}
	}
}

// promote turns this learner into a voter, retrying while the leader says
// it has not caught up yet. It goes through the members at cfg.Join: a
// learner's own endpoint refuses all but serializable reads.
func (s *Store) promote(ctx context.Context, id uint64) error {
	c, err := newClient(s.cfg, s.cfg.Join)
	if err != nil {
		return err
	}
	defer c.Close()
	tick := time.NewTicker(s.cfg.Heartbeat * 2)
	defer tick.Stop()
	for {
		_, err := c.MemberPromote(ctx, id)
		if err == nil {
			s.log.Info("store: promoted to voter", "name", s.cfg.Name)
			return s.waitVoter(ctx)
		}
		if !errors.Is(err, rpctypes.ErrMemberLearnerNotReady) {
			return fmt.Errorf("store: promote %x: %w", id, mapErr(err))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: promote %x: %w", id, ctx.Err())
		case <-tick.C:
		}
	}
}

// waitVoter waits until this member has applied its own promotion: until
// then it still refuses writes as a learner.
func (s *Store) waitVoter(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.Heartbeat / 2)
	defer tick.Stop()
	for s.etcd.Server.IsLearner() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: apply promotion: %w", ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}
