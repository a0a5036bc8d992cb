package services

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/store"
)

// CreateService validates spec as swarm mode does, checks that its image
// is on some node or can be pulled by one, and records the service; the
// orchestrator makes its tasks. encodedAuth is the client's
// X-Registry-Auth, kept for the nodes' pulls.
func (b *Backend) CreateService(ctx context.Context, spec swarm.ServiceSpec, encodedAuth string) (swarm.ServiceCreateResponse, error) {
	if err := validate(&spec); err != nil {
		return swarm.ServiceCreateResponse{}, err
	}
	if err := b.checkRefs(ctx, &spec); err != nil {
		return swarm.ServiceCreateResponse{}, err
	}
	normalize(&spec)
	warnings, err := b.checkImage(ctx, spec.TaskTemplate.ContainerSpec.Image, encodedAuth, "nothing was created")
	if err != nil {
		return swarm.ServiceCreateResponse{}, err
	}
	b.createMu.Lock()
	defer b.createMu.Unlock()
	if err := b.nameFree(ctx, spec.Name, ""); err != nil {
		return swarm.ServiceCreateResponse{}, err
	}
	id := store.NewID()
	ep, err := b.claimEndpoint(ctx, id, spec.EndpointSpec, nil) // ports.go
	if err != nil {
		return swarm.ServiceCreateResponse{}, err
	}
	now := b.now().UTC()
	svc, err := b.services.Create(ctx, id, spec, now)
	if err != nil {
		b.releaseClaims(ctx, id)
		return swarm.ServiceCreateResponse{}, fmt.Errorf("services: create %s: %w", spec.Name, err)
	}
	svc.Endpoint = ep
	if err := b.settleCreate(ctx, svc, encodedAuth); err != nil {
		b.releaseClaims(ctx, id)
		return swarm.ServiceCreateResponse{}, err
	}
	b.syncVIPs(ctx) // vip.go
	b.log.Info("service created", "service", spec.Name, "id", id)
	return swarm.ServiceCreateResponse{ID: id, Warnings: warnings}, nil
}

// settleCreate finishes a created record (the job status and registry
// auth swarm mode sets at create; its VIPs are allocated once the record
// names its networks: vip.go), and backs out if another
// manager created a service of the same name meanwhile: of two, the older
// one stays.
func (b *Backend) settleCreate(ctx context.Context, svc store.Service, encodedAuth string) error {
	_, err := b.services.Change(ctx, svc.ID, svc.Version.Index, func(s *store.Service) error {
		if isJob(s.Spec.Mode) {
			s.JobStatus = &swarm.JobStatus{LastExecution: s.CreatedAt}
		}
		s.RegistryAuth = encodedAuth
		s.Endpoint = svc.Endpoint
		return nil
	})
	if err != nil {
		_ = b.services.Delete(context.WithoutCancel(ctx), svc.ID)
		return fmt.Errorf("services: create %s: %w", svc.Spec.Name, err)
	}
	if err := b.nameFree(ctx, svc.Spec.Name, svc.ID); err != nil {
		_ = b.services.Delete(context.WithoutCancel(ctx), svc.ID)
		return err
	}
	// A secret or config removed between the check and the write: its
	// removal did not see this service (see secrets' removeUnused).
	if err := b.checkRefs(ctx, &svc.Spec); err != nil {
		_ = b.services.Delete(context.WithoutCancel(ctx), svc.ID)
		return err
	}
	return nil
}

// nameFree refuses name when a service other than self has it; with self
// set (after self was written), only one older than self counts.
func (b *Backend) nameFree(ctx context.Context, name, self string) error {
	list, _, err := b.services.List(ctx)
	if err != nil {
		return fmt.Errorf("services: list: %w", err)
	}
	var mine *store.Service
	for i := range list {
		if list[i].ID == self {
			mine = &list[i]
		}
	}
	for _, s := range list {
		if s.ID == self || s.Spec.Name != name {
			continue
		}
		if mine == nil || older(s, *mine) {
			return errNameTaken(name)
		}
	}
	return nil
}

func older(a, b store.Service) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.ID < b.ID
}

