package overlay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/overlay"
	"github.com/shoal-dev/shoal/test/shoaltest"
)

// TestConverge: networks, the routing mesh and names converge on a node
// without manual steps after its agent restarts and after it comes back
// from a partition. The worker's agent (its shoal process) is killed and
// started again while a network is created: the kernel keeps forwarding
// meanwhile, the node plumbs the new network once back, and its tasks
// stay. Then the worker is cut off while that network is removed and its
// tasks are replaced on the manager's node: back on the network, it takes
// the removed network's devices away, removes its stale task containers,
// forwards the mesh's port to the current tasks only, and a container on
// it resolves tasks.<service> to them.
func TestConverge(t *testing.T) {
	began := time.Now()
	c := startCluster(t)
	ctx := t.Context()
	wrk := bed.Engines[1]
	t.Cleanup(func() {
		_ = bed.LinkUp(1)
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c.docker(cctx, "service", "rm", "echo")
		c.docker(cctx, "rm", "-f", "cvclient")
	})
	c.must(t, "network", "create", "-d", "overlay", "--attachable", "cvnet")
	// Each task serves its own hostname (its container ID's first 12 characters).
	c.must(t, "service", "create", "-d", "--quiet", "--name", "echo", "--replicas", "2", "--network", "cvnet", "-p", "8081:80",
		"busybox", "sh", "-c", "hostname > /tmp/index.html && exec httpd -f -p 80 -h /tmp")
	c.must(t, "run", "-d", "--name", "cvclient", "--network", "cvnet", "-e", "constraint:node=="+wrk.Hostname, "busybox", "sleep", "600")

	running := func() []string {
		out, _ := c.docker(ctx, "ps", "-q", "--filter", "label=com.docker.swarm.service.name=echo", "--filter", "status=running")
		ids := strings.Fields(out)
		slices.Sort(ids)
		return ids
	}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(ip string) (string, error) {
		resp, err := hc.Get(fmt.Sprintf("http://%s:8081/", ip))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b)), err
	}
	// meshServes waits until the worker's address answers from every
	// task in want and from no other.
	meshServes := func(t *testing.T, what string, want func() []string) {
		t.Helper()
		shoaltest.Eventually(t, 30*time.Second, what, func() error {
			w := want()
			if len(w) != 2 {
				return fmt.Errorf("running tasks %v", w)
			}
			seen := map[string]bool{}
			for range 12 {
				body, err := get(wrk.IP)
				if err != nil {
					return err
				}
				if !slices.Contains(w, body) {
					return fmt.Errorf("answered by %q, not a running task (%v)", body, w)
				}
				seen[body] = true
			}
			if len(seen) != len(w) {
				return fmt.Errorf("answered by %v, want all of %v", seen, w)
			}
			return nil
		})
	}
	meshServes(t, "the worker's address serves both tasks", running)
	before := running()

	t.Run("agent restart", func(t *testing.T) {
		c.wrk.Kill()
		// The kernel keeps the mesh and the tunnels while the agent is away.
		if body, err := get(wrk.IP); err != nil || !slices.Contains(before, body) {
			t.Errorf("mesh on the worker with its agent down: %q %v", body, err)
		}
		// Through the API, not the CLI, to keep the agent's time away
		// short: a node failing for 3 s has its tasks replaced.
		lateID := c.createNetwork(t, "late")
		if err := c.wrk.Restart(); err != nil {
			t.Fatal(err)
		}
		shoaltest.Eventually(t, 30*time.Second, "the worker plumbs the network made while its agent was away", func() error {
			if devs := links(t, 1); !slices.Contains(devs, overlay.BridgeName(lateID)) || !slices.Contains(devs, overlay.VXLANName(lateID)) {
				return fmt.Errorf("devices %v", devs)
			}
			return nil
		})
		meshServes(t, "the worker's address serves both tasks after the restart", running)
		if now := running(); !slices.Equal(now, before) {
			t.Errorf("tasks replaced across an agent restart: %v, were %v", now, before)
		}
	})

	t.Run("partition", func(t *testing.T) {
		lateID := c.must(t, "network", "inspect", "-f", "{{.Id}}", "late")
		if err := bed.LinkDown(1); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		if out, err := c.docker(ctx, "network", "rm", "late"); err != nil {
			t.Errorf("network rm while a node is cut off: %q %v", out, err)
		}
		shoaltest.Eventually(t, 60*time.Second, "both tasks running on the manager's node", func() error {
			out, err := c.docker(ctx, "service", "ps", "echo", "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if err != nil || len(lines) != 2 {
				return fmt.Errorf("%q %v", out, err)
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, bed.Engines[0].Hostname+" Running") {
					return fmt.Errorf("%q", out)
				}
			}
			return nil
		})
		t.Logf("tasks replaced %s after the cut", time.Since(cut).Round(time.Millisecond))
		if err := bed.LinkUp(1); err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		shoaltest.Eventually(t, 30*time.Second, "the removed network's devices gone from the worker", func() error {
			if devs := links(t, 1); slices.Contains(devs, overlay.BridgeName(lateID)) || slices.Contains(devs, overlay.VXLANName(lateID)) {
				return fmt.Errorf("devices %v", devs)
			}
			return nil
		})
		meshServes(t, "the worker's address serves the current tasks only", running)
		// The worker may get tasks back (rebalance), but none of its old ones.
		shoaltest.Eventually(t, 30*time.Second, "no stale task container on the worker's engine", func() error {
			out, _, err := bed.Docker(ctx, wrk.UnixHost(), "ps", "-aq", "--filter", "label=com.docker.swarm.service.name=echo")
			live := running()
			for _, id := range strings.Fields(out) {
				if !slices.Contains(live, id) {
					return fmt.Errorf("%s is not a running task (%v)", id, live)
				}
			}
			return err
		})
		var want []string
		for _, id := range running() {
			want = append(want, c.must(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "cvnet").IPAddress}}`, id))
		}
		slices.Sort(want)
		shoaltest.Eventually(t, 30*time.Second, "tasks.echo resolves to the current tasks on the worker", func() error {
			out, err := c.docker(ctx, "exec", "cvclient", "nslookup", "tasks.echo")
			if got := lookedUp(out); err != nil || !slices.Equal(got, want) {
				return fmt.Errorf("%v, want %v (%v)\n%s", got, want, err, out)
			}
			return nil
		})
		t.Logf("converged %s after the link came back", time.Since(back).Round(time.Millisecond))
	})
	t.Logf("test body took %s", time.Since(began).Round(time.Millisecond))
}

// createNetwork creates an overlay network through the API and returns
// its ID.
func (c *cluster) createNetwork(t *testing.T, name string) string {
	t.Helper()
	body := strings.NewReader(fmt.Sprintf(`{"Name":%q,"Driver":"overlay"}`, name))
	resp, err := http.Post("http://"+strings.TrimPrefix(c.host, "tcp://")+"/networks/create", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Id, Message string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("network create %s: %d %+v %v", name, resp.StatusCode, out, err)
	}
	return out.Id
}
