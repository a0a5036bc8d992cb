package run

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/enginesim"
)

// shoal manage serves its metrics at /metrics on its API address: the
// pool's, the API's own calls, its store's and the process's.
func TestManageServesMetrics(t *testing.T) {
	fleet, err := enginesim.StartFleet(2, func(int) enginesim.Options { return enginesim.Options{Containers: 1} })
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	c := manageConfig([]string{"tcp://" + addr}, fleet.NodesURI())
	c.DataDir = t.TempDir()
	go func() { done <- Manage(ctx, c) }()
	defer func() {
		cancel()
		<-done
	}()

	// The store starts at the first call needing it (lazystore.go).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := get("http://" + addr + "/secrets"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("GET /secrets did not answer")
		}
	}
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		body, err = get("http://" + addr + "/metrics")
		if err == nil && strings.Contains(body, `shoal_engines{state="healthy"} 2`) &&
			strings.Contains(body, `shoal_api_requests_total{method="GET",route="/metrics",status="200"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /metrics: %v\n%s", err, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{
		"# TYPE shoal_containers gauge", "# TYPE shoal_engine_call_duration_seconds histogram",
		"shoal_store_has_quorum 1", "shoal_store_is_leader 1", "# TYPE shoal_placements_total counter",
		"shoal_build_info{", "go_goroutines ", "process_resident_memory_bytes ", "etcd_server_has_leader 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// waitMetrics waits until the /metrics of the API at addr has every line
// in want.
func waitMetrics(t *testing.T, addr string, want ...string) {
	t.Helper()
	var body string
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if body, err = get("http://" + addr + "/metrics"); err == nil && containsAll(body, want) {
			return
		}
	}
	t.Errorf("/metrics: %v; want %q in:\n%s", err, want, body)
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
