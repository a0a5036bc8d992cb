package discovery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"path"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// etcdStore keeps registrations on leases: one lease per key, kept alive by
// each Register call, so a key lives ttl after its last refresh.
type etcdStore struct {
	cli    *clientv3.Client
	mu     sync.Mutex
	leases map[string]clientv3.LeaseID
}

func newEtcd(hosts []string, tc *tls.Config) (*etcdStore, error) {
	scheme := "http://"
	if tc != nil {
		scheme = "https://"
	}
	var eps []string
	for _, h := range hosts {
		eps = append(eps, scheme+h)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            eps,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		TLS:                  tc,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("discovery: etcd %v: %w", hosts, err)
	}
	return &etcdStore{cli: cli, leases: map[string]clientv3.LeaseID{}}, nil
}

func (s *etcdStore) close() error { return s.cli.Close() }

func seconds(d time.Duration) int64 {
	return max(1, int64(math.Ceil(d.Seconds())))
}

func (s *etcdStore) snapshot(ctx context.Context, dir string) ([]string, func(context.Context) error, error) {
	resp, err := s.cli.Get(ctx, dir+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: etcd: %w", ErrNoStore, err)
	}
	var list []string
	for _, kv := range resp.Kvs {
		v := string(kv.Value)
		if v == "" {
			v = path.Base(string(kv.Key))
		}
		list = append(list, v)
	}
	rev := resp.Header.Revision
	wait := func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		for wr := range s.cli.Watch(ctx, dir+"/", clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
			if err := wr.Err(); err != nil {
				return fmt.Errorf("etcd watch: %w", err)
			}
			if len(wr.Events) > 0 {
				return nil
			}
		}
		return ctx.Err()
	}
	return sortedValues(list), wait, nil
}

func (s *etcdStore) register(ctx context.Context, key, value string, ttl time.Duration) error {
	s.mu.Lock()
	id, ok := s.leases[key]
	s.mu.Unlock()
	if ok {
		if _, err := s.cli.KeepAliveOnce(ctx, id); err != nil {
			if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
				return fmt.Errorf("%w: etcd: %w", ErrNoStore, err)
			}
			ok = false // expired while we could not reach the store
		}
	}
	put := !ok
	if !ok {
		g, err := s.cli.Grant(ctx, seconds(ttl))
		if err != nil {
			return fmt.Errorf("%w: etcd: %w", ErrNoStore, err)
		}
		id = g.ID
		s.mu.Lock()
		s.leases[key] = id
		s.mu.Unlock()
	} else {
		// Put only when needed: every put wakes every manager's watch.
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("%w: etcd: %w", ErrNoStore, err)
		}
		put = len(resp.Kvs) == 0 || string(resp.Kvs[0].Value) != value || clientv3.LeaseID(resp.Kvs[0].Lease) != id
	}
	if put {
		if _, err := s.cli.Put(ctx, key, value, clientv3.WithLease(id)); err != nil {
			return fmt.Errorf("%w: etcd: %w", ErrNoStore, err)
		}
	}
	return nil
}

func (s *etcdStore) deregister(ctx context.Context, key string) error {
	s.mu.Lock()
	id, ok := s.leases[key]
	delete(s.leases, key)
	s.mu.Unlock()
	if ok {
		_, err := s.cli.Revoke(ctx, id)
		if err == nil || errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return nil
		}
	}
	_, err := s.cli.Delete(ctx, key)
	return err
}

// elect runs one etcd session: a lease of ttl, a campaign and an observer.
// It returns when the session is lost (the lease expired while the store
// was away) or ctx ends, revoking the lease in the latter case.
func (s *etcdStore) elect(ctx context.Context, dir, me string, ttl time.Duration, leader func(string)) error {
	g, err := s.cli.Grant(ctx, seconds(ttl))
	if err != nil {
		return fmt.Errorf("%w: etcd: %w", ErrNoStore, err)
	}
	// The session's own context must outlive ctx: Close revokes with it.
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(g.ID), concurrency.WithTTL(int(seconds(ttl))), concurrency.WithContext(sctx))
	if err != nil {
		return err
	}
	defer sess.Close() // revokes the lease: the next candidate takes over now
	el := concurrency.NewElection(sess, dir)
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	campaign := make(chan error, 1)
	go func() { campaign <- el.Campaign(cctx, me) }()
	for {
		obs := el.Observe(cctx)
	observe:
		for {
			select {
			case resp, ok := <-obs:
				if !ok {
					break observe
				}
				if len(resp.Kvs) > 0 {
					leader(string(resp.Kvs[0].Value))
				}
			case err := <-campaign:
				if err != nil && ctx.Err() == nil {
					return fmt.Errorf("campaign: %w", err)
				}
			case <-sess.Done():
				return errors.New("etcd: election session lost")
			case <-ctx.Done():
				return nil
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		// The observer gave up on an error; the session may still be good.
		select {
		case <-sess.Done():
			return errors.New("etcd: election session lost")
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}
