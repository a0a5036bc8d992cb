package federation

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// Services at the top: the members are its nodes, so a service's tasks
// spread across them, and the members' own labels are node labels there
// (spread=node.labels.region, node.labels.region==us); the members' own
// orchestrators leave the top's task containers alone.
func TestServices(t *testing.T) {
	t.Cleanup(func() {
		run(context.Background(), top.Host, nil, "service", "rm", "fs4", "fus")
	})
	// SIGKILL: sleep as PID 1 ignores SIGTERM, and each stop would take
	// the whole grace period.
	dk(t, top.Host, "service", "create", "-d", "--name", "fs4", "--replicas", "4", "--placement-pref", "spread=node.labels.region",
		"--stop-signal", "SIGKILL", "--no-resolve-image", "busybox", "sleep", "1d")
	dk(t, top.Host, "service", "create", "-d", "--name", "fus", "--replicas", "1", "--constraint", "node.labels.region==us",
		"--stop-signal", "SIGKILL", "--no-resolve-image", "busybox", "sleep", "1d")
	for svc, want := range map[string]string{"fs4": "siteA siteA siteB siteB", "fus": "siteB"} {
		waitFor(t, 60*time.Second, svc+" running on "+want, func() error {
			if got := runningOn(t, top.Host, svc); got != want {
				return fmt.Errorf("tasks running on %q", got)
			}
			return nil
		})
	}
	// The members' own orchestrators leave the top's tasks alone.
	if got := names(t, siteB.Host, "--filter", "label=com.docker.swarm.service.name=fus", "--filter", "status=running"); len(got) != 1 {
		t.Errorf("fus's containers at siteB: %v", got)
	}
}

// runningOn lists the nodes of svc's running tasks, sorted.
func runningOn(t *testing.T, host, svc string) string {
	t.Helper()
	res := run(t.Context(), host, nil, "service", "ps", svc, "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}")
	var nodes []string
	for _, l := range strings.Split(strings.TrimSpace(res.Out), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[1] == "Running" {
			nodes = append(nodes, f[0])
		}
	}
	sort.Strings(nodes)
	return strings.Join(nodes, " ")
}
