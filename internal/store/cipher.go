package store

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Cipher encrypts values at rest: every value goes through Encrypt on its
// way into etcd and through Decrypt on its way out, with its key, so the
// etcd data (its WAL, snapshots and database, and any copy of them) holds
// no value in clear. shoal's is internal/seal's Values.
type Cipher interface {
	Encrypt(key string, plain []byte) ([]byte, error)
	// Decrypt returns a value written before encryption as it is.
	Decrypt(key string, stored []byte) ([]byte, error)
	// Sealed says whether a stored value was written by Encrypt.
	Sealed(stored []byte) bool
}

// cipherBox holds the Cipher for an atomic pointer.
type cipherBox struct{ c Cipher }

// SetCipher starts encrypting values with c (a member that made the
// cluster's first key after it opened: see Config.Cipher otherwise).
func (s *Store) SetCipher(c Cipher) { s.ciph.Store(&cipherBox{c: c}) }

func (s *Store) cipher() Cipher {
	if b := s.ciph.Load(); b != nil {
		return b.c
	}
	return nil
}

// encrypt is value as stored under key.
func (s *Store) encrypt(key string, value []byte) (string, error) {
	c := s.cipher()
	if c == nil {
		return string(value), nil
	}
	b, err := c.Encrypt(key, value)
	if err != nil {
		return "", fmt.Errorf("store: encrypt %s: %w", key, err)
	}
	return string(b), nil
}

// decrypt is the value stored under key, in clear.
func (s *Store) decrypt(key string, stored []byte) ([]byte, error) {
	c := s.cipher()
	if c == nil {
		return stored, nil
	}
	b, err := c.Decrypt(key, stored)
	if err != nil {
		return nil, fmt.Errorf("store: decrypt %s: %w", key, err)
	}
	return b, nil
}

// kvOf is an etcd key-value decrypted.
func (s *Store) kvOf(key, value []byte, rev int64) (KV, error) {
	v, err := s.decrypt(string(key), value)
	if err != nil {
		return KV{}, err
	}
	return KV{Key: string(key), Value: v, Revision: rev}, nil
}

// EncryptPlain rewrites, encrypted, every value under Root still stored in
// clear (written before the cluster had a Cipher), each only if nobody
// changed it meanwhile. It returns how many it rewrote. Older revisions
// keep the clear values until etcd compacts them. A rewritten key loses
// any lease (shoal's keys have none).
func (s *Store) EncryptPlain(ctx context.Context) (int, error) {
	c := s.cipher()
	if c == nil {
		return 0, nil
	}
	resp, err := s.client.Get(ctx, Root, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("store: list %s: %w", Root, mapErr(err))
	}
	n := 0
	for _, kv := range resp.Kvs {
		if c.Sealed(kv.Value) {
			continue
		}
		_, err := s.Replace(ctx, string(kv.Key), kv.ModRevision, kv.Value)
		switch {
		case err == nil:
			n++
		case !isRace(err):
			return n, err
		}
	}
	return n, nil
}

// isRace says a conditional write lost to a concurrent one, which wrote
// (encrypted) in its place.
func isRace(err error) bool { return errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) }
