package cluster

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/ca"
	"github.com/shoal-dev/shoal/test/shoaltest"
)

// TestCARotation: docker swarm update --cert-expiry is kept and shown (docker info),
// below swarm mode's minimum refused in dockerd's words, and docker swarm
// ca --rotate (the real CLI, waiting for convergence as against dockerd)
// finishes with the worker still Ready and holding a certificate of the
// new root.
func TestCARotation(t *testing.T) {
	base := t.TempDir()
	_, api := initManager(t, base)
	token, err := shoalCmd(t, "join-token", "-H", api, "-q", "worker")
	if err != nil {
		t.Fatal(err)
	}
	w := &host{i: 1, dir: filepath.Join(base, "w1")}
	w.args = append(append([]string{"join", "--token", token}, nodeArgs(1, w.dir)...), bed.Engines[0].IP+":2377")
	w.p = startShoal(t, 1, "worker1", w.args...)
	twoReady := func() error {
		if n, out := readyNodes(t, api); n != 2 {
			return fmt.Errorf("%d ready:\n%s", n, out)
		}
		return nil
	}
	shoaltest.Eventually(t, 40*time.Second, "2 Ready nodes", twoReady)

	docker(t, api, "swarm", "update", "--cert-expiry", "2h")
	if got := strings.TrimSpace(docker(t, api, "info", "--format", "{{.Swarm.Cluster.Spec.CAConfig.NodeCertExpiry}}")); got != "2h0m0s" {
		t.Fatalf("docker info shows a node certificate expiry of %q, want 2h0m0s", got)
	}
	if out, err := dockerErr(api, "swarm", "update", "--cert-expiry", "30m"); err == nil || !strings.Contains(out, "minimum certificate expiry time is: 1h0m0s") {
		t.Fatalf("--cert-expiry 30m: %v %q; want dockerd's refusal", err, out)
	}

	oldRoot := strings.TrimSpace(docker(t, api, "swarm", "ca"))
	start := time.Now()
	out := docker(t, api, "swarm", "ca", "--rotate")
	t.Logf("FIGURE ca rotate: docker swarm ca --rotate returned after %s", time.Since(start).Round(10*time.Millisecond))
	i := strings.Index(out, "-----BEGIN CERTIFICATE-----")
	if i < 0 {
		t.Fatalf("docker swarm ca --rotate printed no root:\n%s", out)
	}
	newRootPEM := strings.TrimSpace(out[i:])
	if newRootPEM == oldRoot || newRootPEM != strings.TrimSpace(docker(t, api, "swarm", "ca")) {
		t.Fatalf("the printed root is not the swarm's new root:\n%s", out)
	}
	newRoot, err := ca.ParseCertificatePEM([]byte(newRootPEM))
	if err != nil {
		t.Fatal(err)
	}
	wc := certOf(t, w.dir)
	if err := wc.CheckSignatureFrom(newRoot); err != nil {
		t.Fatalf("the worker's certificate is not issued by the new root: %v", err)
	}
	if life := wc.NotAfter.Sub(wc.NotBefore); life > 2*time.Hour+10*time.Minute {
		t.Errorf("the worker's new certificate lives %s, not the cluster's 2h", life)
	}
	swarmKey := docker(t, api, "info", "--format", "{{json .Swarm.Cluster.TLSInfo.CertIssuerPublicKey}}")
	nodeKey := docker(t, api, "node", "inspect", "--format", "{{json .Description.TLSInfo.CertIssuerPublicKey}}", bed.Engines[1].Hostname)
	if strings.TrimSpace(swarmKey) != strings.TrimSpace(nodeKey) || len(strings.TrimSpace(nodeKey)) < 10 {
		t.Errorf("node inspect shows the worker's issuer key %s, the swarm's is %s", nodeKey, swarmKey)
	}
	shoaltest.Eventually(t, 10*time.Second, "2 Ready nodes after the rotation", twoReady)
}
