package store

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/api/types/swarm"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Key prefixes of secrets and configs (beside collection.go's).
const (
	PrefixSecrets = Root + "secrets/"
	PrefixConfigs = Root + "configs/"
)

// Secrets is the secrets collection: swarm mode's Secret records, their
// Spec.Data included. The store's Cipher keeps the data encrypted at
// rest; the API never shows it.
type Secrets struct{ o objects[swarm.Secret] }

// Configs is the configs collection: swarm mode's Config records.
type Configs struct{ o objects[swarm.Config] }

// NewSecrets is the secrets collection of s.
func NewSecrets(s *Store) Secrets {
	return Secrets{o: objects[swarm.Secret]{c: NewCollection[swarm.Secret](s, PrefixSecrets), kind: "secret",
		meta: func(v *swarm.Secret) (*string, *swarm.Meta) { return &v.ID, &v.Meta }}}
}

// NewConfigs is the configs collection of s.
func NewConfigs(s *Store) Configs {
	return Configs{o: objects[swarm.Config]{c: NewCollection[swarm.Config](s, PrefixConfigs), kind: "config",
		meta: func(v *swarm.Config) (*string, *swarm.Meta) { return &v.ID, &v.Meta }}}
}

// Create records a new secret with spec; its Version is the revision written.
func (r Secrets) Create(ctx context.Context, id string, spec swarm.SecretSpec, now time.Time) (swarm.Secret, error) {
	return r.o.create(ctx, id, swarm.Secret{Spec: spec}, now)
}

// Get returns a secret, or ErrNotFound.
func (r Secrets) Get(ctx context.Context, id string) (swarm.Secret, error) { return r.o.get(ctx, id) }

// List returns every secret, sorted by ID.
func (r Secrets) List(ctx context.Context) ([]swarm.Secret, error) { return r.o.list(ctx) }

// Change applies fn to the secret at version (0: any) and writes it:
// ErrConflict when it changed since version, ErrNotFound when it is gone.
func (r Secrets) Change(ctx context.Context, id string, version uint64, now time.Time, fn func(*swarm.Secret) error) (swarm.Secret, error) {
	return r.o.change(ctx, id, version, now, fn)
}

// Delete removes a secret, or returns ErrNotFound.
func (r Secrets) Delete(ctx context.Context, id string) error { return r.o.c.Delete(ctx, id) }

// DeleteUnused removes a secret only if no service was written after
// revision servicesRev (the List of services its users were checked in):
// ErrConflict if one was (check again), ErrNotFound if it is gone.
func (r Secrets) DeleteUnused(ctx context.Context, id string, servicesRev int64) error {
	return r.o.c.s.deleteIfQuiet(ctx, r.o.c.Key(id), PrefixServices, servicesRev)
}

// Create records a new config with spec; its Version is the revision written.
func (r Configs) Create(ctx context.Context, id string, spec swarm.ConfigSpec, now time.Time) (swarm.Config, error) {
	return r.o.create(ctx, id, swarm.Config{Spec: spec}, now)
}

// Get returns a config, or ErrNotFound.
func (r Configs) Get(ctx context.Context, id string) (swarm.Config, error) { return r.o.get(ctx, id) }

// List returns every config, sorted by ID.
func (r Configs) List(ctx context.Context) ([]swarm.Config, error) { return r.o.list(ctx) }

// Change applies fn to the config at version (0: any) and writes it:
// ErrConflict when it changed since version, ErrNotFound when it is gone.
func (r Configs) Change(ctx context.Context, id string, version uint64, now time.Time, fn func(*swarm.Config) error) (swarm.Config, error) {
	return r.o.change(ctx, id, version, now, fn)
}

// Delete removes a config, or returns ErrNotFound.
func (r Configs) Delete(ctx context.Context, id string) error { return r.o.c.Delete(ctx, id) }

// DeleteUnused is Secrets.DeleteUnused for a config.
func (r Configs) DeleteUnused(ctx context.Context, id string, servicesRev int64) error {
	return r.o.c.s.deleteIfQuiet(ctx, r.o.c.Key(id), PrefixServices, servicesRev)
}

// deleteIfQuiet deletes key if no key under prefix was written after rev,
// in one transaction: a service made or changed meanwhile may reference
// what is being deleted.
func (s *Store) deleteIfQuiet(ctx context.Context, key, prefix string, rev int64) error {
	return s.write(ctx, "delete "+key, func(ctx context.Context) error {
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(prefix), "<", rev+1).WithPrefix()).
			Then(clientv3.OpDelete(key)).
			Commit()
		switch {
		case err != nil:
			return err
		case !resp.Succeeded:
			return ErrConflict
		case resp.Responses[0].GetResponseDeleteRange().Deleted == 0:
			return ErrNotFound
		}
		return nil
	})
}

// objects is a collection of swarm objects with an ID and a Meta, whose
// Version is the store revision of their last write (as swarm mode's is
// its Raft index).
type objects[T any] struct {
	c    Collection[T]
	kind string
	meta func(*T) (*string, *swarm.Meta)
}

func (o objects[T]) create(ctx context.Context, id string, v T, now time.Time) (T, error) {
	pid, m := o.meta(&v)
	*pid = id
	m.CreatedAt, m.UpdatedAt = now.UTC(), now.UTC()
	rev, err := o.c.Create(ctx, id, v)
	if err != nil {
		var zero T
		return zero, err
	}
	m.Version.Index = uint64(rev)
	return v, nil
}

func (o objects[T]) get(ctx context.Context, id string) (T, error) {
	it, err := o.c.Get(ctx, id)
	if err != nil {
		var zero T
		return zero, err
	}
	return o.of(it), nil
}

func (o objects[T]) list(ctx context.Context) ([]T, error) {
	items, _, err := o.c.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(items))
	for i, it := range items {
		out[i] = o.of(it)
	}
	return out, nil
}

func (o objects[T]) change(ctx context.Context, id string, version uint64, now time.Time, fn func(*T) error) (T, error) {
	var zero T
	it, err := o.c.Get(ctx, id)
	if err != nil {
		return zero, err
	}
	if version != 0 && uint64(it.Revision) != version {
		return zero, fmt.Errorf("%w: %s %s is at version %d, not %d", ErrConflict, o.kind, id, it.Revision, version)
	}
	v := o.of(it)
	if err := fn(&v); err != nil {
		return zero, err
	}
	_, m := o.meta(&v)
	m.UpdatedAt = now.UTC()
	rev, err := o.c.Update(ctx, id, it.Revision, v)
	if err != nil {
		return zero, err
	}
	m.Version.Index = uint64(rev)
	return v, nil
}

// of is the record with its ID and version: the revision that wrote it.
func (o objects[T]) of(it Item[T]) T {
	v := it.Value
	pid, m := o.meta(&v)
	*pid = it.ID
	m.Version.Index = uint64(it.Revision)
	return v
}
