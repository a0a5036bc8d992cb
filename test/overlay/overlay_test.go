// Package overlay tests the built-in cluster's overlay networks end to end:
// two real dockerd engines, each in its own network namespace with a shoal
// node beside it (shoal init on the first, shoal join --token on the
// second), driven through the docker CLI 28. One cluster serves every
// step, in order: the budget of the whole suite is tight.
package overlay

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

const (
	cli     = "/usr/local/bin/docker" // CLI 28
	apiPort = 2385                    // the manager's API in its namespace (dockerd has 2375)
)

var bed *testbed.Bed

func TestMain(m *testing.M) { os.Exit(mainRun(m)) }

func mainRun(m *testing.M) int {
	return testbed.Main(m, testbed.MainOptions{Options: testbed.Options{Engines: 2, Prefix: "ovl"}}, func(tb testing.TB, b *testbed.Bed) {
		bed = b
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := b.LoadBusyboxAll(ctx); err != nil {
			tb.Fatal(err)
		}
	})
}

// cluster is the built-in cluster of the test: its API's DOCKER_HOST and
// the nodes' shoal processes.
type cluster struct {
	host     string
	mgr, wrk *shoaltest.Shoal
}

// startCluster runs shoal init in engine 0's namespace and shoal join in
// engine 1's, and waits for 2 Ready nodes.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir()
	args := func(i int) []string {
		e := bed.Engines[i]
		return []string{"--data-dir", filepath.Join(dir, e.Hostname), "--engine", e.UnixHost(), "--advertise-addr", e.IP,
			"-H", fmt.Sprintf("tcp://0.0.0.0:%d", apiPort), "--insecure-no-tlsverify", "--log-level", "debug",
			"--engine-refresh-interval", "300ms", "--engine-failure-retry", "2"}
	}
	mgr, wrk := bed.Engines[0], bed.Engines[1]
	c := &cluster{host: fmt.Sprintf("tcp://%s:%d", mgr.IP, apiPort)}
	// Registered first, so it runs after the shoal processes stop: each
	// test's cluster is stopped without its nodes leaving (which would
	// remove what their agents made), and the next test's cluster starts
	// on the same engines and namespaces.
	t.Cleanup(func() { clearNodes(t) })
	c.mgr = shoaltest.Start(t, shoaltest.Options{Args: append([]string{"init"}, args(0)...), Name: "overlay-manager", Netns: mgr.Netns, NoWait: true})
	var token string
	shoaltest.Eventually(t, 60*time.Second, "the worker token", func() error {
		out, err := c.docker(t.Context(), "swarm", "join-token", "-q", "worker")
		if token = strings.TrimSpace(out); err != nil || !strings.HasPrefix(token, "SWMTKN-1-") {
			return fmt.Errorf("%q: %v", out, err)
		}
		return nil
	})
	join := append(append([]string{"join", "--token", token}, args(1)...), mgr.IP+":2377")
	c.wrk = shoaltest.Start(t, shoaltest.Options{Args: join, Name: "overlay-worker", Netns: wrk.Netns, NoWait: true})
	shoaltest.Eventually(t, 60*time.Second, "2 Ready nodes", func() error {
		out, err := c.docker(t.Context(), "node", "ls", "--format", "{{.Status}}")
		if strings.Count(out, "Ready") != 2 {
			return fmt.Errorf("nodes: %q %v", out, err)
		}
		return nil
	})
	return c
}

