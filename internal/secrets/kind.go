package secrets

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/store"
)

// records is the store collection of one kind: store.Secrets or
// store.Configs, of records R with specs S.
type records[R, S any] interface {
	Create(ctx context.Context, id string, spec S, now time.Time) (R, error)
	Get(ctx context.Context, id string) (R, error)
	List(ctx context.Context) ([]R, error)
	Change(ctx context.Context, id string, version uint64, now time.Time, fn func(*R) error) (R, error)
	Delete(ctx context.Context, id string) error
	DeleteUnused(ctx context.Context, id string, servicesRev int64) error
}

// kind serves the API calls secrets and configs share (swarm mode treats
// both alike but for these fields): R is the record, S its spec.
type kind[R, S any] struct {
	word    string // "secret" or "config", in messages and logs
	store   records[R, S]
	filters map[string]bool // the list filters dockerd accepts
	view    func(R) view
	// shown is a record as the API shows it.
	shown    func(R) R
	validate func(S) error
	// spec is a record's spec; fields a spec's annotations and data.
	spec   func(*R) *S
	fields func(*S) (*swarm.Annotations, []byte)
	// uses says whether a container spec references the object id.
	uses func(cs *swarm.ContainerSpec, id string) bool
}

// create validates spec as swarm mode does and records the object.
func (k kind[R, S]) create(ctx context.Context, b *Backend, spec S) (string, error) {
	if err := k.validate(spec); err != nil {
		return "", err
	}
	a, _ := k.fields(&spec)
	a.Labels = labelsOrEmpty(a.Labels)
	b.createMu.Lock()
	defer b.createMu.Unlock()
	list, err := k.store.List(ctx)
	if err != nil {
		return "", storeErr("list", err)
	}
	if nameTaken(list, a.Name, "", k.view) {
		return "", errExists(k.word, a.Name)
	}
	id := store.NewID()
	if _, err := k.store.Create(ctx, id, spec, b.now()); err != nil {
		return "", storeErr("create "+a.Name, err)
	}
	// Another manager may have created one of this name meanwhile.
	if list, err = k.store.List(ctx); err == nil && nameTaken(list, a.Name, id, k.view) {
		_ = k.store.Delete(context.WithoutCancel(ctx), id)
		return "", errExists(k.word, a.Name)
	}
	b.log.Info(k.word+" created", k.word, a.Name, "id", id)
	return id, nil
}

// list is the objects matching filters, as the API shows them.
func (k kind[R, S]) list(ctx context.Context, filters backend.Filters) ([]R, error) {
	match, err := matcher(filters, k.filters)
	if err != nil {
		return nil, err
	}
	list, err := k.store.List(ctx)
	if err != nil {
		return nil, storeErr("list", err)
	}
	out := []R{}
	for _, o := range list {
		if match(k.view(o)) {
			out = append(out, k.shown(o))
		}
	}
	return out, nil
}

// inspect finds an object by ID, name or unique ID prefix, as the API
// shows it.
func (k kind[R, S]) inspect(ctx context.Context, ref string) (R, error) {
	o, err := k.lookup(ctx, ref)
	if err != nil {
		var zero R
		return zero, err
	}
	return k.shown(o), nil
}

func (k kind[R, S]) lookup(ctx context.Context, ref string) (R, error) {
	var zero R
	if ref != "" {
		if o, err := k.store.Get(ctx, ref); err == nil {
			return o, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return zero, storeErr("get "+ref, err)
		}
	}
	list, err := k.store.List(ctx)
	if err != nil {
		return zero, storeErr("list", err)
	}
	return pick(list, ref, k.word, k.view)
}

// update changes an object's labels, at version: swarm mode allows no
// other change.
func (k kind[R, S]) update(ctx context.Context, b *Backend, ref string, version uint64, spec S) error {
	cur, err := k.lookup(ctx, ref)
	if err != nil {
		return err
	}
	if version == 0 {
		return ErrOutOfSequence // the store reads 0 as "any version"; a client's never is
	}
	curView := k.view(cur)
	want, data := k.fields(&spec)
	_, err = k.store.Change(ctx, curView.id, version, b.now(), func(o *R) error {
		have, haveData := k.fields(k.spec(o))
		if have.Name != want.Name || (data != nil && !bytes.Equal(data, haveData)) {
			return invalidArg("only updates to Labels are allowed")
		}
		have.Labels = labelsOrEmpty(want.Labels)
		return nil
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		return ErrOutOfSequence
	case errors.Is(err, store.ErrNotFound):
		return errNotFound(k.word, curView.id)
	case err != nil:
		return storeErr("update "+curView.id, err)
	}
	b.log.Info(k.word+" updated", k.word, curView.name, "id", curView.id)
	return nil
}

// remove deletes an object no service references.
func (k kind[R, S]) remove(ctx context.Context, b *Backend, ref string) error {
	o, err := k.lookup(ctx, ref)
	if err != nil {
		return err
	}
	v := k.view(o)
	uses := func(cs *swarm.ContainerSpec) bool { return k.uses(cs, v.id) }
	if err := b.removeUnused(ctx, k.word, v.id, v.name, uses, k.store.DeleteUnused); err != nil {
		return err
	}
	b.log.Info(k.word+" removed", k.word, v.name, "id", v.id)
	return nil
}
