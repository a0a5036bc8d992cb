package metrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/store"
)

func (m *Metrics) defineStore() {
	m.storeWrites = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "shoal_store_proposal_duration_seconds",
		Help:    "Time a write to the store took to be committed by a quorum (or to fail).",
		Buckets: lagBuckets,
	})
	m.storeFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shoal_store_proposal_failures_total",
		Help: "Writes to the store that failed (no quorum, timeouts; not version conflicts, which are answers).",
	})
}

// StoreView is what the metrics read of the store at scrape time.
type StoreView interface {
	IsLeader() bool
	Leader() (string, bool)
	LeaderChanges() uint64
	ObserveWrites(store.WriteObserver)
}

// WatchStore makes the metrics report st: its writes as they happen, its
// leadership at each scrape. Call it once per manager.
func (m *Metrics) WatchStore(st StoreView) {
	st.ObserveWrites(m.storeWrite)
	m.reg.MustRegister(m.storeWrites, m.storeFailures,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "shoal_store_leader_changes_total",
			Help: "Store leaders this manager's member has seen elected since it started (the first included).",
		}, func() float64 { return float64(st.LeaderChanges()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_store_has_quorum",
			Help: "1 while this manager's store member knows a leader (a quorum is up), else 0: writes fail without one.",
		}, func() float64 { _, ok := st.Leader(); return boolValue(ok) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_store_is_leader",
			Help: "1 while this manager's store member is the leader (it runs the orchestrator), else 0.",
		}, func() float64 { return boolValue(st.IsLeader()) }),
	)
}

func (m *Metrics) storeWrite(d time.Duration, err error) {
	m.storeWrites.Observe(seconds(d))
	if err != nil && !answer(err) {
		m.storeFailures.Inc()
	}
}

// answer: the write reached the store, which refused it.
func answer(err error) bool {
	return errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict)
}

// WatchTunnels reports the agent tunnels connected to this manager.
func (m *Metrics) WatchTunnels(up func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shoal_agent_tunnels",
		Help: "Nodes' agent tunnels connected to this manager (built-in cluster).",
	}, func() float64 { return float64(up()) }))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