// clearNodes removes from every engine and namespace what a cluster's
// agents and managers made there: task containers, the engine networks
// backing cluster networks, the bridges and VXLAN devices, the routing
// mesh's nft table and its rule in DOCKER-USER.
func clearNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i, e := range bed.Engines {
		eng := func(args ...string) string {
			out, _ := exec.CommandContext(ctx, cli, append([]string{"-H", e.UnixHost()}, args...)...).Output()
			return strings.TrimSpace(string(out))
		}
		in := func(args ...string) ([]byte, error) {
			return exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + e.Netns, "--"}, args...)...).CombinedOutput()
		}
		if ids := strings.Fields(eng("ps", "-aq", "--filter", "label=com.docker.swarm.service.id")); len(ids) > 0 {
			eng(append([]string{"rm", "-f"}, ids...)...)
		}
		if ids := strings.Fields(eng("network", "ls", "-q", "--filter", "label=com.shoal.overlay.network")); len(ids) > 0 {
			eng(append([]string{"network", "rm"}, ids...)...)
		}
		_, _ = in("nft", "delete", "table", "ip", "shoal-mesh")
		_, _ = in("nft", "delete", "table", "ip", "shoal-vip")
		_, _ = in("nft", "delete", "table", "bridge", "shoal-vip")
		if out, err := in("iptables", "-w", "-S", "DOCKER-USER"); err == nil {
			for _, rule := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(rule, "-A DOCKER-USER ") && strings.Contains(rule, "shoal-mesh") {
					_, _ = in(append([]string{"iptables", "-w", "-D"}, strings.Fields(strings.TrimPrefix(rule, "-A "))...)...)
				}
			}
		}
		for _, dev := range linksCtx(ctx, t, i) {
			if out, err := in("ip", "link", "del", dev); err != nil {
				t.Logf("clear %s: ip link del %s: %v %s", e.Netns, dev, err, out)
			}
		}
	}
}

// docker runs the CLI against the cluster; err carries stderr.
func (c *cluster) docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+c.host, "DOCKER_CONFIG="+os.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func (c *cluster) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.docker(t.Context(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// member is a container on the network: where it runs and its address.
type member struct {
	ID, Name, Node, IP, BackIP, Hostname string // IP on appnet, BackIP on backnet
}

// members inspects containers through the cluster.
func (c *cluster) members(t *testing.T, refs ...string) []member {
	t.Helper()
	var out []member
	for _, ref := range refs {
		raw := c.must(t, "inspect", ref)
		var ins []struct {
			ID              string `json:"Id"`
			Name            string
			Node            struct{ Name string }
			Config          struct{ Hostname string }
			NetworkSettings struct {
				Networks map[string]struct{ IPAddress string }
			}
		}
		if err := json.Unmarshal([]byte(raw), &ins); err != nil || len(ins) != 1 {
			t.Fatalf("inspect %s: %v %s", ref, err, raw)
		}
		in := ins[0]
		nets := in.NetworkSettings.Networks
		out = append(out, member{ID: in.ID, Name: in.Name, Node: in.Node.Name, IP: nets["appnet"].IPAddress, BackIP: nets["backnet"].IPAddress, Hostname: in.Config.Hostname})
	}
	return out
}

// links lists the overlay devices (shv*, shx*) in engine i's namespace.
func links(t *testing.T, i int) []string {
	t.Helper()
	return linksCtx(t.Context(), t, i)
}

// linksCtx is links under ctx (a cleanup's: the test's has ended then).
func linksCtx(ctx context.Context, t *testing.T, i int) []string {
	t.Helper()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", bed.Engines[i].Netns, "ip", "-br", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link in %s: %v", bed.Engines[i].Netns, err)
	}
	var devs []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && (strings.HasPrefix(f[0], "shv") || strings.HasPrefix(f[0], "shx")) {
			devs = append(devs, strings.Split(f[0], "@")[0])
		}
	}
	slices.Sort(devs)
	return devs
}

