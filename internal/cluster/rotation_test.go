package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"

	"github.com/shoal-dev/shoal/internal/backend"
	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/internal/cluster/nodeapi"
)

// TestCertExpiryAndRootRotation runs a manager and a worker in-process:
// swarm update's certificate lifetime is kept, shown and used, and a root
// CA rotation re-issues both nodes' certificates under a new root without
// cutting the worker off, then drops the old root, as docker swarm ca
// --rotate waits for.
func TestCertExpiryAndRootRotation(t *testing.T) {
	m := initManager(t, "mgr")
	ctx := ctxT(t, 120*time.Second)
	sw, err := m.Swarm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := mustStart(t, joinCfg(t, m, "worker1", sw.JoinTokens.Worker))
	waitReady(t, m, "worker1")

	t.Run("cert expiry", func(t *testing.T) {
		err := updateSpec(ctx, m, func(s *swarm.Spec) { s.CAConfig.NodeCertExpiry = 59 * time.Minute })
		if !errors.Is(err, nodeapi.ErrCertExpiryTooShort) || !errdefs.IsInvalidArgument(err) {
			t.Fatalf("59m accepted: %v", err)
		}
		if err := updateSpec(ctx, m, func(s *swarm.Spec) { s.CAConfig.NodeCertExpiry = 2 * time.Hour }); err != nil {
			t.Fatal(err)
		}
		sw, _ := m.Swarm(ctx)
		if got := sw.Spec.CAConfig.NodeCertExpiry; got != 2*time.Hour {
			t.Fatalf("swarm shows a node certificate expiry of %s", got)
		}
		// The worker's 90-day certificate is now renewed within the 2h window.
		eventually(t, 10*time.Second, "renewal brought forward", func() error {
			if d := w.renewIn(); d > 2*time.Hour*8/10 {
				return fmt.Errorf("renewal due in %s", d)
			}
			return nil
		})
	})

	oldRoot := m.root.CertPEM()
	oldLeaf := w.leaf()
	oldToken, created := sw.JoinTokens.Worker, sw.CreatedAt
	t.Run("rotation", func(t *testing.T) {
		if err := updateSpec(ctx, m, func(s *swarm.Spec) { s.CAConfig.ForceRotate++ }); err != nil {
			t.Fatal(err)
		}
		sw, _ := m.Swarm(ctx)
		if !sw.RootRotationInProgress || sw.TLSInfo.TrustRoot != string(oldRoot) || sw.Spec.CAConfig.ForceRotate != 1 {
			t.Fatalf("just after the update: in progress %v, ForceRotate %d", sw.RootRotationInProgress, sw.Spec.CAConfig.ForceRotate)
		}
		eventually(t, 60*time.Second, "rotation done as docker swarm ca --rotate sees it", func() error {
			return rotationDone(ctx, m)
		})
	})

	t.Run("after the rotation", func(t *testing.T) {
		sw, _ := m.Swarm(ctx)
		if sw.TLSInfo.TrustRoot == string(oldRoot) || !bytes.Equal(w.root.TrustPEM(), []byte(sw.TLSInfo.TrustRoot)) {
			t.Fatal("the worker does not trust exactly the new root")
		}
		newRoot := m.root.Certificate()
		for name, n := range map[string]*node{"manager": m, "worker": w} {
			if err := n.leaf().CheckSignatureFrom(newRoot); err != nil {
				t.Fatalf("%s certificate not issued by the new root: %v", name, err)
			}
		}
		if life := w.leaf().NotAfter.Sub(w.leaf().NotBefore); life > 2*time.Hour+10*time.Minute {
			t.Fatalf("the worker's new certificate lives %s, not the cluster's 2h", life)
		}
		if _, err := m.root.VerifyNode(oldLeaf); !errors.Is(err, ca.ErrUntrusted) {
			t.Fatalf("a certificate of the old root is still accepted: %v", err)
		}
		if sw.JoinTokens.Worker == oldToken {
			t.Fatal("the join tokens still pin the old root")
		}
		if !sw.CreatedAt.Equal(created) {
			t.Fatalf("the swarm's CreatedAt moved from %s to %s", created, sw.CreatedAt)
		}
		// A node is sent the roots only when it trusts others.
		for trust, want := range map[string][]byte{trustDigest(w.root.TrustPEM()): nil, "stale": m.root.TrustPEM()} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+m.ClusterAddr()+"/self?trust="+trust, nil)
			var self selfResponse
			if err := doJSON(w.client(t), req, &self); err != nil || !bytes.Equal(self.Roots, want) || self.Renew || self.CertExpiry != 2*time.Hour {
				t.Fatalf("GET /self?trust=%s: roots %d bytes (want %d), renew %v, expiry %s, %v", trust, len(self.Roots), len(want), self.Renew, self.CertExpiry, err)
			}
		}
		waitReady(t, m, "worker1")
		hc := &http.Client{Transport: m.tunnels.Endpoint(w.NodeID()).RoundTripper()}
		resp, err := hc.Get("http://engine/_ping")
		if err != nil {
			t.Fatalf("the worker's tunnel after the rotation: %v", err)
		}
		resp.Body.Close()
	})
}

