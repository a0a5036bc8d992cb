package orchestrator

import (
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/shoal-dev/shoal/internal/store"
)

// TestScenarioStartCarriesTheServiceRegistryAuth: the loop hands the
// runtime the service's registry auth, so an image behind a registry that
// needs it runs only once the service has it.
func TestScenarioStartCarriesTheServiceRegistryAuth(t *testing.T) {
	h := newHarness(t, 1)
	h.rt.mu.Lock()
	h.rt.auth["reg:5000/app"] = "the-auth"
	h.rt.mu.Unlock()
	sp := spec("app", 1)
	sp.TaskTemplate.ContainerSpec.Image = "reg:5000/app"
	id := h.create(sp)
	h.eventually("the task rejected without the auth", func() bool {
		ts := h.list(id)
		return len(ts) > 0 && ts[0].Status.State == swarm.TaskStateRejected
	})
	svc := h.service(id)
	if _, err := h.svcs.Change(h.ctx, id, svc.Version.Index, func(s *store.Service) error {
		s.RegistryAuth = "the-auth"
		s.SpecVersion++ // as `docker service update --with-registry-auth` does
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.waitRunning(id, 1)
}
