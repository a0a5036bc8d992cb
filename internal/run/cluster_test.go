package run

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/cluster"
	"github.com/shoal-dev/shoal/internal/enginesim"
	"github.com/shoal-dev/shoal/internal/testport"
)

// freePorts is a port p with p+1 and p+2 (the cluster port and the
// store's two), handed to no other test process.
func freePorts(t *testing.T) int {
	t.Helper()
	return testport.Get(t, 3)
}

// syncBuffer is a bytes.Buffer safe to read while ClusterNode writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestClusterNodeInit runs `shoal init` in process over a simulated
// engine: the join commands are printed, the API lists the engine's
// containers (reached through the node's own tunnel), and it stops.
func TestClusterNodeInit(t *testing.T) {
	sim, err := enginesim.Start(enginesim.Options{Containers: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	port, api := freePorts(t), freeAddr(t)
	var out syncBuffer
	n := startNode(ClusterConfig{
		Cluster: cluster.Config{
			Init: true, DataDir: t.TempDir(), ListenAddr: fmt.Sprintf("127.0.0.1:%d", port),
			AdvertiseAddr: "127.0.0.1", Engine: "tcp://" + sim.Addr(),
		},
		Hosts: []string{"tcp://" + api}, Stdout: &out,
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		body, err := get("http://" + api + "/containers/json")
		if err == nil && strings.Count(body, `"Id"`) == 3 {
			break
		}
		select {
		case err := <-n.done:
			t.Fatalf("ClusterNode returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ps through shoal init: %q %v; want the engine's 3 containers", body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitMetrics(t, api, "shoal_agent_tunnels 1", "shoal_store_is_leader 1", `shoal_engines{state="healthy"} 1`)
	if s := out.String(); !strings.Contains(s, "Cluster initialized: current node (") || !strings.Contains(s, "shoal join --token SWMTKN-1-") {
		t.Errorf("printed:\n%s\nwant the join commands", s)
	}
	if err := n.stop(t); err != nil {
		t.Fatalf("ClusterNode after its context ended = %v, want nil", err)
	}
}
