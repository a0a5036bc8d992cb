package store

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/api/types/swarm"
)

// Service is a service record: swarm mode's own Service object (spec,
// previous spec, version, timestamps, update and job status), so the API
// can hand it out as is, and its SpecVersion. Its Version is the store
// revision of the record's last write, as swarm mode's is its Raft index:
// an update names the version it was based on and fails with ErrConflict
// when the service changed since.
type Service struct {
	swarm.Service
	// SpecVersion counts the changes of Spec (1 at create): a task runs
	// the current spec when its SpecVersion is this one. Status writes
	// (UpdateStatus, JobStatus) leave it.
	SpecVersion uint64 `json:",omitempty"`
	// RegistryAuth is the client's encoded registry credentials
	// (X-Registry-Auth) for pulling the image on the nodes, as swarm
	// mode keeps them in its ContainerSpec's PullOptions; never shown by
	// the API.
	RegistryAuth string `json:",omitempty"`
	// PreviousRegistryAuth is the RegistryAuth of PreviousSpec, as swarm
	// mode keeps one in each spec: an update with registryAuthFrom=
	// previous-spec takes it, a rollback swaps it back.
	PreviousRegistryAuth string `json:",omitempty"`
}

// Services is the desired state of services: one record per service.
type Services struct{ c Collection[Service] }

// NewServices is the services collection of s.
func NewServices(s *Store) Services {
	return Services{c: NewCollection[Service](s, PrefixServices)}
}

// Create records a new service with spec.
func (r Services) Create(ctx context.Context, id string, spec swarm.ServiceSpec, now time.Time) (Service, error) {
	now = now.UTC()
	svc := Service{Service: swarm.Service{ID: id, Meta: swarm.Meta{CreatedAt: now, UpdatedAt: now}, Spec: spec}, SpecVersion: 1}
	rev, err := r.c.Create(ctx, id, svc)
	if err != nil {
		return Service{}, err
	}
	svc.Version.Index = uint64(rev)
	return svc, nil
}

// Get returns a service, or ErrNotFound.
func (r Services) Get(ctx context.Context, id string, opts ...ReadOption) (Service, error) {
	it, err := r.c.Get(ctx, id, opts...)
	if err != nil {
		return Service{}, err
	}
	return serviceOf(it), nil
}

// List returns every service, sorted by ID, and the revision the list
// reflects (watch from it + 1).
func (r Services) List(ctx context.Context, opts ...ReadOption) ([]Service, int64, error) {
	items, rev, err := r.c.List(ctx, opts...)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Service, len(items))
	for i, it := range items {
		out[i] = serviceOf(it)
	}
	return out, rev, nil
}

// Update replaces the spec of a service at version, keeping the old one as
// PreviousSpec (for rollback) and counting a new SpecVersion: ErrConflict
// when the service changed since version, ErrNotFound when it is gone.
func (r Services) Update(ctx context.Context, id string, version uint64, spec swarm.ServiceSpec, now time.Time) (Service, error) {
	return r.Change(ctx, id, version, func(svc *Service) error {
		prev := svc.Spec
		svc.PreviousSpec, svc.Spec, svc.UpdatedAt = &prev, spec, now.UTC()
		svc.SpecVersion++
		return nil
	})
}

// Change applies fn to the service at version (0: whatever version it is
// at now) and writes the result: ErrConflict when the service changed
// since version, ErrNotFound when it is gone. fn sets every field it
// changes, SpecVersion included.
func (r Services) Change(ctx context.Context, id string, version uint64, fn func(*Service) error) (Service, error) {
	it, err := r.c.Get(ctx, id)
	if err != nil {
		return Service{}, err
	}
	if version != 0 && uint64(it.Revision) != version {
		return Service{}, fmt.Errorf("%w: service %s is at version %d, not %d", ErrConflict, id, it.Revision, version)
	}
	svc := serviceOf(it)
	if err := fn(&svc); err != nil {
		return Service{}, err
	}
	rev, err := r.c.Update(ctx, id, it.Revision, svc)
	if err != nil {
		return Service{}, err
	}
	svc.Version.Index = uint64(rev)
	return svc, nil
}

// Delete removes a service, or returns ErrNotFound.
func (r Services) Delete(ctx context.Context, id string) error { return r.c.Delete(ctx, id) }

// Watch streams the services' changes from fromRev (0: from now), each
// service's version set to the revision of the change.
func (r Services) Watch(ctx context.Context, fromRev int64) <-chan Change[Service] {
	in := r.c.Watch(ctx, fromRev)
	out := make(chan Change[Service], cap(in))
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
func serviceOf(it Item[Service]) Service {
	svc := it.Value
	svc.ID = it.ID
	svc.Version.Index = uint64(it.Revision)
	return svc
}

// ModeName names a service mode as `docker service ls` and the mode
// filter do: "replicated", "global", "replicated-job" or "global-job".
func ModeName(m swarm.ServiceMode) string {
	switch {
	case m.Global != nil:
		return "global"
	case m.ReplicatedJob != nil:
		return "replicated-job"
	case m.GlobalJob != nil:
		return "global-job"
	}
	return "replicated"
}
