// Package secrets serves swarm mode's secret and config API over shoal's
// store: it validates specs with swarm mode's rules and words, keeps the
// records (a secret's data encrypted at rest by the store's cipher, and
// never shown by the API), filters them as dockerd does, refuses to
// remove one a service uses, and checks services' references to them.
// The manager delivers their data to task containers (see
// internal/manager's tasks_secrets.go).
package secrets

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// Config wires a Backend.
type Config struct {
	Store  *store.Store
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// NoSecretDelivery says no node can receive a secret from memory
	// (shoal manage: its nodes run no shoal agent), so a service may not
	// reference secrets; configs it still may.
	NoSecretDelivery bool
}

// Backend serves the secret and config calls (dockerapi.Secrets and
// dockerapi.Configs) and what the manager reads to deliver them.
type Backend struct {
	secrets    store.Secrets
	configs    store.Configs
	services   store.Services
	log        *slog.Logger
	now        func() time.Time
	noDelivery bool

	secretKind kind[swarm.Secret, swarm.SecretSpec]
	configKind kind[swarm.Config, swarm.ConfigSpec]

	// createMu serializes this manager's creates, so two creates of one
	// name through it cannot both pass the name check.
	createMu sync.Mutex
}

// New returns the backend over cfg.Store.
func New(cfg Config) *Backend {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Backend{
		secrets:    store.NewSecrets(cfg.Store),
		configs:    store.NewConfigs(cfg.Store),
		services:   store.NewServices(cfg.Store),
		log:        cfg.Logger,
		now:        cfg.Now,
		noDelivery: cfg.NoSecretDelivery,
	}
	b.secretKind, b.configKind = secretKind(b.secrets), configKind(b.configs)
	return b
}

// SecretData is the secret with its data, for delivery to a task; it is
// never to be shown by the API.
func (b *Backend) SecretData(ctx context.Context, id string) (swarm.Secret, error) {
	return b.secrets.Get(ctx, id)
}

// ConfigData is the config with its data, for delivery to a task.
func (b *Backend) ConfigData(ctx context.Context, id string) (swarm.Config, error) {
	return b.configs.Get(ctx, id)
}
