package metrics

import (
	"sync"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/orchestrator"
	"github.com/shoal-dev/shoal/internal/store"
)

// staleAfter is how long the orchestrator's last pass stays reported: it
// passes at least every 5 s while it runs (on the leading manager only),
// so older figures are another manager's to give.
const staleAfter = 15 * time.Second

var (
	descServices = prometheus.NewDesc("shoal_services",
		"Services by mode (replicated, global, replicated-job, global-job), as the orchestrator last saw them (leading manager only).", []string{"mode"}, nil)
	descTasks = prometheus.NewDesc("shoal_tasks",
		"Tasks by current state and desired state, as the orchestrator last saw them (leading manager only).", []string{"state", "desired_state"}, nil)
	descServiceDesired = prometheus.NewDesc("shoal_service_desired_tasks",
		"Tasks a service should run (its replicas; global: its tasks desired running).", []string{"service"}, nil)
	descServiceRunning = prometheus.NewDesc("shoal_service_running_tasks",
		"A service's tasks running now.", []string{"service"}, nil)
	descUpdateState = prometheus.NewDesc("shoal_service_update_state",
		"1 for a service's rolling update or rollback state (updating, paused, completed, rollback_started, rollback_paused, rollback_completed).", []string{"service", "state"}, nil)
	descUpdateProgress = prometheus.NewDesc("shoal_service_update_progress_ratio",
		"Share of a service's desired tasks that run its current spec, while it is updating or rolling back (1: done).", []string{"service"}, nil)
)

func (m *Metrics) defineOrchestrator() {
	m.reconcile = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "shoal_orchestrator_reconcile_duration_seconds",
		Help:    "Time of one orchestrator pass: reading the state, Reconcile and writing the plan's tasks (container operations run on after it).",
		Buckets: fastBuckets,
	})
	m.reg.MustRegister(m.reconcile, &m.services)
}

// ObserveOrchestrator is the orchestrator's Observer: it keeps the counts
// of the state the pass decided from.
func (m *Metrics) ObserveOrchestrator(st orchestrator.State, took time.Duration) {
	m.reconcile.Observe(seconds(took))
	m.services.set(summarize(st), time.Now())
}

// serviceSummary is what a pass's state comes to.
type serviceSummary struct {
	modes    map[string]int
	tasks    map[[2]string]int
	services []serviceFigures
}

type serviceFigures struct {
	name             string
	desired, running int
	updated          int    // running tasks of the current spec
	update           string // UpdateStatus.State, "" if none
}

func summarize(st orchestrator.State) serviceSummary {
	s := serviceSummary{modes: map[string]int{}, tasks: map[[2]string]int{}}
	byService := map[string]*serviceFigures{}
	index := map[string]store.Service{}
	for _, svc := range st.Services {
		f := &serviceFigures{name: svc.Spec.Name}
		if svc.UpdateStatus != nil {
			f.update = string(svc.UpdateStatus.State)
		}
		byService[svc.ID], index[svc.ID] = f, svc
		s.modes[store.ModeName(svc.Spec.Mode)]++
	}
	for _, t := range st.Tasks {
		s.tasks[[2]string{string(t.Status.State), string(t.DesiredState)}]++
		f, ok := byService[t.ServiceID]
		if !ok || t.DesiredState != swarm.TaskStateRunning {
			continue
		}
		f.desired++
		if t.Status.State == swarm.TaskStateRunning {
			f.running++
			if t.SpecVersion == index[t.ServiceID].SpecVersion {
				f.updated++
			}
		}
	}
	for id, f := range byService {
		if r := index[id].Spec.Mode.Replicated; r != nil && r.Replicas != nil {
			f.desired = int(*r.Replicas)
		}
		s.services = append(s.services, *f)
	}
	return s
}

// serviceSnapshot is the last pass's summary, collected at scrape time.
type serviceSnapshot struct {
	mu  sync.Mutex
	sum serviceSummary
	at  time.Time
}

func (s *serviceSnapshot) set(sum serviceSummary, at time.Time) {
	s.mu.Lock()
	s.sum, s.at = sum, at
	s.mu.Unlock()
}

func (s *serviceSnapshot) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descServices, descTasks, descServiceDesired, descServiceRunning, descUpdateState, descUpdateProgress} {
		ch <- d
	}
}

func (s *serviceSnapshot) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	sum, at := s.sum, s.at
	s.mu.Unlock()
	if at.IsZero() || time.Since(at) > staleAfter {
		return
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	for mode, n := range sum.modes {
		gauge(descServices, n, mode)
	}
	for k, n := range sum.tasks {
		gauge(descTasks, n, k[0], k[1])
	}
	for _, f := range sum.services {
		gauge(descServiceDesired, f.desired, f.name)
		gauge(descServiceRunning, f.running, f.name)
		if f.update == "" {
			continue
		}
		gauge(descUpdateState, 1, f.name, f.update)
		progress := 1.0
		if f.desired > 0 {
			progress = min(float64(f.updated)/float64(f.desired), 1)
		}
		ch <- prometheus.MustNewConstMetric(descUpdateProgress, prometheus.GaugeValue, progress, f.name)
	}
}
