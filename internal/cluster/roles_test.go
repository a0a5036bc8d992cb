package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
)

// TestPromoteDemote promotes a worker to manager (it joins the store as a
// second member) and demotes it back, each time through its own agent
// loop noticing its record and restarting in the new role.
func TestPromoteDemote(t *testing.T) {
	m := initManager(t, "mgr")
	ctx := ctxT(t, 120*time.Second)
	sw, err := m.Swarm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := mustStart(t, joinCfg(t, m, "node1", sw.JoinTokens.Worker))

	setRole(t, m, w.NodeID(), swarm.NodeRoleWorker, swarm.NodeRoleManager)
	w = restartAfterRoleChange(t, w)
	if !w.IsManager() || len(w.st.StoreJoin) != 0 {
		t.Fatalf("after promotion: manager %v, state %+v", w.IsManager(), w.st)
	}
	eventually(t, 20*time.Second, "two voting managers", func() error {
		members := m.members(ctx)
		if len(members) != 2 || members[w.NodeID()].Learner {
			return fmt.Errorf("members %+v", members)
		}
		return nil
	})
	if !w.root.CanSign() {
		t.Fatal("the promoted manager has no CA key")
	}
	if info := m.SwarmInfo(ctx); info.Managers != 2 {
		t.Fatalf("swarm info after promotion: %+v", info)
	}

	setRole(t, m, w.NodeID(), swarm.NodeRoleManager, swarm.NodeRoleWorker)
	w = restartAfterRoleChange(t, w)
	if w.IsManager() || w.store != nil {
		t.Fatalf("after demotion: manager %v", w.IsManager())
	}
	if members := m.members(ctx); len(members) != 1 {
		t.Fatalf("members after demotion: %+v", members)
	}
}

// setRole changes a node's role through the node API.
func setRole(t *testing.T, m *node, id string, from, to swarm.NodeRole) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	n, err := m.Node(ctx, id)
	if err != nil || n.Spec.Role != from {
		t.Fatalf("node %s: %+v, %v", id, n, err)
	}
	spec := n.Spec
	spec.Role = to
	if err := m.UpdateNode(ctx, id, n.Version.Index, spec); err != nil {
		t.Fatalf("set role %s: %v", to, err)
	}
}

// restartAfterRoleChange waits for n's Run to report its role changed and
// starts it again from its data directory, as shoal's run loop does.
func restartAfterRoleChange(t *testing.T, n *node) *node {
	t.Helper()
	select {
	case err := <-n.done:
		if !errors.Is(err, ErrRoleChanged) {
			t.Fatalf("run ended with %v, want ErrRoleChanged", err)
		}
		n.done <- err // for stop, waiting on it
	case <-time.After(30 * time.Second):
		t.Fatal("no role change")
	}
	n.stop()
	cfg := n.cfg
	cfg.Init, cfg.Token = false, ""
	cfg.UnlockKey = n.HeldUnlockKey() // as shoal's run loop does
	return mustStart(t, cfg)
}

// TestThreeManagers joins two managers with the manager token, then stops
// one: demoting another would leave one reachable voter of two, so it is
// refused; the stopped one may be demoted, its leaving costs nothing.
func TestThreeManagers(t *testing.T) {
	m := initManager(t, "m1")
	ctx := ctxT(t, 120*time.Second)
	sw, err := m.Swarm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m2 := mustStart(t, joinCfg(t, m, "m2", sw.JoinTokens.Manager))
	m3 := mustStart(t, joinCfg(t, m, "m3", sw.JoinTokens.Manager))
	for _, n := range []*node{m2, m3} {
		if !n.IsManager() || !n.root.CanSign() {
			t.Fatalf("%s joined as manager %v, CA key %v", n.cfg.Hostname, n.IsManager(), n.root.CanSign())
		}
	}
	eventually(t, 20*time.Second, "three reachable voters", func() error {
		return voters(m, ctx, 3)
	})
	nodes, err := m2.Nodes(ctx)
	if err != nil || len(nodes) != 3 {
		t.Fatalf("nodes seen by m2: %d, %v", len(nodes), err)
	}
	for _, n := range nodes {
		if n.ManagerStatus == nil || n.ManagerStatus.Addr == "" {
			t.Fatalf("node %s: manager status %+v", n.Description.Hostname, n.ManagerStatus)
		}
	}

	m3.stop()
	eventually(t, 20*time.Second, "m3 unreachable", func() error {
		return voters(m, ctx, 2)
	})
	n2, err := m.Node(ctx, m2.NodeID())
	if err != nil {
		t.Fatal(err)
	}
	err = m.UpdateNode(ctx, m2.NodeID(), n2.Version.Index, swarm.NodeSpec{Role: swarm.NodeRoleWorker})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "loss of quorum") {
		t.Fatalf("demote with a voter down: %v", err)
	}
	n3, err := m.Node(ctx, m3.NodeID())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.UpdateNode(ctx, m3.NodeID(), n3.Version.Index, swarm.NodeSpec{Role: swarm.NodeRoleWorker}); err != nil {
		t.Fatalf("demote the stopped manager: %v", err)
	}
	eventually(t, 20*time.Second, "m3 out of the store", func() error {
		if _, ok := m.members(ctx)[m3.NodeID()]; ok {
			return errors.New("still a member")
		}
		return nil
	})
}

// voters checks that m sees want reachable voting members.
func voters(m *node, ctx context.Context, want int) error {
	n := 0
	for _, mem := range m.members(ctx) {
		if !mem.Learner && mem.Reachable {
			n++
		}
	}
	if n != want {
		return fmt.Errorf("%d reachable voters, want %d", n, want)
	}
	return nil
}

// A demotion goes on when its store member's shutdown hangs, and reports
// one that ended.
func TestCloseWithinDoesNotWaitForAHungClose(t *testing.T) {
	if !closeWithin(func() {}, time.Minute) {
		t.Fatal("a close that returned at once was reported as still running")
	}
	hung := make(chan struct{})
	defer close(hung)
	if closeWithin(func() { <-hung }, 10*time.Millisecond) {
		t.Fatal("a close that never returned was reported as done")
	}
}