// TestOverlayNetwork creates an attachable overlay network, a service of
// two tasks on it spread over both nodes and a container run on it; they
// reach each other across nodes by address and by name; the network is
// listed once and inspected as swarm mode shows it, cannot be removed
// while in use, and leaves no device behind once removed. The service's
// tasks are also on a second network, with a service of its own (db,
// aliased database), which they resolve through their first network's
// DNS server.
func TestOverlayNetwork(t *testing.T) {
	began := time.Now()
	c := startCluster(t)
	t.Logf("cluster up in %s", time.Since(began).Round(time.Millisecond))
	ctx := t.Context()
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c.docker(cctx, "service", "rm", "web", "db")
		c.docker(cctx, "rm", "-f", "client")
	})

	id := c.must(t, "network", "create", "-d", "overlay", "--attachable", "appnet")
	if len(id) != 25 {
		t.Errorf("network create printed %q, want a 25-character ID as swarm mode's", id)
	}
	if out := c.must(t, "network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"); strings.Count(out, "appnet") != 1 || !strings.Contains(out, "appnet overlay swarm") {
		t.Errorf("network ls lists appnet not once as an overlay network of scope swarm:\n%s", out)
	}
	if out := c.must(t, "network", "ls", "-q", "--filter", "driver=overlay", "--no-trunc"); out != id {
		t.Errorf("network ls --filter driver=overlay: %q, want %q", out, id)
	}

	c.must(t, "network", "create", "-d", "overlay", "backnet")
	// dnsrr: the names answer the tasks (vip_test.go has the VIPs)
	c.must(t, "service", "create", "-d", "--quiet", "--name", "web", "--endpoint-mode", "dnsrr", "--replicas", "2", "--network", "appnet", "--network", "backnet",
		"busybox", "nc", "-ll", "-p", "7000", "-e", "hostname")
	c.must(t, "service", "create", "-d", "--quiet", "--name", "db", "--endpoint-mode", "dnsrr", "--network", "name=backnet,alias=database", "busybox", "sleep", "600")
	c.must(t, "run", "-d", "--name", "client", "--network", "appnet", "busybox", "sleep", "600")
	var tasks []member
	shoaltest.Eventually(t, 60*time.Second, "2 running tasks of web on both nodes", func() error {
		out, err := c.docker(ctx, "ps", "-q", "--filter", "label=com.docker.swarm.service.name=web", "--filter", "status=running")
		ids := strings.Fields(out)
		if err != nil || len(ids) != 2 {
			return fmt.Errorf("tasks %q %v", out, err)
		}
		tasks = c.members(t, ids...)
		if tasks[0].Node == tasks[1].Node {
			return fmt.Errorf("both tasks on %s", tasks[0].Node)
		}
		return nil
	})
	var db member
	shoaltest.Eventually(t, 60*time.Second, "db running", func() error {
		out, err := c.docker(ctx, "ps", "-q", "--filter", "label=com.docker.swarm.service.name=db", "--filter", "status=running")
		if ids := strings.Fields(out); err != nil || len(ids) != 1 {
			return fmt.Errorf("db: %q %v", out, err)
		}
		db = c.members(t, strings.TrimSpace(out))[0]
		return nil
	})
	client := c.members(t, "client")[0]
	t.Logf("tasks %+v, client %+v (%s)", tasks, client, time.Since(began).Round(time.Millisecond))
	for _, m := range append(tasks, client) {
		if !strings.HasPrefix(m.IP, "10.0.1.") {
			t.Fatalf("%s is not on appnet's subnet 10.0.1.0/24: %q", m.Name, m.IP)
		}
	}

	t.Run("inspect", func(t *testing.T) {
		var ins []struct {
			Name, Id, Scope, Driver string
			Attachable              bool
			IPAM                    struct {
				Config []struct{ Subnet, Gateway string }
			}
			Containers map[string]struct{ Name, IPv4Address string }
		}
		if err := json.Unmarshal([]byte(c.must(t, "network", "inspect", "appnet")), &ins); err != nil || len(ins) != 1 {
			t.Fatalf("inspect: %v", err)
		}
		n := ins[0]
		if n.Id != id || n.Scope != "swarm" || n.Driver != "overlay" || !n.Attachable || len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != "10.0.1.0/24" {
			t.Errorf("inspect: %+v", n)
		}
		for _, m := range append(tasks, client) {
			if ep, ok := n.Containers[m.ID]; !ok || ep.IPv4Address != m.IP+"/24" {
				t.Errorf("inspect's Containers has %s (%s) as %+v (all: %v)", m.Name, m.IP, ep, n.Containers)
			}
		}
	})

	// a task on one node and each other member, one of them on the other node
	from := tasks[0]
	nc := func(target string) (string, error) {
		out, err := c.docker(ctx, "exec", from.ID, "nc", "-w", "3", target, "7000")
		return strings.TrimSpace(out), err
	}
	t.Run("by address across nodes", func(t *testing.T) {
		shoaltest.Eventually(t, 15*time.Second, "task "+tasks[1].IP+" answers", func() error {
			if got, err := nc(tasks[1].IP); err != nil || got != tasks[1].Hostname {
				return fmt.Errorf("%q %v, want %q", got, err, tasks[1].Hostname)
			}
			return nil
		})
		out, err := c.docker(ctx, "exec", "client", "nc", "-w", "3", tasks[0].IP, "7000")
		if strings.TrimSpace(out) != tasks[0].Hostname || err != nil {
			t.Errorf("client → task %s: %q %v", tasks[0].IP, out, err)
		}
	})
	t.Run("by name", func(t *testing.T) {
		want := []string{tasks[0].IP, tasks[1].IP}
		slices.Sort(want)
		for _, name := range []string{"web", "tasks.web"} {
			shoaltest.Eventually(t, 15*time.Second, name+" resolves to both tasks", func() error {
				out, err := c.docker(ctx, "exec", "client", "nslookup", name)
				if got := lookedUp(out); err != nil || !slices.Equal(got, want) {
					return fmt.Errorf("%v (%v)\n%s", got, err, out)
				}
				return nil
			})
		}
		shoaltest.Eventually(t, 15*time.Second, "client resolves from a task", func() error {
			out, err := c.docker(ctx, "exec", from.ID, "nslookup", "client")
			if got := lookedUp(out); err != nil || !slices.Equal(got, []string{client.IP}) {
				return fmt.Errorf("%v (%v)\n%s", got, err, out)
			}
			return nil
		})
		if got, err := nc("tasks.web"); err != nil || (got != tasks[0].Hostname && got != tasks[1].Hostname) {
			t.Errorf("nc tasks.web: %q %v", got, err)
		}
	})
	t.Run("second network", func(t *testing.T) {
		for _, m := range tasks {
			if !strings.HasPrefix(m.BackIP, "10.0.2.") {
				t.Errorf("task %s is not on backnet (10.0.2.0/24): %q", m.Name, m.BackIP)
			}
		}
		// a task's DNS server is its first network's gateway; db is on backnet only
		for _, name := range []string{"db", "database"} {
			shoaltest.Eventually(t, 15*time.Second, name+" resolves from a task on both networks", func() error {
				out, err := c.docker(ctx, "exec", from.ID, "nslookup", name)
				if got := lookedUp(out); err != nil || !slices.Equal(got, []string{db.BackIP}) {
					return fmt.Errorf("%v, want %s (%v)\n%s", got, db.BackIP, err, out)
				}
				return nil
			})
		}
		out, err := c.docker(ctx, "exec", db.ID, "nc", "-w", "3", tasks[0].BackIP, "7000")
		if strings.TrimSpace(out) != tasks[0].Hostname || err != nil {
			t.Errorf("db → task %s over backnet: %q %v", tasks[0].BackIP, out, err)
		}
	})

	t.Run("rm in use refused", func(t *testing.T) {
		if _, err := c.docker(ctx, "network", "rm", "appnet"); err == nil || !strings.Contains(err.Error(), "in use by service") {
			t.Errorf("network rm of a network a service uses: %v", err)
		}
	})
	c.must(t, "service", "rm", "web", "db")
	shoaltest.Eventually(t, 30*time.Second, "the services' containers gone", func() error {
		if out, _ := c.docker(ctx, "ps", "-aq", "--filter", "label=com.docker.swarm.service.id"); strings.TrimSpace(out) != "" {
			return fmt.Errorf("left: %q", out)
		}
		return nil
	})
	t.Run("rm with a container on it refused", func(t *testing.T) {
		if _, err := c.docker(ctx, "network", "rm", "appnet"); err == nil || !strings.Contains(err.Error(), "has active endpoints") {
			t.Errorf("network rm of a network a container is on: %v", err)
		}
	})
	c.must(t, "rm", "-f", "client")
	c.must(t, "network", "rm", "appnet", "backnet")
	if out := c.must(t, "network", "ls", "--format", "{{.Name}}"); strings.Contains(out, "appnet") || strings.Contains(out, "backnet") {
		t.Errorf("networks still listed after rm:\n%s", out)
	}
	shoaltest.Eventually(t, 15*time.Second, "no overlay device left on either node", func() error {
		for i := range bed.Engines {
			if devs := links(t, i); len(devs) > 0 {
				return fmt.Errorf("node %d: %v", i+1, devs)
			}
		}
		return nil
	})
	t.Logf("test body took %s", time.Since(began).Round(time.Millisecond))
}

// lookedUp are the addresses nslookup printed for the name (after the
// server's own lines), sorted.
func lookedUp(out string) []string {
	var ips []string
	_, answer, ok := strings.Cut(out, "Name:")
	if !ok {
		return nil
	}
	for _, l := range strings.Split(answer, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "Address:" {
			ips = append(ips, f[1])
		}
	}
	slices.Sort(ips)
	return ips
}
