package store

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
)

// Member is one member of the store as this member sees it: enough for
// `docker node ls` (MANAGER STATUS Leader / Reachable / Unreachable).
type Member struct {
	ID         uint64
	Name       string
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
	Leader     bool
	// Reachable says this member reached the other's client port just now.
	Reachable bool
}

// IsLeader reports whether this member is the Raft leader.
func (s *Store) IsLeader() bool {
	srv := s.etcd.Server
	return srv.Leader() != 0 && srv.Leader() == srv.MemberID()
}

// Leader returns the leader's name as this member last heard it; false
// while no leader is known (an election, or this member lost the quorum).
func (s *Store) Leader() (string, bool) {
	lead := s.etcd.Server.Leader()
	if lead == 0 {
		return "", false
	}
	m := s.etcd.Server.Cluster().Member(lead)
	if m == nil {
		return "", false
	}
	return m.Name, true
}

// Members lists the members from this member's copy of the membership (so it
// works without quorum) and probes each one's client port in parallel,
// bounded by the probe timeout.
func (s *Store) Members(ctx context.Context) ([]Member, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	lead := s.etcd.Server.Leader()
	ms := s.etcd.Server.Cluster().Members()
	out := make([]Member, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		out[i] = toMember(m, lead)
		wg.Go(func() { out[i].Reachable = s.probe(ctx, m.ClientURLs) })
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func toMember(m *membership.Member, lead types.ID) Member {
	return Member{
		ID:         uint64(m.ID),
		Name:       m.Name,
		PeerURLs:   append([]string(nil), m.PeerURLs...),
		ClientURLs: append([]string(nil), m.ClientURLs...),
		Learner:    m.IsLearner,
		Leader:     m.ID == lead,
	}
}

func (s *Store) probe(ctx context.Context, urls []string) bool {
	if len(urls) == 0 {
		return false // added but never started
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
	defer cancel()
	_, err := s.client.Status(ctx, urls[0])
	return err == nil
}

// RemoveMember removes the named member from the store (`docker node rm`
// or demote of a manager). It needs a quorum, and refuses to remove the
// last voting member.
func (s *Store) RemoveMember(ctx context.Context, name string) error {
	var target *membership.Member
	voters := 0
	for _, m := range s.etcd.Server.Cluster().Members() {
		if m.Name == name {
			target = m
		}
		if !m.IsLearner {
			voters++
		}
	}
	if target == nil {
		return fmt.Errorf("%w: %q", ErrNoMember, name)
	}
	if !target.IsLearner && voters == 1 {
		return ErrLastVoter
	}
	return s.write(ctx, "remove member "+name, func(ctx context.Context) error {
		_, err := s.client.MemberRemove(ctx, uint64(target.ID))
		return err
	})
}
