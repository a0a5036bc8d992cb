package secrets

import (
	"context"
	"errors"
	"strings"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// CheckRefs checks a service's secret and config references as swarm
// mode checks them at a service create or update: well formed, no two
// files at one target, each naming an existing object by its ID and
// name. Secrets are refused where no node can receive them from memory.
func (b *Backend) CheckRefs(ctx context.Context, cs *swarm.ContainerSpec) error {
	if cs == nil {
		return nil
	}
	if err := checkSecretRefs(cs.Secrets); err != nil {
		return err
	}
	if err := checkConfigRefs(cs.Configs); err != nil {
		return err
	}
	if len(cs.Secrets) > 0 && b.noDelivery {
		return ErrNoDelivery
	}
	if err := b.secretsExist(ctx, cs.Secrets); err != nil {
		return err
	}
	return b.configsExist(ctx, cs.Configs)
}

func checkSecretRefs(refs []*swarm.SecretReference) error {
	targets := map[string]string{}
	for _, r := range refs {
		if r == nil || r.SecretID == "" || r.SecretName == "" {
			return invalidArg("malformed secret reference")
		}
		if r.File == nil {
			return invalidArg("malformed secret reference, no target provided")
		}
		if r.File.Name == "" {
			return invalidArg("malformed file secret reference, invalid target file name provided")
		}
		if prev, ok := targets[r.File.Name]; ok {
			return invalidArg("secret references '%s' and '%s' have a conflicting target: '%s'", prev, r.SecretName, r.File.Name)
		}
		targets[r.File.Name] = r.SecretName
	}
	return nil
}

func checkConfigRefs(refs []*swarm.ConfigReference) error {
	targets := map[string]string{}
	for _, r := range refs {
		if r == nil || r.ConfigID == "" || r.ConfigName == "" {
			return invalidArg("malformed config reference")
		}
		if r.File == nil && r.Runtime == nil {
			return invalidArg("malformed config reference, no target provided")
		}
		if r.File == nil {
			continue
		}
		if r.File.Name == "" {
			return invalidArg("malformed file config reference, invalid target file name provided")
		}
		if prev, ok := targets[r.File.Name]; ok {
			return invalidArg("config references '%s' and '%s' have a conflicting target: '%s'", prev, r.ConfigName, r.File.Name)
		}
		targets[r.File.Name] = r.ConfigName
	}
	return nil
}

func (b *Backend) secretsExist(ctx context.Context, refs []*swarm.SecretReference) error {
	var missing []string
	for _, r := range refs {
		s, err := b.secrets.Get(ctx, r.SecretID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return storeErr("get "+r.SecretID, err)
		}
		if err != nil || s.Spec.Name != r.SecretName {
			missing = append(missing, r.SecretName)
		}
	}
	return notFound(kindSecret, missing)
}

func (b *Backend) configsExist(ctx context.Context, refs []*swarm.ConfigReference) error {
	var missing []string
	for _, r := range refs {
		c, err := b.configs.Get(ctx, r.ConfigID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return storeErr("get "+r.ConfigID, err)
		}
		if err != nil || c.Spec.Name != r.ConfigName {
			missing = append(missing, r.ConfigName)
		}
	}
	return notFound(kindConfig, missing)
}

// notFound is swarm mode's "secret not found: a" / "configs not found: a, b".
func notFound(kind string, names []string) error {
	switch len(names) {
	case 0:
		return nil
	case 1:
		return invalidArg("%s not found: %s", kind, names[0])
	}
	return invalidArg("%ss not found: %s", kind, strings.Join(names, ", "))
}
