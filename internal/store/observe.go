package store

import (
	"sync/atomic"
	"time"
)

// WriteObserver is told of each write (a Raft proposal through the
// leader) once it is committed or failed: the metrics' proposal latency.
// It must not block.
type WriteObserver func(d time.Duration, err error)

// observers are the store's hooks for the metrics, set at wiring time.
type observers struct {
	writes        atomic.Pointer[WriteObserver]
	lastLeader    atomic.Uint64
	leaderChanges atomic.Uint64
}

// ObserveWrites makes every write of this member reported to obs.
func (s *Store) ObserveWrites(obs WriteObserver) { s.obs.writes.Store(&obs) }

// LeaderChanges counts the leaders this member has seen elected since it
// opened (the first one included). It looks at the current leader first,
// so a leader elected since the last tick of the leader tracking counts.
func (s *Store) LeaderChanges() uint64 {
	s.noteLeader(uint64(s.etcd.Server.Leader()))
	return s.obs.leaderChanges.Load()
}

func (s *Store) observeWrite(d time.Duration, err error) {
	if obs := s.obs.writes.Load(); obs != nil {
		(*obs)(d, err)
	}
}

// noteLeader counts a new leader (lead is etcd's member ID, 0 for none).
func (s *Store) noteLeader(lead uint64) {
	if old := s.obs.lastLeader.Swap(lead); lead != 0 && old != lead {
		s.obs.leaderChanges.Add(1)
	}
}
