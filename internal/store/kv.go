package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// KV is one key with its value and the revision that last changed it.
type KV struct {
	Key      string
	Value    []byte
	Revision int64
}

// ReadOption changes how a read is served.
type ReadOption func(*readOpts)

type readOpts struct{ linearizable bool }

// Linearizable makes a read go through the leader, so it sees every write
// acknowledged before it started; it fails with ErrNoQuorum without a quorum.
// Reads are otherwise served from this member's copy, which keeps working
// (possibly stale) when the cluster has lost its quorum.
func Linearizable() ReadOption { return func(o *readOpts) { o.linearizable = true } }

// readOps turns read options into etcd options. A linearizable read needs
// the leader, so like a write it is bounded by the write timeout and fails
// at once when this member knows no leader.
func (s *Store) readOps(ctx *context.Context, opts []ReadOption) ([]clientv3.OpOption, context.CancelFunc) {
	var o readOpts
	for _, f := range opts {
		f(&o)
	}
	if !o.linearizable {
		return []clientv3.OpOption{clientv3.WithSerializable()}, func() {}
	}
	var cancel context.CancelFunc
	*ctx, cancel = context.WithTimeout(clientv3.WithRequireLeader(*ctx), s.cfg.WriteTimeout)
	return nil, cancel
}

// Get returns the value at key, or ErrNotFound.
func (s *Store) Get(ctx context.Context, key string, opts ...ReadOption) (KV, error) {
	if err := s.alive(); err != nil {
		return KV{}, err
	}
	ops, cancel := s.readOps(&ctx, opts)
	defer cancel()
	resp, err := s.client.Get(ctx, key, ops...)
	if err != nil {
		return KV{}, fmt.Errorf("store: get %s: %w", key, mapErr(err))
	}
	if len(resp.Kvs) == 0 {
		return KV{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	kv := resp.Kvs[0]
	return s.kvOf(kv.Key, kv.Value, kv.ModRevision)
}

// List returns every key under prefix, sorted by key, and the store
// revision it reflects: watch from revision+1 to follow changes without a gap.
func (s *Store) List(ctx context.Context, prefix string, opts ...ReadOption) ([]KV, int64, error) {
	if err := s.alive(); err != nil {
		return nil, 0, err
	}
	ops, cancel := s.readOps(&ctx, opts)
	defer cancel()
	ops = append(ops, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	resp, err := s.client.Get(ctx, prefix, ops...)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list %s: %w", prefix, mapErr(err))
	}
	out := make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		if out[i], err = s.kvOf(kv.Key, kv.Value, kv.ModRevision); err != nil {
			return nil, 0, err
		}
	}
	return out, resp.Header.Revision, nil
}

// Put sets key to value.
func (s *Store) Put(ctx context.Context, key string, value []byte) error {
	stored, err := s.encrypt(key, value)
	if err != nil {
		return err
	}
	return s.write(ctx, "put "+key, func(ctx context.Context) error {
		_, err := s.client.Put(ctx, key, stored)
		return err
	})
}

// Create sets key only if it does not exist, else ErrExists. It returns
// the revision of the write.
func (s *Store) Create(ctx context.Context, key string, value []byte) (int64, error) {
	stored, err := s.encrypt(key, value)
	if err != nil {
		return 0, err
	}
	var rev int64
	err = s.write(ctx, "create "+key, func(ctx context.Context) error {
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, stored)).
			Commit()
		switch {
		case err != nil:
			return err
		case !resp.Succeeded:
			return ErrExists
		}
		rev = resp.Header.Revision
		return nil
	})
	return rev, err
}

// Delete removes key, or returns ErrNotFound.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.write(ctx, "delete "+key, func(ctx context.Context) error {
		resp, err := s.client.Delete(ctx, key)
		if err == nil && resp.Deleted == 0 {
			return ErrNotFound
		}
		return err
	})
}

// Replace sets key to value only if key last changed at revision rev (as
// read by Get or List), so a writer never overwrites a change it has not
// seen: ErrConflict if key changed since, ErrNotFound if it is gone. It
// returns the revision of the write.
func (s *Store) Replace(ctx context.Context, key string, rev int64, value []byte) (int64, error) {
	stored, err := s.encrypt(key, value)
	if err != nil {
		return 0, err
	}
	var newRev int64
	err = s.write(ctx, "replace "+key, func(ctx context.Context) error {
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, stored)).
			Else(clientv3.OpGet(key, clientv3.WithCountOnly())).
			Commit()
		switch {
		case err != nil:
			return err
		case resp.Succeeded:
			newRev = resp.Header.Revision
			return nil
		case resp.Responses[0].GetResponseRange().Count == 0:
			return ErrNotFound
		}
		return ErrConflict
	})
	return newRev, err
}

