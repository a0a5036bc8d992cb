package overlay

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

// TestVIP: a service in vip mode (the default) on an overlay network gets
// one virtual IP there, which its name answers (tasks.<service> answers
// the tasks); a connection to it from a container on the network reaches
// both tasks, on both nodes; once the service has no task the connection
// is refused at once, and once it is removed the VIP leaves the bridges.
// A dnsrr service's name answers its task, and it has no VIP.
func TestVIP(t *testing.T) {
	began := time.Now()
	c := startCluster(t)
	t.Logf("cluster up in %s", time.Since(began).Round(time.Millisecond))
	ctx := t.Context()
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c.docker(cctx, "service", "rm", "web", "rr")
		c.docker(cctx, "rm", "-f", "client")
	})
	netID := c.must(t, "network", "create", "-d", "overlay", "--attachable", "appnet")
	// a grace period of 1 s: nc as PID 1 ignores SIGTERM, and the scale to 0 would wait 10 s
	c.must(t, "service", "create", "-d", "--quiet", "--name", "web", "--replicas", "2", "--stop-grace-period", "1s", "--network", "appnet", "busybox",
		"nc", "-ll", "-p", "80", "-e", "hostname")
	c.must(t, "service", "create", "-d", "--quiet", "--name", "rr", "--endpoint-mode", "dnsrr", "--network", "appnet", "busybox", "sleep", "600")
	c.must(t, "run", "-d", "--name", "client", "--network", "appnet", "busybox", "sleep", "600")

	var vips []struct{ NetworkID, Addr string }
	if err := json.Unmarshal([]byte(c.must(t, "service", "inspect", "web", "--format", "{{json .Endpoint.VirtualIPs}}")), &vips); err != nil ||
		len(vips) != 1 || vips[0].NetworkID != netID || !strings.HasPrefix(vips[0].Addr, "10.0.1.") || !strings.HasSuffix(vips[0].Addr, "/24") {
		t.Fatalf("web's Endpoint.VirtualIPs: %+v %v, want one on appnet (%s)", vips, err, netID)
	}
	vip := strings.TrimSuffix(vips[0].Addr, "/24")
	if out := c.must(t, "service", "inspect", "rr", "--format", "{{json .Endpoint.VirtualIPs}} {{.Spec.EndpointSpec.Mode}}"); out != "null dnsrr" {
		t.Errorf("rr (dnsrr): %q, want no VIP", out)
	}
	tasks := runningTasks(t, c, "web", 2)
	if tasks[0].Node == tasks[1].Node {
		t.Fatalf("both tasks of web on %s", tasks[0].Node)
	}
	rr := runningTasks(t, c, "rr", 1)[0]
	t.Logf("VIP %s, tasks %+v (%s)", vip, tasks, time.Since(began).Round(time.Millisecond))

	lookup := func(name string, want ...string) {
		t.Helper()
		slices.Sort(want)
		shoaltest.Eventually(t, 15*time.Second, name+" resolves to "+strings.Join(want, " "), func() error {
			out, err := c.docker(ctx, "exec", "client", "nslookup", name)
			if got := lookedUp(out); err != nil || !slices.Equal(got, want) {
				return fmt.Errorf("%v (%v)\n%s", got, err, out)
			}
			return nil
		})
	}
	lookup("web", vip)
	lookup("tasks.web", tasks[0].IP, tasks[1].IP)
	lookup("rr", rr.IP)

	// nc, not wget: this busybox's wget dies of SIGSEGV resolving a name
	get := func(target string) (string, error) {
		out, err := c.docker(ctx, "exec", "client", "nc", "-w", "3", target, "80")
		if out = strings.TrimSpace(out); err == nil && out == "" {
			err = fmt.Errorf("no answer from %s", target)
		}
		return out, err
	}
	seen := map[string]bool{}
	shoaltest.Eventually(t, 20*time.Second, "both tasks answering on the VIP", func() error {
		for range 6 {
			body, err := get("web")
			if err != nil {
				return err
			}
			seen[body] = true
		}
		if !seen[tasks[0].Hostname] || !seen[tasks[1].Hostname] {
			return fmt.Errorf("answered by %v, want %s and %s", seen, tasks[0].Hostname, tasks[1].Hostname)
		}
		return nil
	})
	t.Run("ARP answered by the client's own node", func(t *testing.T) {
		client := c.members(t, "client")[0]
		i := slices.IndexFunc(bed.Engines, func(e *testbed.Engine) bool { return e.Hostname == client.Node })
		if i < 0 {
			t.Fatalf("client on %q, no such engine", client.Node)
		}
		mac, err := exec.CommandContext(ctx, "ip", "netns", "exec", bed.Engines[i].Netns, "cat", "/sys/class/net/shv"+netID[:10]+"/address").Output()
		if err != nil {
			t.Fatal(err)
		}
		arp := c.must(t, "exec", "client", "cat", "/proc/net/arp")
		found := false
		for _, l := range strings.Split(arp, "\n") {
			if f := strings.Fields(l); len(f) >= 4 && f[0] == vip {
				found = true
				if f[3] != strings.TrimSpace(string(mac)) {
					t.Errorf("the client (on %s) has the VIP at %s, not its node's bridge %s", client.Node, f[3], mac)
				}
			}
		}
		if !found {
			t.Errorf("the client has no ARP entry for the VIP %s:\n%s", vip, arp)
		}
	})
	t.Logf("both tasks answered on the VIP (%s)", time.Since(began).Round(time.Millisecond))
	if out, err := c.docker(ctx, "exec", "client", "ping", "-c", "1", "-W", "2", vip); err != nil {
		t.Errorf("ping %s (the node answers for the VIP): %v\n%s", vip, err, out)
	}

	c.must(t, "service", "scale", "-d", "web=0")
	shoaltest.Eventually(t, 30*time.Second, "the VIP refusing connections once web has no task", func() error {
		start := time.Now()
		body, err := get(vip)
		if err == nil {
			return fmt.Errorf("still answered by %q", body)
		}
		if d := time.Since(start); d > 2*time.Second {
			return fmt.Errorf("failed after %s, not at once: %v", d, err)
		}
		return nil
	})
	t.Logf("the VIP refuses connections (%s)", time.Since(began).Round(time.Millisecond))
	lookup("web", vip) // the name stays the VIP's while the service is there

	c.must(t, "service", "rm", "web")
	br := "shv" + netID[:10]
	for _, e := range bed.Engines {
		shoaltest.Eventually(t, 15*time.Second, "no VIP on "+br+" of "+e.Hostname, func() error {
			out, err := exec.CommandContext(ctx, "ip", "netns", "exec", e.Netns, "ip", "-4", "addr", "show", "dev", br).CombinedOutput()
			if err != nil || strings.Contains(string(out), vip+"/32") {
				return fmt.Errorf("%s %v", out, err)
			}
			return nil
		})
	}
	t.Logf("test body took %s", time.Since(began).Round(time.Millisecond))
}

// runningTasks waits for n running tasks of service and inspects them.
func runningTasks(t *testing.T, c *cluster, service string, n int) []member {
	t.Helper()
	var tasks []member
	shoaltest.Eventually(t, 60*time.Second, fmt.Sprintf("%d running tasks of %s", n, service), func() error {
		out, err := c.docker(t.Context(), "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+service, "--filter", "status=running")
		ids := strings.Fields(out)
		if err != nil || len(ids) != n {
			return fmt.Errorf("tasks %q %v", out, err)
		}
		tasks = c.members(t, ids...)
		return nil
	})
	return tasks
}
