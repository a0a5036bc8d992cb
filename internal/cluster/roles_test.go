package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

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
		n.done <- err // for the cleanup waiting on it
	case <-time.After(30 * time.Second):
		t.Fatal("no role change")
	}
	n.Close()
	cfg := n.cfg
	cfg.Init, cfg.Token = false, ""
	return mustStart(t, cfg)
}
