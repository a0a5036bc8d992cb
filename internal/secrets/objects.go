package secrets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/store"
)

// What secrets and configs have in common, for lookups, filters and
// name checks.
type view struct {
	id, name string
	labels   map[string]string
	created  time.Time
}

func secretView(s swarm.Secret) view {
	return view{id: s.ID, name: s.Spec.Name, labels: s.Spec.Labels, created: s.CreatedAt}
}

func configView(c swarm.Config) view {
	return view{id: c.ID, name: c.Spec.Name, labels: c.Spec.Labels, created: c.CreatedAt}
}

// pick resolves ref among list as dockerd does after a lookup by full ID
// failed: by exact name, then by ID prefix.
func pick[T any](list []T, ref, kind string, v func(T) view) (T, error) {
	var byName, byPrefix []T
	for _, o := range list {
		ov := v(o)
		if ov.name == ref {
			byName = append(byName, o)
		}
		if strings.HasPrefix(ov.id, ref) {
			byPrefix = append(byPrefix, o)
		}
	}
	found := byName
	if len(found) == 0 {
		found = byPrefix
	}
	var zero T
	switch {
	case ref == "" || len(found) == 0:
		return zero, errNotFound(kind, ref)
	case len(found) > 1:
		return zero, errAmbiguous(kind, ref, len(found))
	}
	return found[0], nil
}

// filterKeys are the filters dockerd accepts for each list.
var (
	secretFilterKeys = map[string]bool{"names": true, "name": true, "id": true, "label": true}
	configFilterKeys = map[string]bool{"name": true, "id": true, "label": true}
)

// matcher is the test of filters f as swarm mode applies them: an object
// matches any of the exact names ("names"), name prefixes ("name") and ID
// prefixes ("id") given, and every label ("key" or "key=value").
func matcher(f backend.Filters, accepted map[string]bool) (func(view) bool, error) {
	for k := range f {
		if !accepted[k] {
			// dockerd 20.10's words, as the service filters give them.
			return nil, errdefs.ErrInvalidArgument.WithMessage("Invalid filter '" + k + "'")
		}
	}
	labels := map[string]string{}
	for _, kv := range f["label"] {
		k, v, _ := strings.Cut(kv, "=")
		labels[k] = v
	}
	return func(o view) bool {
		return matchAny(o, f) && matchLabels(o.labels, labels)
	}, nil
}

func matchAny(o view, f backend.Filters) bool {
	if len(f["names"])+len(f["name"])+len(f["id"]) == 0 {
		return true
	}
	for _, n := range f["names"] {
		if o.name == n {
			return true
		}
	}
	for _, p := range f["name"] {
		if strings.HasPrefix(o.name, p) {
			return true
		}
	}
	for _, p := range f["id"] {
		if strings.HasPrefix(o.id, p) {
			return true
		}
	}
	return false
}

func matchLabels(have, want map[string]string) bool {
	for k, v := range want {
		got, ok := have[k]
		if !ok || (v != "" && got != v) {
			return false
		}
	}
	return true
}

// nameTaken says whether an object of list other than self has name;
// with self set (after self was written), only one older than self
// counts, so of two creates through two managers the older one stays.
func nameTaken[T any](list []T, name, self string, v func(T) view) bool {
	var mine *view
	for _, o := range list {
		if ov := v(o); ov.id == self {
			mine = &ov
		}
	}
	for _, o := range list {
		ov := v(o)
		if ov.id == self || ov.name != name {
			continue
		}
		if mine == nil || ov.created.Before(mine.created) || (ov.created.Equal(mine.created) && ov.id < mine.id) {
			return true
		}
	}
	return false
}

// usedBy lists the names of the services whose spec references the
// object, by ID order (swarm mode's store order), and the store revision
// the list reflects.
func (b *Backend) usedBy(ctx context.Context, uses func(*swarm.ContainerSpec) bool) ([]string, int64, error) {
	list, rev, err := b.services.List(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("secrets: list services: %w", err)
	}
	var names []string
	for _, s := range list {
		if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil && uses(cs) {
			names = append(names, s.Spec.Name)
		}
	}
	return names, rev, nil
}

// removeAttempts bounds the retries of a removal that services kept
// changing under.
const removeAttempts = 5

// removeUnused deletes an object (del, guarded by the services' revision)
// that no service references, checking again when services changed
// between the check and the delete, as swarm mode checks and deletes in
// one transaction.
func (b *Backend) removeUnused(ctx context.Context, kind, id, name string, uses func(*swarm.ContainerSpec) bool,
	del func(ctx context.Context, id string, servicesRev int64) error) error {
	for try := 0; ; try++ {
		users, rev, err := b.usedBy(ctx, uses)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return errInUse(kind, name, users)
		}
		err = del(ctx, id, rev)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, store.ErrNotFound):
			return errNotFound(kind, id)
		case errors.Is(err, store.ErrConflict) && try < removeAttempts:
			continue
		}
		return fmt.Errorf("secrets: remove %s %s: %w", kind, id, err)
	}
}

// storeErr wraps a store error, or passes on one of the API's own.
func storeErr(op string, err error) error {
	if errdefs.IsInvalidArgument(err) || errdefs.IsNotFound(err) || errdefs.IsConflict(err) || errors.Is(err, ErrOutOfSequence) {
		return err
	}
	return fmt.Errorf("secrets: %s: %w", op, err)
}

// labelsOrEmpty is labels as swarm mode shows them: never null.
func labelsOrEmpty(l map[string]string) map[string]string {
	if l == nil {
		return map[string]string{}
	}
	return l
}