// updateSpec is docker swarm update: read the spec, change it, send it back.
func updateSpec(ctx context.Context, m *node, change func(*swarm.Spec)) error {
	sw, err := m.Swarm(ctx)
	if err != nil {
		return err
	}
	spec := sw.Spec
	change(&spec)
	return m.UpdateSwarm(ctx, backend.SwarmUpdate{Version: sw.Version.Index, Spec: &spec})
}

// rotationDone is docker CLI's test of a finished root rotation
// (cli/command/swarm/progress/root_rotation.go): no rotation in progress,
// every node's certificate from the swarm's issuer and every node trusting
// the swarm's root.
func rotationDone(ctx context.Context, m *node) error {
	sw, err := m.Swarm(ctx)
	if err != nil {
		return err
	}
	nodes, err := m.Nodes(ctx)
	if err != nil {
		return err
	}
	if sw.RootRotationInProgress {
		return errors.New("rotation in progress")
	}
	for _, n := range nodes {
		ti := n.Description.TLSInfo
		if !bytes.Equal(ti.CertIssuerPublicKey, sw.TLSInfo.CertIssuerPublicKey) || !bytes.Equal(ti.CertIssuerSubject, sw.TLSInfo.CertIssuerSubject) {
			return fmt.Errorf("node %s: certificate not from the swarm's issuer", n.Description.Hostname)
		}
		if ti.TrustRoot != sw.TLSInfo.TrustRoot {
			return fmt.Errorf("node %s: does not trust the swarm's root", n.Description.Hostname)
		}
	}
	return nil
}

func waitReady(t *testing.T, m *node, name string) {
	t.Helper()
	eventually(t, 20*time.Second, name+" ready", func() error {
		n, err := m.Node(ctxT(t, 5*time.Second), name)
		if err != nil {
			return err
		}
		if n.Status.State != swarm.NodeStateReady {
			return fmt.Errorf("%s is %s", name, n.Status.State)
		}
		return nil
	})
}

// TestRotationAcrossManagers rotates the root of a two-manager cluster and
// restarts the second manager: its store member, which loads the trusted
// roots only at its start (new root alone now), and the first one's
// (old root alone) still accept each other thanks to the cross-signed
// root sent with every certificate.
func TestRotationAcrossManagers(t *testing.T) {
	m1 := initManager(t, "m1")
	ctx := ctxT(t, 120*time.Second)
	sw, err := m1.Swarm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m2 := mustStart(t, joinCfg(t, m1, "m2", sw.JoinTokens.Manager))
	eventually(t, 20*time.Second, "two reachable voters", func() error { return voters(m1, ctx, 2) })
	if err := updateSpec(ctx, m2, func(s *swarm.Spec) { s.CAConfig.ForceRotate++ }); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*node{m1, m2} {
		eventually(t, 60*time.Second, m.cfg.Hostname+" sees the rotation done", func() error { return rotationDone(ctx, m) })
	}
	if !bytes.Equal(m1.root.KeyPEM(), m2.root.KeyPEM()) || !m2.root.CanSign() {
		t.Fatal("the managers do not share the new root's key")
	}

	m2.stop()
	m2 = mustStart(t, m2.cfg)
	eventually(t, 30*time.Second, "the restarted manager back in the store", func() error { return voters(m1, ctx, 2) })
	eventually(t, 20*time.Second, "a write through the restarted manager", func() error {
		return updateSpec(ctx, m2, func(s *swarm.Spec) { s.CAConfig.NodeCertExpiry = 3 * time.Hour })
	})
	// m1 reads its own copy of the store, which follows m2's write within
	// a moment.
	eventually(t, 10*time.Second, "the other manager sees the write", func() error {
		if sw, err := m1.Swarm(ctx); err != nil || sw.Spec.CAConfig.NodeCertExpiry != 3*time.Hour {
			return fmt.Errorf("m1 reads %v (err %v)", sw.Spec.CAConfig.NodeCertExpiry, err)
		}
		return nil
	})
}
