package secrets

import (
	"context"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/store"
)

const kindConfig = "config"

func configKind(c store.Configs) kind[swarm.Config, swarm.ConfigSpec] {
	return kind[swarm.Config, swarm.ConfigSpec]{
		word:     kindConfig,
		store:    c,
		filters:  configFilterKeys,
		view:     configView,
		shown:    shownConfig,
		validate: validateConfig,
		spec:     func(c *swarm.Config) *swarm.ConfigSpec { return &c.Spec },
		fields:   func(c *swarm.ConfigSpec) (*swarm.Annotations, []byte) { return &c.Annotations, c.Data },
		uses: func(cs *swarm.ContainerSpec, id string) bool {
			for _, r := range cs.Configs {
				if r != nil && r.ConfigID == id {
					return true
				}
			}
			return false
		},
	}
}

// CreateConfig validates spec as swarm mode does and records the config.
func (b *Backend) CreateConfig(ctx context.Context, spec swarm.ConfigSpec) (string, error) {
	return b.configKind.create(ctx, b, spec)
}

// Configs lists the configs matching filters, with their data (swarm
// mode shows a config's data: it is no secret).
func (b *Backend) Configs(ctx context.Context, filters backend.Filters) ([]swarm.Config, error) {
	return b.configKind.list(ctx, filters)
}

// Config finds a config by ID, name or unique ID prefix.
func (b *Backend) Config(ctx context.Context, ref string) (swarm.Config, error) {
	return b.configKind.inspect(ctx, ref)
}

func shownConfig(c swarm.Config) swarm.Config {
	c.Spec.Labels = labelsOrEmpty(c.Spec.Labels)
	return c
}

// UpdateConfig changes a config's labels, at version: swarm mode allows
// no other change.
func (b *Backend) UpdateConfig(ctx context.Context, ref string, version uint64, spec swarm.ConfigSpec) error {
	return b.configKind.update(ctx, b, ref, version, spec)
}

// RemoveConfig deletes a config no service references.
func (b *Backend) RemoveConfig(ctx context.Context, ref string) error {
	return b.configKind.remove(ctx, b, ref)
}
