package run

import (
	"context"
	"log/slog"
	"time"
)

// Leadership says whether this manager leads the cluster now. Only the
// leader runs the cluster-wide loops (rescheduling, later orchestration):
// two managers doing them at once would each recreate the same container.
type Leadership interface {
	Leading() bool
}

// Single is the leadership of a lone `shoal manage`: it always leads.
type Single struct{}

// Leading is always true.
func (Single) Leading() bool { return true }

// StoreElection is the built-in cluster's leadership: the manager whose
// member leads the replicated store leads the cluster, so a partitioned
// minority (no store leader on its side) leads nothing.
type StoreElection struct {
	Store interface{ IsLeader() bool } // *cluster.Cluster
}

// Leading says whether this member leads the store.
func (s StoreElection) Leading() bool { return s.Store.IsLeader() }

// Replication is the leadership of `shoal manage --replication`: the
// primary elected through the discovery store (or following the swarm
// leader) leads; replicas forward to it.
type Replication struct {
	Handler interface {
		Primary() (addr string, self bool)
	} // *replica.Handler
}

// Leading says whether this manager is the primary.
func (r Replication) Leading() bool { _, self := r.Handler.Primary(); return self }

// DefaultLeaderPoll is how often a leader-only component checks its
// leadership: a change is acted on within this time.
const DefaultLeaderPoll = 250 * time.Millisecond

// LeaderOnly runs a component only while this manager leads.
type LeaderOnly struct {
	Name       string
	Leadership Leadership
	Component  Component
	Poll       time.Duration // DefaultLeaderPoll if zero
	Log        *slog.Logger  // may be nil
}

// Run starts the component each time leadership is gained and cancels it
// (and waits for it) each time it is lost, until ctx ends. A failure of
// the component while leading is LeaderOnly's failure.
func (l *LeaderOnly) Run(ctx context.Context) error {
	poll := l.Poll
	if poll <= 0 {
		poll = DefaultLeaderPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if l.Leadership.Leading() {
			if err := l.lead(ctx, t.C); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// lead runs the component until leadership is lost or ctx ends.
func (l *LeaderOnly) lead(ctx context.Context, tick <-chan time.Time) error {
	l.logf("leading: starting")
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Component.Run(cctx) }()
	stop := func() {
		cancel()
		if done != nil {
			<-done
		}
	}
	for {
		select {
		case err := <-done:
			if err != nil && cctx.Err() == nil {
				return err
			}
			done = nil // returned early: it stays stopped until leadership is regained
		case <-tick:
			if l.Leadership.Leading() {
				continue
			}
			l.logf("not leading any more: stopping")
			stop()
			return nil
		case <-ctx.Done():
			stop()
			return nil
		}
	}
}

func (l *LeaderOnly) logf(msg string) {
	if l.Log != nil {
		l.Log.Info(msg, "component", l.Name)
	}
}
