package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

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
// last voting member. A leader being removed first hands its leadership
// to another voter, and the removal is asked of the other members, so a
// member can remove itself (it stops once it applies its removal).
func (s *Store) RemoveMember(ctx context.Context, name string) error {
	if err := s.alive(); err != nil {
		return err
	}
	var target *membership.Member
	var others []*membership.Member
	for _, m := range s.etcd.Server.Cluster().Members() {
		switch {
		case m.Name == name:
			target = m
		case !m.IsLearner:
			others = append(others, m)
		}
	}
	if target == nil {
		return fmt.Errorf("%w: %q", ErrNoMember, name)
	}
	if !target.IsLearner && len(others) == 0 {
		return ErrLastVoter
	}
	var urls []string
	for _, m := range others {
		urls = append(urls, m.ClientURLs...)
	}
	if len(urls) == 0 {
		return fmt.Errorf("%w: no other member to ask", ErrNoQuorum)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	if !target.IsLearner && s.etcd.Server.Leader() == target.ID {
		if err := s.moveLeader(ctx, target, others); err != nil {
			return err
		}
	}
	c, err := newClient(s.cfg, urls)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.MemberRemove(clientv3.WithRequireLeader(ctx), uint64(target.ID))
	if errors.Is(err, rpctypes.ErrMemberNotFound) {
		return fmt.Errorf("%w: %q", ErrNoMember, name)
	}
	if err != nil {
		return fmt.Errorf("store: remove member %s: %w", name, mapErr(err))
	}
	s.log.Info("store: member removed", "name", name)
	return nil
}

// moveLeader asks the leader (target) to hand leadership to the first
// reachable voter of others, and waits until this member sees the change.
func (s *Store) moveLeader(ctx context.Context, leader *membership.Member, others []*membership.Member) error {
	var to *membership.Member
	for _, m := range others {
		if s.probe(ctx, m.ClientURLs) {
			to = m
			break
		}
	}
	if to == nil {
		return fmt.Errorf("%w: no reachable member to hand leadership to", ErrNoQuorum)
	}
	c, err := newClient(s.cfg, leader.ClientURLs)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.MoveLeader(ctx, uint64(to.ID)); err != nil {
		return fmt.Errorf("store: move leadership to %s: %w", to.Name, mapErr(err))
	}
	s.log.Info("store: leadership moved", "from", leader.Name, "to", to.Name)
	tick := time.NewTicker(s.cfg.Heartbeat / 2)
	defer tick.Stop()
	for s.etcd.Server.Leader() != to.ID {
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: move leadership: %w", mapErr(ctx.Err()))
		case <-tick.C:
		}
	}
	return nil
}

// Stopped is closed when this member has stopped, e.g. after applying its
// own removal from the cluster.
func (s *Store) Stopped() <-chan struct{} { return s.etcd.Server.StopNotify() }
