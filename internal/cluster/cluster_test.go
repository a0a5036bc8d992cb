package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/ca"
)

// TestManagerAndWorker runs a manager and a worker in-process on loopback,
// the worker joining over the real cluster port and carrying the
// manager's requests to its (simulated) engine, and walks the node API.
func TestManagerAndWorker(t *testing.T) {
	m := initManager(t, "mgr")
	ctx := ctxT(t, 90*time.Second)
	sw, err := m.Swarm(ctx)
	if err != nil || sw.ID != m.ClusterID() || sw.Version.Index != 1 {
		t.Fatalf("swarm = %+v, %v", sw, err)
	}
	if !m.IsManager() || !m.IsLeader() {
		t.Fatal("the first manager does not lead")
	}

	t.Run("token for another CA", func(t *testing.T) {
		other, err := ca.NewRootCA("other", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		tok, err := ca.NewJoinToken(other.CertPEM())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := start(t, joinCfg(t, m, "intruder", tok.String())); !errors.Is(err, ca.ErrTokenCAMismatch) {
			t.Fatalf("join with another CA's token: %v", err)
		}
	})

	w := mustStart(t, joinCfg(t, m, "worker1", sw.JoinTokens.Worker))
	if w.IsManager() || w.NodeID() == "" || w.ClusterID() != m.ClusterID() {
		t.Fatalf("worker state %+v", w.st)
	}

	t.Run("worker is ready and carries requests to its engine", func(t *testing.T) {
		eventually(t, 20*time.Second, "worker ready", func() error {
			n, err := m.Node(ctx, "worker1")
			if err != nil {
				return err
			}
			if n.Status.State != swarm.NodeStateReady {
				return fmt.Errorf("worker is %s", n.Status.State)
			}
			return nil
		})
		hc := &http.Client{Transport: m.tunnels.Endpoint(w.NodeID()).RoundTripper()}
		resp, err := hc.Get("http://engine/_ping")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "OK" {
			t.Fatalf("ping through the tunnel: %d %q", resp.StatusCode, body)
		}
		nodes, err := m.Nodes(ctx)
		if err != nil || len(nodes) != 2 || nodes[0].Description.Hostname != "mgr" || nodes[1].ID != w.NodeID() {
			t.Fatalf("nodes = %+v, %v", nodes, err)
		}
		if nodes[0].ManagerStatus == nil || !nodes[0].ManagerStatus.Leader {
			t.Fatalf("manager status = %+v", nodes[0].ManagerStatus)
		}
		if info := m.SwarmInfo(ctx); info.Nodes != 2 || info.Managers != 1 || info.Cluster == nil {
			t.Fatalf("swarm info = %+v", info)
		}
	})

	t.Run("update with versions", func(t *testing.T) {
		n, err := m.Node(ctx, w.NodeID()[:6])
		if err != nil {
			t.Fatal(err)
		}
		spec := n.Spec
		spec.Labels = map[string]string{"zone": "a"}
		spec.Availability = swarm.NodeAvailabilityDrain
		if err := m.UpdateNode(ctx, w.NodeID(), n.Version.Index, spec); err != nil {
			t.Fatal(err)
		}
		err = m.UpdateNode(ctx, w.NodeID(), n.Version.Index, spec)
		if !errors.Is(err, ErrOutOfSequence) || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("update at an old version: %v", err)
		}
		if got := m.NodeLabels("tunnel://" + w.NodeID()); got["zone"] != "a" {
			t.Fatalf("node labels = %v", got)
		}
		n2, _ := m.Node(ctx, "worker1")
		if n2.Version.Index != n.Version.Index+1 || n2.Spec.Availability != swarm.NodeAvailabilityDrain {
			t.Fatalf("after update: %+v", n2)
		}
		if err := m.UpdateNode(ctx, "nosuchnode", 1, spec); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("update of a missing node: %v", err)
		}
	})

	t.Run("the last manager cannot be demoted or removed", func(t *testing.T) {
		n, err := m.Node(ctx, m.NodeID())
		if err != nil {
			t.Fatal(err)
		}
		err = m.UpdateNode(ctx, m.NodeID(), n.Version.Index, swarm.NodeSpec{Role: swarm.NodeRoleWorker})
		if !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("demote the last manager: %v", err)
		}
		if err := m.RemoveNode(ctx, m.NodeID(), true); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("remove self: %v", err)
		}
	})

	t.Run("renewal", func(t *testing.T) {
		before := w.leaf().SerialNumber
		if err := w.renew(ctx, w.client(t)); err != nil {
			t.Fatal(err)
		}
		if after := w.leaf().SerialNumber; after.Cmp(before) == 0 {
			t.Fatal("the certificate was not replaced")
		}
		if d := w.renewIn(); d <= 0 {
			t.Fatalf("a fresh certificate is due for renewal in %s", d)
		}
	})

	t.Run("rotated token refused", func(t *testing.T) {
		old := sw.JoinTokens.Worker
		if err := m.UpdateSwarm(ctx, backend.SwarmUpdate{Version: sw.Version.Index, RotateWorkerToken: true}); err != nil {
			t.Fatal(err)
		}
		if err := m.UpdateSwarm(ctx, backend.SwarmUpdate{Version: sw.Version.Index, RotateWorkerToken: true}); !errors.Is(err, ErrOutOfSequence) {
			t.Fatalf("rotate at an old version: %v", err)
		}
		sw2, err := m.Swarm(ctx)
		if err != nil || sw2.JoinTokens.Worker == old || sw2.JoinTokens.Manager != sw.JoinTokens.Manager || sw2.Version.Index != sw.Version.Index+1 {
			t.Fatalf("after rotation: %+v, %v", sw2.JoinTokens, err)
		}
		if _, err := start(t, joinCfg(t, m, "late", old)); !errors.Is(err, ErrJoinRefused) {
			t.Fatalf("join with a rotated token: %v", err)
		}
	})

	t.Run("remove and revoke", func(t *testing.T) {
		if err := m.RemoveNode(ctx, "worker1", false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("remove a ready node without force: %v", err)
		}
		if err := m.RemoveNode(ctx, "worker1", true); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Node(ctx, w.NodeID()); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("removed node: %v", err)
		}
		if !slices.Contains(m.revokedIDs(ctx), w.NodeID()) {
			t.Fatal("the removed node is not revoked")
		}
		// Its certificate no longer opens the cluster port, nor its tunnel;
		// the manager says why, and the node stops instead of retrying.
		if _, err := w.fetchSelf(ctx, w.client(t)); !errors.Is(err, ErrRemoved) {
			t.Fatalf("a revoked node reading its record: %v, want ErrRemoved", err)
		}
		select {
		case err := <-w.done:
			if !errors.Is(err, ErrRemoved) {
				t.Fatalf("the removed node's Run returned %v, want ErrRemoved", err)
			}
			w.done <- err
		case <-time.After(3 * selfPeriod):
			t.Fatal("the removed node is still running")
		}
		eventually(t, 10*time.Second, "tunnel closed", func() error {
			for _, p := range m.tunnels.Connected() {
				if p.Identity.NodeID == w.NodeID() {
					return errors.New("still connected")
				}
			}
			return nil
		})
	})
}

