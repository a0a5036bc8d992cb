package services

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServiceHostPort: --publish mode=host publishes the port on the
// task's node only (the engine's -p), shown in service inspect as the
// spec gave it and in service ps's PORTS as swarm mode shows a task's
// host ports.
func TestServiceHostPort(t *testing.T) {
	forTargets(t, func(t *testing.T, tg *target) {
		cleanup(t, tg)
		mustDocker(t, tg, "service", "create", "-d", "--quiet", "--name", "hp", "--publish", "mode=host,target=80,published=18080",
			"busybox", "sh", "-c", "hostname > /tmp/index.html && exec httpd -f -p 80 -h /tmp")
		waitRunning(t, tg, "hp", 1, time.Minute)
		node := slices.Index(tg.Nodes, tasks(t, tg, "hp")[0].NodeID)
		if node < 0 {
			t.Fatalf("%s: the task's node is none of %v", tg.Name, tg.Nodes)
		}
		var out string
		waitFor(t, 30*time.Second, tg.Name+": service ps shows the task's port", func() error {
			out = strings.TrimSpace(mustDocker(t, tg, "service", "ps", "hp", "--filter", "desired-state=running", "--format", "{{.Ports}}"))
			if out != "*:18080->80/tcp" {
				return fmt.Errorf("service ps PORTS %q", out)
			}
			return nil
		})
		if got := strings.TrimSpace(mustDocker(t, tg, "service", "inspect", "hp", "--format", "{{json .Endpoint.Ports}}")); got != `[{"Protocol":"tcp","TargetPort":80,"PublishedPort":18080,"PublishMode":"host"}]` {
			t.Errorf("%s: Endpoint.Ports %s", tg.Name, got)
		}
		hc := &http.Client{Timeout: 2 * time.Second}
		for i := range tg.Engines {
			resp, err := hc.Get(fmt.Sprintf("http://%s:18080/", tg.engine(i).IP))
			var body []byte
			if err == nil {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if i == node && (err != nil || len(strings.TrimSpace(string(body))) != 12) {
				t.Errorf("%s: the task's node %d does not answer on 18080: %v %q", tg.Name, i+1, err, body)
			}
			if i != node && err == nil {
				t.Errorf("%s: node %d answers on 18080 without the task (%q)", tg.Name, i+1, body)
			}
		}
	})
}