// maxUpdateAttempts bounds Update's optimistic retries under contention.
const maxUpdateAttempts = 10

// Update applies fn to the current value of key (exists false when absent)
// and writes the result only if nobody changed key in between, retrying
// with the fresh value otherwise. fn may run several times.
func (s *Store) Update(ctx context.Context, key string, fn func(cur []byte, exists bool) ([]byte, error)) error {
	cur, rev, err := s.current(ctx, key)
	if err != nil {
		return err
	}
	for range maxUpdateAttempts {
		next, err := fn(cur, rev != 0)
		if err != nil {
			return err
		}
		var done bool
		err = s.write(ctx, "update "+key, func(ctx context.Context) error {
			var serr error
			done, cur, rev, serr = s.swap(ctx, key, rev, next)
			return serr
		})
		if err != nil || done {
			return err
		}
	}
	return fmt.Errorf("%w: %s", ErrConflict, key)
}

func (s *Store) current(ctx context.Context, key string) ([]byte, int64, error) {
	kv, err := s.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, 0, nil
	}
	return kv.Value, kv.Revision, err
}

// swap writes next if key is still at rev (0: absent); otherwise it
// returns key's present value and revision for the next attempt.
func (s *Store) swap(ctx context.Context, key string, rev int64, next []byte) (bool, []byte, int64, error) {
	stored, err := s.encrypt(key, next)
	if err != nil {
		return false, nil, 0, err
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, stored)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil || resp.Succeeded {
		return resp != nil && resp.Succeeded, nil, 0, err
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return false, nil, 0, nil
	}
	cur, err := s.decrypt(key, kvs[0].Value)
	return false, cur, kvs[0].ModRevision, err
}

// write runs op against the leader with the store's write timeout and
// turns every way of failing to reach a majority into ErrNoQuorum.
func (s *Store) write(ctx context.Context, what string, op func(context.Context) error) error {
	if err := s.alive(); err != nil {
		return err
	}
	if err := s.waitLeader(ctx); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	wctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), s.cfg.WriteTimeout)
	defer cancel()
	began := time.Now()
	err := op(wctx)
	s.observeWrite(time.Since(began), err)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrExists), errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict):
		return fmt.Errorf("%w: %s", err, what)
	case ctx.Err() != nil:
		return fmt.Errorf("store: %s: %w", what, ctx.Err())
	}
	return fmt.Errorf("store: %s: %w", what, mapErr(err))
}

// waitLeader gives an election in progress time to finish (an election
// takes at most two election timeouts) before declaring no quorum; once
// this member has been without a leader that long, it fails at once.
func (s *Store) waitLeader(ctx context.Context) error {
	if s.etcd.Server.Leader() != 0 {
		return nil
	}
	wait := 2*s.cfg.ElectionTimeout - s.leaderless()
	if wait <= 0 {
		return fmt.Errorf("%w: no leader for %s", ErrNoQuorum, s.leaderless().Round(time.Millisecond))
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(s.cfg.Heartbeat / 2)
	defer tick.Stop()
	for s.etcd.Server.Leader() == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closed:
			return ErrClosed
		case <-deadline.C:
			return fmt.Errorf("%w: no leader elected", ErrNoQuorum)
		case <-tick.C:
		}
	}
	return nil
}

// leaderless is how long this member has known no leader (0 if it knows one).
func (s *Store) leaderless() time.Duration {
	since := s.noLeaderSince.Load()
	if since == 0 {
		return 0
	}
	return time.Since(time.Unix(0, since))
}

// trackLeader records when this member loses its leader, so writes can
// fail fast once an election has clearly failed rather than each waiting
// out a full election.
func (s *Store) trackLeader() {
	tick := time.NewTicker(s.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-tick.C:
		}
		s.noteLeader(uint64(s.etcd.Server.Leader()))
		switch {
		case s.etcd.Server.Leader() != 0:
			s.noLeaderSince.Store(0)
		case s.noLeaderSince.Load() == 0:
			s.noLeaderSince.Store(time.Now().UnixNano())
		}
	}
}

func (s *Store) alive() error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
		return nil
	}
}

// mapErr turns etcd's ways of saying "cannot reach a majority" into
// ErrNoQuorum, keeping the original error in the chain.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	noQuorum := []error{
		rpctypes.ErrNoLeader, rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail,
		rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrLeaderChanged,
		rpctypes.ErrTimeoutWaitAppliedIndex, context.DeadlineExceeded,
	}
	for _, e := range noQuorum {
		if errors.Is(err, e) {
			return fmt.Errorf("%w: %w", ErrNoQuorum, err)
		}
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return fmt.Errorf("%w: %w", ErrNoQuorum, err)
	}
	return err
}
