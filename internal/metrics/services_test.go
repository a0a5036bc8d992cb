package metrics_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-dev/shoal/internal/orchestrator"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

// The store's leadership and writes, and the orchestrator's services,
// tasks, rollout and passes, as the real orchestrator over simulated
// engines produces them.
func TestStoreAndServiceMetrics(t *testing.T) {
	s := startShoal(t, 2)
	st := storetest.Open(t)
	s.m.WatchStore(st)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	orch := orchestrator.New(orchestrator.Config{Store: st, Runtime: s.mgr.TaskRuntime(), Observe: s.m.ObserveOrchestrator,
		Debounce: 10 * time.Millisecond, DownGrace: -1, Logger: slog.New(slog.DiscardHandler)})
	go func() { _ = orch.Run(ctx) }()

	replicas := uint64(2)
	spec := swarm.ServiceSpec{
		Annotations:  swarm.Annotations{Name: "web"},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "busybox"}},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		UpdateConfig: &swarm.UpdateConfig{Parallelism: 1, Monitor: 50 * time.Millisecond},
	}
	svcs := store.NewServices(st)
	svc, err := svcs.Create(ctx, store.NewID(), spec, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	web := map[string]string{"service": "web"}
	waitUntil(t, "web runs 2 tasks", func() bool {
		v, _ := value(s.scrape(t), "shoal_service_running_tasks", web)
		return v == 2
	})
	fams := s.scrape(t)
	wantValue(t, fams, "shoal_services", map[string]string{"mode": "replicated"}, equals(1))
	wantValue(t, fams, "shoal_tasks", map[string]string{"state": "running", "desired_state": "running"}, equals(2))
	wantValue(t, fams, "shoal_service_desired_tasks", web, equals(2))
	wantValue(t, fams, "shoal_orchestrator_reconcile_duration_seconds", nil, positive)
	wantValue(t, fams, "shoal_store_has_quorum", nil, equals(1))
	wantValue(t, fams, "shoal_store_is_leader", nil, equals(1))
	wantValue(t, fams, "shoal_store_leader_changes_total", nil, equals(1))
	wantValue(t, fams, "shoal_store_proposal_duration_seconds", nil, positive)
	wantValue(t, fams, "shoal_store_proposal_failures_total", nil, equals(0))

	spec.TaskTemplate.ContainerSpec.Labels = map[string]string{"rev": "2"}
	if _, err := svcs.Update(ctx, svc.ID, svc.Version.Index, spec, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the rolling update is reported completed", func() bool {
		v, _ := value(s.scrape(t), "shoal_service_update_state", map[string]string{"service": "web", "state": "completed"})
		return v == 1
	})
	wantValue(t, s.scrape(t), "shoal_service_update_progress_ratio", web, equals(1))
}
