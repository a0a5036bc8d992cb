package run

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/audit"
	"github.com/shoal-dev/shoal/internal/cluster"
	"github.com/shoal-dev/shoal/internal/dockerapi"
	"github.com/shoal-dev/shoal/internal/enginesim"
)

// manage serves c until the test ends it with the returned stop, which
// returns Manage's error.
func manage(t *testing.T, c ManageConfig) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Manage(ctx, c) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Manage did not return after its context ended")
			return nil
		}
	}
}

// shoal manage writes its audit log with --audit-log, and caps streams
// with the limits it is given.
func TestManageAuditsAndCapsStreams(t *testing.T) {
	fleet, err := enginesim.StartFleet(1, func(int) enginesim.Options { return enginesim.Options{} })
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	addr := freeAddr(t)
	c := manageConfig([]string{"tcp://" + addr}, fleet.NodesURI())
	path := filepath.Join(t.TempDir(), "audit.log")
	c.Audit = audit.Config{Path: path, MaxSizeMB: 1, MaxFiles: 1}
	c.Limits = dockerapi.DefaultLimits()
	c.Limits.MaxStreams = 1
	stop := manage(t, c)

	var events *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if events, err = http.Get("http://" + addr + "/v1.41/events"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events: %v", err)
		}
	}
	defer events.Body.Close()
	if events.StatusCode != 200 {
		t.Fatalf("first events stream: %d", events.StatusCode)
	}
	second, err := http.Get("http://" + addr + "/v1.41/events")
	if err != nil {
		t.Fatal(err)
	}
	second.Body.Close()
	if second.StatusCode != 503 {
		t.Errorf("a second events stream over --max-streams 1: %d, want 503", second.StatusCode)
	}
	resp, err := http.Post("http://"+addr+"/v1.41/containers/nope/kill", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	events.Body.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"action":"container.kill","target":"nope","status":404`) || strings.Count(string(b), "\n") != 1 {
		t.Errorf("audit log:\n%s\nwant one line: the kill's 404", b)
	}
	// Callers are named as authorization identifies them.
	if !strings.Contains(string(b), `"who":{"name":"loopback client 127.0.0.1:`) || !strings.Contains(string(b), `"role":"admin"}`) {
		t.Errorf("audit log:\n%s\nwant the caller as authz names it", b)
	}
}

func TestManageAuditLogError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	c := manageConfig([]string{"tcp://" + freeAddr(t)}, "nodes://127.0.0.1:1")
	c.Audit = audit.Config{Path: filepath.Join(file, "audit.log")} // under a file: cannot be created
	err := Manage(context.Background(), c)
	if err == nil || !strings.HasPrefix(err.Error(), "--audit-log: ") {
		t.Errorf("Manage with an audit log that cannot be opened: %v", err)
	}
}

// A manager of the built-in cluster audits too: a failed kill, and the
// join tokens read through GET /swarm (a read, audited all the same).
func TestClusterNodeAudits(t *testing.T) {
	sim, err := enginesim.Start(enginesim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	port, api := freePorts(t), freeAddr(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	n := startNode(ClusterConfig{
		Cluster: cluster.Config{
			Init: true, DataDir: t.TempDir(), ListenAddr: fmt.Sprintf("127.0.0.1:%d", port),
			AdvertiseAddr: "127.0.0.1", Engine: "tcp://" + sim.Addr(),
		},
		Hosts: []string{"tcp://" + api}, Audit: audit.Config{Path: path},
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if body, err := get("http://" + api + "/swarm"); err == nil && strings.Contains(body, "JoinTokens") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("GET /swarm through shoal init never answered")
		}
	}
	resp, err := http.Post("http://"+api+"/containers/nope/kill", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := n.stop(t); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"action":"swarm.inspect","status":200`) ||
		!strings.Contains(string(b), `"action":"container.kill","target":"nope","status":404`) {
		t.Errorf("audit log:\n%s\nwant the swarm inspect and the kill", b)
	}
}
