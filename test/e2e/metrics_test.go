package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// checkMetricsOverTLS scrapes /metrics with curl through shoal's real TLS
// listener: a viewer's certificate may, no certificate may not; the
// families cover the calls the docker CLI just made.
func checkMetricsOverTLS(ctx context.Context, t *testing.T, host string, viewer tlsUser) {
	url := "https://" + strings.TrimPrefix(host, "tcp://") + "/metrics"
	out, err := exec.CommandContext(ctx, "curl", "-sS", "--fail", "--max-time", "10", "--cacert", filepath.Join(viewer.dir, "ca.pem"),
		"--cert", filepath.Join(viewer.dir, "cert.pem"), "--key", filepath.Join(viewer.dir, "key.pem"), url).CombinedOutput()
	if err != nil {
		t.Fatalf("curl /metrics as a viewer: %v\n%s", err, out)
	}
	body := string(out)
	for _, want := range []string{
		`shoal_engines{state="healthy"} 2`,
		`# TYPE shoal_containers gauge`,
		`shoal_api_requests_total{method="POST",route="/containers/{id*}/exec",status="403"}`,
		`shoal_api_requests_total{method="POST",route="/containers/create",status="201"}`,
		`shoal_placements_total{filter="",outcome="placed"}`,
		`# TYPE shoal_engine_call_duration_seconds histogram`,
		`# TYPE shoal_event_fanin_lag_seconds histogram`,
		`shoal_build_info{`,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if out, err := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "10", "--cacert", filepath.Join(viewer.dir, "ca.pem"), url).CombinedOutput(); err == nil {
		t.Errorf("/metrics without a client certificate answered:\n%.300s", out)
	}
}
