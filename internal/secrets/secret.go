package secrets

import (
	"context"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/store"
)

const kindSecret = "secret"

func secretKind(s store.Secrets) kind[swarm.Secret, swarm.SecretSpec] {
	return kind[swarm.Secret, swarm.SecretSpec]{
		word:     kindSecret,
		store:    s,
		filters:  secretFilterKeys,
		view:     secretView,
		shown:    shownSecret,
		validate: validateSecret,
		spec:     func(s *swarm.Secret) *swarm.SecretSpec { return &s.Spec },
		fields:   func(s *swarm.SecretSpec) (*swarm.Annotations, []byte) { return &s.Annotations, s.Data },
		uses: func(cs *swarm.ContainerSpec, id string) bool {
			for _, r := range cs.Secrets {
				if r != nil && r.SecretID == id {
					return true
				}
			}
			return false
		},
	}
}

// CreateSecret validates spec as swarm mode does and records the secret.
func (b *Backend) CreateSecret(ctx context.Context, spec swarm.SecretSpec) (string, error) {
	return b.secretKind.create(ctx, b, spec)
}

// Secrets lists the secrets matching filters, without their data.
func (b *Backend) Secrets(ctx context.Context, filters backend.Filters) ([]swarm.Secret, error) {
	return b.secretKind.list(ctx, filters)
}

// Secret finds a secret by ID, name or unique ID prefix; without its data.
func (b *Backend) Secret(ctx context.Context, ref string) (swarm.Secret, error) {
	return b.secretKind.inspect(ctx, ref)
}

// shownSecret is a secret as the API shows it: never with its data.
func shownSecret(s swarm.Secret) swarm.Secret {
	s.Spec.Data = nil
	s.Spec.Labels = labelsOrEmpty(s.Spec.Labels)
	return s
}

// UpdateSecret changes a secret's labels, at version: swarm mode allows
// no other change.
func (b *Backend) UpdateSecret(ctx context.Context, ref string, version uint64, spec swarm.SecretSpec) error {
	return b.secretKind.update(ctx, b, ref, version, spec)
}

// RemoveSecret deletes a secret no service references.
func (b *Backend) RemoveSecret(ctx context.Context, ref string) error {
	return b.secretKind.remove(ctx, b, ref)
}
