package overlay

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
)

// TestMesh publishes a port through the routing mesh: a service of one
// task answers on both nodes' addresses, on both tasks once scaled to two,
// shows its port as swarm mode does, refuses the port to a second service,
// and its removal takes the nodes' rules away.
func TestMesh(t *testing.T) {
	c := startCluster(t)
	// Each task serves its own hostname: the answers tell which task took the connection.
	c.must(t, "service", "create", "-d", "--name", "web", "-p", "8080:80", "busybox",
		"sh", "-c", "hostname > /tmp/index.html && exec httpd -f -p 80 -h /tmp")
	hc := &http.Client{Timeout: time.Second}
	get := func(ip string) (string, error) {
		resp, err := hc.Get(fmt.Sprintf("http://%s:8080/", ip))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b)), err
	}
	for _, e := range bed.Engines {
		shoaltest.Eventually(t, 30*time.Second, "web on "+e.IP+":8080", func() error {
			_, err := get(e.IP)
			return err
		})
	}
	if out := c.must(t, "service", "ls", "--format", "{{.Name}} {{.Ports}}"); out != "web *:8080->80/tcp" {
		t.Errorf("service ls: %q", out)
	}
	if out := c.must(t, "service", "inspect", "web", "--format", "{{json .Endpoint.Ports}}"); out != `[{"Protocol":"tcp","TargetPort":80,"PublishedPort":8080,"PublishMode":"ingress"}]` {
		t.Errorf("Endpoint.Ports: %s", out)
	}
	if out := c.must(t, "network", "ls", "--filter", "name=ingress", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"); out != "ingress overlay swarm" {
		t.Errorf("network ls: %q", out)
	}
	if out := c.must(t, "network", "inspect", "ingress", "--format", "{{.Ingress}} {{(index .IPAM.Config 0).Subnet}}"); out != "true 10.0.0.0/24" {
		t.Errorf("network inspect ingress: %q", out)
	}
	if out, err := c.docker(t.Context(), "service", "create", "-d", "--name", "web2", "-p", "8080:80", "busybox", "sleep", "60"); err == nil ||
		!strings.Contains(err.Error(), "port '8080' is already in use by service 'web'") {
		t.Errorf("a second service on 8080: %q %v", out, err)
	}

	c.must(t, "service", "scale", "-d", "web=2")
	for _, e := range bed.Engines {
		seen := map[string]bool{}
		shoaltest.Eventually(t, 30*time.Second, "both tasks answering on "+e.IP, func() error {
			for range 8 {
				if body, err := get(e.IP); err == nil && body != "" {
					seen[body] = true
				}
			}
			if len(seen) < 2 {
				return fmt.Errorf("answered by %v", seen)
			}
			return nil
		})
	}

	c.must(t, "service", "rm", "web")
	for _, e := range bed.Engines {
		shoaltest.Eventually(t, 15*time.Second, "no mesh table on "+e.Hostname, func() error {
			out, err := exec.CommandContext(t.Context(), "ip", "netns", "exec", e.Netns, "nft", "list", "tables").CombinedOutput()
			if err != nil || strings.Contains(string(out), "shoal-mesh") {
				return fmt.Errorf("%s %v", out, err)
			}
			return nil
		})
	}
}
