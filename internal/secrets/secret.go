package secrets

import (
	"bytes"
	"context"
	"errors"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/store"
)

const kindSecret = "secret"

// CreateSecret validates spec as swarm mode does and records the secret.
func (b *Backend) CreateSecret(ctx context.Context, spec swarm.SecretSpec) (string, error) {
	if err := validateSecret(spec); err != nil {
		return "", err
	}
	spec.Labels = labelsOrEmpty(spec.Labels)
	b.createMu.Lock()
	defer b.createMu.Unlock()
	list, err := b.secrets.List(ctx)
	if err != nil {
		return "", storeErr("list", err)
	}
	if nameTaken(list, spec.Name, "", secretView) {
		return "", errExists(kindSecret, spec.Name)
	}
	id := store.NewID()
	if _, err := b.secrets.Create(ctx, id, spec, b.now()); err != nil {
		return "", storeErr("create "+spec.Name, err)
	}
	// Another manager may have created one of this name meanwhile.
	if list, err = b.secrets.List(ctx); err == nil && nameTaken(list, spec.Name, id, secretView) {
		_ = b.secrets.Delete(context.WithoutCancel(ctx), id)
		return "", errExists(kindSecret, spec.Name)
	}
	b.log.Info("secret created", "secret", spec.Name, "id", id)
	return id, nil
}

// Secrets lists the secrets matching filters, without their data.
func (b *Backend) Secrets(ctx context.Context, filters backend.Filters) ([]swarm.Secret, error) {
	match, err := matcher(filters, secretFilterKeys)
	if err != nil {
		return nil, err
	}
	list, err := b.secrets.List(ctx)
	if err != nil {
		return nil, storeErr("list", err)
	}
	out := []swarm.Secret{}
	for _, s := range list {
		if match(secretView(s)) {
			out = append(out, shownSecret(s))
		}
	}
	return out, nil
}

// Secret finds a secret by ID, name or unique ID prefix; without its data.
func (b *Backend) Secret(ctx context.Context, ref string) (swarm.Secret, error) {
	s, err := b.lookupSecret(ctx, ref)
	if err != nil {
		return swarm.Secret{}, err
	}
	return shownSecret(s), nil
}

// shownSecret is a secret as the API shows it: never with its data.
func shownSecret(s swarm.Secret) swarm.Secret {
	s.Spec.Data = nil
	s.Spec.Labels = labelsOrEmpty(s.Spec.Labels)
	return s
}

func (b *Backend) lookupSecret(ctx context.Context, ref string) (swarm.Secret, error) {
	if ref != "" {
		if s, err := b.secrets.Get(ctx, ref); err == nil {
			return s, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return swarm.Secret{}, storeErr("get "+ref, err)
		}
	}
	list, err := b.secrets.List(ctx)
	if err != nil {
		return swarm.Secret{}, storeErr("list", err)
	}
	return pick(list, ref, kindSecret, secretView)
}

// UpdateSecret changes a secret's labels, at version: swarm mode allows
// no other change.
func (b *Backend) UpdateSecret(ctx context.Context, ref string, version uint64, spec swarm.SecretSpec) error {
	cur, err := b.lookupSecret(ctx, ref)
	if err != nil {
		return err
	}
	if version == 0 {
		return ErrOutOfSequence // the store reads 0 as "any version"; a client's never is
	}
	_, err = b.secrets.Change(ctx, cur.ID, version, b.now(), func(s *swarm.Secret) error {
		if s.Spec.Name != spec.Name || (spec.Data != nil && !bytes.Equal(spec.Data, s.Spec.Data)) {
			return invalidArg("only updates to Labels are allowed")
		}
		s.Spec.Labels = labelsOrEmpty(spec.Labels)
		return nil
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		return ErrOutOfSequence
	case errors.Is(err, store.ErrNotFound):
		return errNotFound(kindSecret, cur.ID)
	case err != nil:
		return storeErr("update "+cur.ID, err)
	}
	b.log.Info("secret updated", "secret", cur.Spec.Name, "id", cur.ID)
	return nil
}

// RemoveSecret deletes a secret no service references.
func (b *Backend) RemoveSecret(ctx context.Context, ref string) error {
	s, err := b.lookupSecret(ctx, ref)
	if err != nil {
		return err
	}
	uses := func(cs *swarm.ContainerSpec) bool {
		for _, r := range cs.Secrets {
			if r != nil && r.SecretID == s.ID {
				return true
			}
		}
		return false
	}
	if err := b.removeUnused(ctx, kindSecret, s.ID, s.Spec.Name, uses, b.secrets.DeleteUnused); err != nil {
		return err
	}
	b.log.Info("secret removed", "secret", s.Spec.Name, "id", s.ID)
	return nil
}