// A manager restarted from its data directory comes back as itself.
func TestRestart(t *testing.T) {
	cfg := config(t, "mgr")
	cfg.Init = true
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctxT(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	id, cluster := c.NodeID(), c.ClusterID()
	c.Close()
	cfg.Init = false
	again := mustStart(t, cfg)
	if again.NodeID() != id || again.ClusterID() != cluster || !again.IsManager() {
		t.Fatalf("restarted as %s of %s (manager %v), want %s of %s", again.NodeID(), again.ClusterID(), again.IsManager(), id, cluster)
	}
	if _, err := again.Node(ctxT(t, 10*time.Second), id); err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	empty, _ := New(cfg)
	if err := empty.Start(context.Background()); !errors.Is(err, ErrNoCluster) {
		t.Fatalf("start on an empty data directory: %v", err)
	}
}

// A worker leaves (shoal leave): it shows Down, its run ends with ErrLeft
// and its membership is gone. A manager leaves only when forced.
func TestLeave(t *testing.T) {
	m := initManager(t, "mgr")
	ctx := ctxT(t, 90*time.Second)
	w := joinWorker(t, ctx, m, "worker1")
	eventually(t, 20*time.Second, "worker ready", func() error {
		n, err := m.Node(ctx, "worker1")
		if err == nil && n.Status.State != swarm.NodeStateReady {
			err = fmt.Errorf("worker is %s", n.Status.State)
		}
		return err
	})
	if err := Leave(ctx, Config{DataDir: w.cfg.DataDir}); err != nil {
		t.Fatal(err)
	}
	if HasMembership(w.cfg.DataDir) {
		t.Fatal("the worker's data directory still holds its membership")
	}
	if n, err := m.Node(ctx, "worker1"); err != nil || n.Status.State != swarm.NodeStateDown {
		t.Fatalf("after leaving, the worker is %+v, %v; want Down", n, err)
	}
	select {
	case err := <-w.done:
		if !errors.Is(err, ErrLeft) {
			t.Fatalf("the worker's Run returned %v, want ErrLeft", err)
		}
		w.done <- err
	case <-time.After(3 * selfPeriod):
		t.Fatal("the worker that left is still running")
	}
	if err := m.RemoveNode(ctx, "worker1", false); err != nil {
		t.Fatalf("docker node rm of a node that left: %v", err)
	}
	if err := Leave(ctx, Config{DataDir: m.cfg.DataDir}); !errors.Is(err, ErrManagerLeave) {
		t.Fatalf("shoal leave on a manager: %v", err)
	}

	err := m.LeaveSwarm(ctx, false)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "Removing the last manager erases all current state of the swarm") {
		t.Fatalf("leave of the last manager without force: %v", err)
	}
	if err := m.LeaveSwarm(ctx, true); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-m.done:
		if !errors.Is(err, ErrLeft) {
			t.Fatalf("the manager's Run returned %v, want ErrLeft", err)
		}
		m.done <- err
	case <-time.After(5 * time.Second):
		t.Fatal("the manager that left is still running")
	}
}

// The refusal of a removed node is logged once per refusedLogEvery.
func TestRefusalLogRateLimited(t *testing.T) {
	c, err := New(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if !c.shouldLogRefusal("n1", now) || c.shouldLogRefusal("n1", now.Add(time.Second)) {
		t.Fatal("a second refusal within the interval was logged")
	}
	if !c.shouldLogRefusal("n2", now) {
		t.Fatal("another node's refusal was not logged")
	}
	if !c.shouldLogRefusal("n1", now.Add(refusedLogEvery)) {
		t.Fatal("a refusal after the interval was not logged")
	}
}