// checkImage refuses an image no node has and none can pull. When the
// engines cannot tell (none reachable), the create goes on with a warning,
// as swarm mode's does when it cannot reach the registry.
func (b *Backend) checkImage(ctx context.Context, image, encodedAuth, outcome string) ([]string, error) {
	if b.engines == nil {
		return nil, nil
	}
	err := b.engines.CheckImage(ctx, image, encodedAuth)
	switch {
	case err == nil:
		return nil, nil
	case errdefs.IsNotFound(err):
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("image %s is on no node and no node could pull it (%v): %s", image, err, outcome))
	}
	b.log.Warn("could not check a service's image", "image", image, "error", err)
	return []string{fmt.Sprintf("image %s could not be checked on the nodes (%v): each node will pull it when it starts a task", image, err)}, nil
}

// Services lists the services matching filters (id and name prefixes,
// label, mode), with their task counts when status is set.
func (b *Backend) Services(ctx context.Context, filters backend.Filters, status bool) ([]swarm.Service, error) {
	match, err := serviceMatcher(filters)
	if err != nil {
		return nil, err
	}
	list, _, err := b.services.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("services: list: %w", err)
	}
	out := []swarm.Service{}
	for _, s := range list {
		if match(s.Service) {
			out = append(out, s.Service)
		}
	}
	if err := b.withVIPs(ctx, out); err != nil { // vip.go
		return nil, err
	}
	if status && len(out) > 0 {
		if err := b.fillStatus(ctx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Service finds one service by ID, name or unique ID prefix.
func (b *Backend) Service(ctx context.Context, ref string, insertDefaults bool) (swarm.Service, error) {
	s, err := b.lookupService(ctx, ref)
	if err != nil {
		return swarm.Service{}, err
	}
	one := []swarm.Service{s.Service}
	if err := b.withVIPs(ctx, one); err != nil { // vip.go
		return swarm.Service{}, err
	}
	if insertDefaults {
		one[0].Spec = withDefaults(one[0].Spec)
	}
	return one[0], nil
}

// lookupService resolves ref as swarm mode does: full ID, then exact
// name, then ID prefix.
func (b *Backend) lookupService(ctx context.Context, ref string) (store.Service, error) {
	if ref == "" {
		return store.Service{}, errServiceNotFound(ref)
	}
	if s, err := b.services.Get(ctx, ref); err == nil {
		return s, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Service{}, fmt.Errorf("services: get %s: %w", ref, err)
	}
	list, _, err := b.services.List(ctx)
	if err != nil {
		return store.Service{}, fmt.Errorf("services: list: %w", err)
	}
	return pickService(list, ref)
}

// UpdateService replaces the spec of a service at opts.Version, or rolls
// it back to its previous spec (opts.Rollback "previous"), as swarm mode
// does: the orchestrator then rolls the tasks.
func (b *Backend) UpdateService(ctx context.Context, ref string, opts backend.ServiceUpdate) (swarm.ServiceUpdateResponse, error) {
	rollback, err := rollbackOf(opts.Rollback)
	if err != nil {
		return swarm.ServiceUpdateResponse{}, err
	}
	cur, err := b.lookupService(ctx, ref)
	if err != nil {
		return swarm.ServiceUpdateResponse{}, err
	}
	spec := opts.Spec
	if err := validate(&spec); err != nil {
		return swarm.ServiceUpdateResponse{}, err
	}
	if err := b.checkRefs(ctx, &spec); err != nil {
		return swarm.ServiceUpdateResponse{}, err
	}
	normalize(&spec)
	auth, err := registryAuth(cur, opts)
	if err != nil {
		return swarm.ServiceUpdateResponse{}, err
	}
	var warnings []string
	if !rollback && spec.TaskTemplate.ContainerSpec.Image != cur.Spec.TaskTemplate.ContainerSpec.Image {
		if warnings, err = b.checkImage(ctx, spec.TaskTemplate.ContainerSpec.Image, auth, "the service was not changed"); err != nil {
			return swarm.ServiceUpdateResponse{}, err
		}
	}
	if opts.Version.Index == 0 {
		// The store reads version 0 as "any version": a client's is
		// never 0, so this one is out of sequence as dockerd says.
		return swarm.ServiceUpdateResponse{}, ErrOutOfSequence
	}
	now := b.now().UTC()
	b.createMu.Lock() // the published ports are checked against the others'
	defer b.createMu.Unlock()
	_, err = b.services.Change(ctx, cur.ID, opts.Version.Index, func(s *store.Service) error {
		if err := applyUpdate(s, spec, rollback, auth, now); err != nil {
			return err
		}
		ep, err := b.claimEndpoint(ctx, s.ID, s.Spec.EndpointSpec, s.Endpoint.Ports) // ports.go
		s.Endpoint = ep
		return err
	})
	if err != nil {
		b.releaseClaims(ctx, cur.ID)
	}
	switch {
	case errors.Is(err, store.ErrConflict):
		return swarm.ServiceUpdateResponse{}, ErrOutOfSequence
	case errors.Is(err, store.ErrNotFound):
		return swarm.ServiceUpdateResponse{}, errServiceNotFound(cur.ID)
	case err != nil && isPublic(err):
		return swarm.ServiceUpdateResponse{}, err
	case err != nil:
		return swarm.ServiceUpdateResponse{}, fmt.Errorf("services: update %s: %w", cur.ID, err)
	}
	b.syncVIPs(ctx) // vip.go
	b.log.Info("service updated", "service", cur.Spec.Name, "id", cur.ID, "rollback", rollback)
	return swarm.ServiceUpdateResponse{Warnings: warnings}, nil
}

// isPublic reports whether err is one of the API's own answers (a check
// of applyUpdate), to pass on unwrapped.
func isPublic(err error) bool {
	return errdefs.IsInvalidArgument(err) || errdefs.IsNotImplemented(err)
}

func rollbackOf(v string) (bool, error) {
	switch v {
	case "", "none":
		return false, nil
	case "previous":
		return true, nil
	}
	return false, errdefs.ErrInvalidArgument.WithMessage("unrecognized rollback option " + v)
}

// registryAuth is the auth the nodes pull with after an update, as
// dockerd picks it: the client's, or else the current spec's or the
// previous one's (registryAuthFrom; the CLI sends previous-spec for a
// client-side rollback, against API < 1.28). A rollback (rollback=previous)
// takes the previous spec's whatever this says (see applyUpdate).
func registryAuth(cur store.Service, opts backend.ServiceUpdate) (string, error) {
	if opts.EncodedRegistryAuth != "" {
		return opts.EncodedRegistryAuth, nil
	}
	switch opts.RegistryAuthFrom {
	case "", swarm.RegistryAuthFromSpec:
		return cur.RegistryAuth, nil
	case swarm.RegistryAuthFromPreviousSpec:
		if cur.PreviousSpec == nil {
			return "", errNoPreviousSpecAuth
		}
		return cur.PreviousRegistryAuth, nil
	}
	return "", errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid registryAuthFrom '%s'", opts.RegistryAuthFrom))
}

// applyUpdate is the update of s to spec (or its rollback), checked as
// swarm mode checks it.
func applyUpdate(s *store.Service, spec swarm.ServiceSpec, rollback bool, auth string, now time.Time) error {
	if store.ModeName(s.Spec.Mode) != store.ModeName(spec.Mode) {
		return unimplemented("service mode change is not allowed")
	}
	if s.Spec.Name != spec.Name {
		return unimplemented("renaming services is not supported")
	}
	if rollback {
		if s.PreviousSpec == nil {
			return errNoPreviousSpec(s.ID)
		}
		cur := s.Spec
		s.Spec, s.PreviousSpec = *s.PreviousSpec, &cur
		s.RegistryAuth, s.PreviousRegistryAuth = s.PreviousRegistryAuth, s.RegistryAuth
		s.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateRollbackStarted,
			Message: "manually requested rollback", StartedAt: ptr(now)}
	} else {
		cur := s.Spec
		s.Spec, s.PreviousSpec = spec, &cur
		s.UpdateStatus = nil
		s.RegistryAuth, s.PreviousRegistryAuth = auth, s.RegistryAuth
	}
	// A rollback is a new spec for the tasks too: every task running
	// the spec rolled away from must be replaced.
	s.SpecVersion++
	s.UpdatedAt = now
	if s.JobStatus != nil {
		s.JobStatus.JobIteration.Index++
		s.JobStatus.LastExecution = now
	}
	return nil
}

// RemoveService deletes the service record; the orchestrator removes its
// tasks and their containers.
func (b *Backend) RemoveService(ctx context.Context, ref string) error {
	s, err := b.lookupService(ctx, ref)
	if err != nil {
		return err
	}
	if err := b.services.Delete(ctx, s.ID); errors.Is(err, store.ErrNotFound) {
		return errServiceNotFound(ref)
	} else if err != nil {
		return fmt.Errorf("services: remove %s: %w", s.ID, err)
	}
	b.syncVIPs(ctx) // vip.go: its VIPs are freed
	b.log.Info("service removed", "service", s.Spec.Name, "id", s.ID)
	return nil
}
