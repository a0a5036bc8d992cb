package secrets

import (
	"bytes"
	"context"
	"errors"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/store"
)

const kindConfig = "config"

// CreateConfig validates spec as swarm mode does and records the config.
func (b *Backend) CreateConfig(ctx context.Context, spec swarm.ConfigSpec) (string, error) {
	if err := validateConfig(spec); err != nil {
		return "", err
	}
	spec.Labels = labelsOrEmpty(spec.Labels)
	b.createMu.Lock()
	defer b.createMu.Unlock()
	list, err := b.configs.List(ctx)
	if err != nil {
		return "", storeErr("list", err)
	}
	if nameTaken(list, spec.Name, "", configView) {
		return "", errExists(kindConfig, spec.Name)
	}
	id := store.NewID()
	if _, err := b.configs.Create(ctx, id, spec, b.now()); err != nil {
		return "", storeErr("create "+spec.Name, err)
	}
	if list, err = b.configs.List(ctx); err == nil && nameTaken(list, spec.Name, id, configView) {
		_ = b.configs.Delete(context.WithoutCancel(ctx), id)
		return "", errExists(kindConfig, spec.Name)
	}
	b.log.Info("config created", "config", spec.Name, "id", id)
	return id, nil
}

// Configs lists the configs matching filters, with their data (swarm
// mode shows a config's data: it is no secret).
func (b *Backend) Configs(ctx context.Context, filters backend.Filters) ([]swarm.Config, error) {
	match, err := matcher(filters, configFilterKeys)
	if err != nil {
		return nil, err
	}
	list, err := b.configs.List(ctx)
	if err != nil {
		return nil, storeErr("list", err)
	}
	out := []swarm.Config{}
	for _, c := range list {
		if match(configView(c)) {
			out = append(out, shownConfig(c))
		}
	}
	return out, nil
}

// Config finds a config by ID, name or unique ID prefix.
func (b *Backend) Config(ctx context.Context, ref string) (swarm.Config, error) {
	c, err := b.lookupConfig(ctx, ref)
	if err != nil {
		return swarm.Config{}, err
	}
	return shownConfig(c), nil
}

func shownConfig(c swarm.Config) swarm.Config {
	c.Spec.Labels = labelsOrEmpty(c.Spec.Labels)
	return c
}

func (b *Backend) lookupConfig(ctx context.Context, ref string) (swarm.Config, error) {
	if ref != "" {
		if c, err := b.configs.Get(ctx, ref); err == nil {
			return c, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return swarm.Config{}, storeErr("get "+ref, err)
		}
	}
	list, err := b.configs.List(ctx)
	if err != nil {
		return swarm.Config{}, storeErr("list", err)
	}
	return pick(list, ref, kindConfig, configView)
}

// UpdateConfig changes a config's labels, at version: swarm mode allows
// no other change.
func (b *Backend) UpdateConfig(ctx context.Context, ref string, version uint64, spec swarm.ConfigSpec) error {
	cur, err := b.lookupConfig(ctx, ref)
	if err != nil {
		return err
	}
	if version == 0 {
		return ErrOutOfSequence
	}
	_, err = b.configs.Change(ctx, cur.ID, version, b.now(), func(c *swarm.Config) error {
		if c.Spec.Name != spec.Name || (spec.Data != nil && !bytes.Equal(spec.Data, c.Spec.Data)) {
			return invalidArg("only updates to Labels are allowed")
		}
		c.Spec.Labels = labelsOrEmpty(spec.Labels)
		return nil
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		return ErrOutOfSequence
	case errors.Is(err, store.ErrNotFound):
		return errNotFound(kindConfig, cur.ID)
	case err != nil:
		return storeErr("update "+cur.ID, err)
	}
	b.log.Info("config updated", "config", cur.Spec.Name, "id", cur.ID)
	return nil
}

// RemoveConfig deletes a config no service references.
func (b *Backend) RemoveConfig(ctx context.Context, ref string) error {
	c, err := b.lookupConfig(ctx, ref)
	if err != nil {
		return err
	}
	uses := func(cs *swarm.ContainerSpec) bool {
		for _, r := range cs.Configs {
			if r != nil && r.ConfigID == c.ID {
				return true
			}
		}
		return false
	}
	if err := b.removeUnused(ctx, kindConfig, c.ID, c.Spec.Name, uses, b.configs.DeleteUnused); err != nil {
		return err
	}
	b.log.Info("config removed", "config", c.Spec.Name, "id", c.ID)
	return nil
}
