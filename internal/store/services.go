package store

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/api/types/swarm"
)

// Services is the desired state of services: one record per service, kept
// as swarm mode's own Service object (spec, previous spec, version and
// timestamps), so the API can hand it out as is. The version is the
// store revision of the record's last write, as swarm mode's is its Raft
// index: an update names the version it was based on and fails with
// ErrConflict when the service changed since.
type Services struct{ c Collection[swarm.Service] }

// NewServices is the services collection of s.
func NewServices(s *Store) Services {
	return Services{c: NewCollection[swarm.Service](s, PrefixServices)}
}

// Create records a new service with spec.
func (r Services) Create(ctx context.Context, id string, spec swarm.ServiceSpec, now time.Time) (swarm.Service, error) {
	now = now.UTC()
	svc := swarm.Service{ID: id, Meta: swarm.Meta{CreatedAt: now, UpdatedAt: now}, Spec: spec}
	rev, err := r.c.Create(ctx, id, svc)
	if err != nil {
		return swarm.Service{}, err
	}
	svc.Version.Index = uint64(rev)
	return svc, nil
}

// Get returns a service, or ErrNotFound.
func (r Services) Get(ctx context.Context, id string, opts ...ReadOption) (swarm.Service, error) {
	it, err := r.c.Get(ctx, id, opts...)
	if err != nil {
		return swarm.Service{}, err
	}
	return serviceOf(it), nil
}

// List returns every service, sorted by ID, and the revision the list
// reflects (watch from it + 1).
func (r Services) List(ctx context.Context, opts ...ReadOption) ([]swarm.Service, int64, error) {
	items, rev, err := r.c.List(ctx, opts...)
	if err != nil {
		return nil, 0, err
	}
	out := make([]swarm.Service, len(items))
	for i, it := range items {
		out[i] = serviceOf(it)
	}
	return out, rev, nil
}

// Update replaces the spec of a service at version, keeping the old one as
// PreviousSpec (for rollback): ErrConflict when the service changed since
// version, ErrNotFound when it is gone.
func (r Services) Update(ctx context.Context, id string, version uint64, spec swarm.ServiceSpec, now time.Time) (swarm.Service, error) {
	it, err := r.c.Get(ctx, id)
	if err != nil {
		return swarm.Service{}, err
	}
	if uint64(it.Revision) != version {
		return swarm.Service{}, fmt.Errorf("%w: service %s is at version %d, not %d", ErrConflict, id, it.Revision, version)
	}
	svc := it.Value
	prev := svc.Spec
	svc.PreviousSpec, svc.Spec, svc.UpdatedAt = &prev, spec, now.UTC()
	rev, err := r.c.Update(ctx, id, it.Revision, svc)
	if err != nil {
		return swarm.Service{}, err
	}
	svc.Version.Index = uint64(rev)
	return svc, nil
}

// Delete removes a service, or returns ErrNotFound.
func (r Services) Delete(ctx context.Context, id string) error { return r.c.Delete(ctx, id) }

// Watch streams the services' changes from fromRev (0: from now), each
// service's version set to the revision of the change.
func (r Services) Watch(ctx context.Context, fromRev int64) <-chan Change[swarm.Service] {
	in := r.c.Watch(ctx, fromRev)
	out := make(chan Change[swarm.Service], cap(in))
	go func() {
		defer close(out)
		for ch := range in {
			if ch.Err == nil {
				ch.Item.Value = serviceOf(ch.Item)
			}
			if !sendChange(ctx, out, ch) {
				return
			}
		}
	}()
	return out
}

// serviceOf is the record with its version: the revision that wrote it.
func serviceOf(it Item[swarm.Service]) swarm.Service {
	svc := it.Value
	svc.ID = it.ID
	svc.Version.Index = uint64(it.Revision)
	return svc
}
