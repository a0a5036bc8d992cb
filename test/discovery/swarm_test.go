package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

// swarmBed is three engines of their own Bed joined in one Docker swarm:
// node1 (engine 0) initialised it and leads, node2 (engine 1) is a second
// manager, node3 (engine 2) a worker.
type swarmBed struct {
	*testbed.Bed
}

func startSwarm(t *testing.T) *swarmBed {
	t.Helper()
	b := testbed.MustStart(t, testbed.Options{Engines: 3, Prefix: "dswarm"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := b.LoadBusyboxAll(ctx); err != nil {
		t.Fatal(err)
	}
	s := &swarmBed{b}
	e0 := b.Engines[0]
	// No default route in the namespaces: the address must be given.
	s.docker(t, 0, "swarm", "init", "--advertise-addr", e0.IP, "--listen-addr", e0.IP+":2377")
	wtok := strings.TrimSpace(s.docker(t, 0, "swarm", "join-token", "-q", "worker"))
	mtok := strings.TrimSpace(s.docker(t, 0, "swarm", "join-token", "-q", "manager"))
	for i, tok := range map[int]string{1: mtok, 2: wtok} {
		ip := b.Engines[i].IP
		s.docker(t, i, "swarm", "join", "--token", tok, "--advertise-addr", ip, "--listen-addr", ip+":2377", e0.IP+":2377")
	}
	shoaltest.Eventually(t, 60*time.Second, "3 swarm nodes ready", func() error {
		out, err := s.try(0, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}")
		if err != nil {
			return err
		}
		if strings.Count(out, " Ready") != 3 {
			return fmt.Errorf("node ls:\n%s", out)
		}
		return nil
	})
	return s
}

func (s *swarmBed) try(i int, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, _, err := s.Docker(ctx, s.Engines[i].TCPAddr, args...)
	return out, err
}

// docker runs the docker CLI against engine i directly.
func (s *swarmBed) docker(t *testing.T, i int, args ...string) string {
	t.Helper()
	out, err := s.try(i, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// swarmPool is what a shoal's GET /nodes says: hostname → "state/availability".
func swarmPool(m *manager) (map[string]string, error) {
	b, err := m.get("/nodes")
	if err != nil {
		return nil, err
	}
	var ns []struct {
		Description struct{ Hostname string }
		Spec        struct{ Availability string }
		Status      struct{ State string }
	}
	if err := json.Unmarshal(b, &ns); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range ns {
		out[n.Description.Hostname] = n.Status.State + "/" + n.Spec.Availability
	}
	return out, nil
}

// waitPool waits until the pool holds exactly want (hostname → state/avail)
// and returns how long that took.
func waitPool(t *testing.T, m *manager, timeout time.Duration, want map[string]string) time.Duration {
	t.Helper()
	t0 := time.Now()
	shoaltest.Eventually(t, timeout, fmt.Sprintf("pool of %s = %v", m.Name, want), func() error {
		got, err := swarmPool(m)
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("pool is %v", got)
		}
		return nil
	})
	return time.Since(t0)
}

// placements returns the node of each running container, by shoal's ps.
func placements(t *testing.T, m *manager) []string {
	t.Helper()
	out, err := m.docker(t, "", "ps", "--format", "{{.Names}}")
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, l := range lines(out) {
		node, _, _ := strings.Cut(l, "/")
		nodes = append(nodes, node)
	}
	slices.Sort(nodes)
	return nodes
}

func swarmReplicated(t *testing.T, name, uri string) *manager {
	addr := fmt.Sprintf("127.0.0.1:%d", shoaltest.FreePort(t))
	return startManagerAt(t, name, addr, uri, "--replication", "--advertise", addr, "--replication-ttl", "3s")
}

// TestSwarmDiscovery: shoal over a Docker swarm (swarm://<manager engine>):
// the pool is the swarm's nodes; drain/active and a stopped worker show in
// the pool and placements; two replicated shoals, each on a swarm manager,
// follow the swarm leader for primary.
func TestSwarmDiscovery(t *testing.T) {
	s := startSwarm(t)
	allUp := map[string]string{"node1": "ready/active", "node2": "ready/active", "node3": "ready/active"}

	// shoal list over the manager's unix socket, with the engines' port.
	var wantList []string
	for _, e := range s.Engines {
		wantList = append(wantList, e.IP+":2375")
	}
	slices.Sort(wantList)
	if got := list(t, "swarm://"+s.Engines[0].UnixHost()); !slices.Equal(got, wantList) {
		t.Fatalf("shoal list swarm://unix: %v, want %v", got, wantList)
	}

	m1 := swarmReplicated(t, "shoal1", "swarm://"+s.Engines[0].TCPAddr)
	t.Logf("pool of 3 swarm nodes after %s", waitPool(t, m1, 20*time.Second, allUp).Round(10*time.Millisecond))
	if out, err := m1.docker(t, "", "node", "ls"); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("docker node ls via shoal:\n%s", out)
	}

	// Drain the worker in the swarm: shoal places nothing there.
	t0 := time.Now()
	s.docker(t, 0, "node", "update", "--availability", "drain", "node3")
	cli := time.Since(t0)
	waitPool(t, m1, 15*time.Second, map[string]string{"node1": "ready/active", "node2": "ready/active", "node3": "ready/drain"})
	t.Logf("drain in the swarm (docker node update took %s) -> node3 drained in shoal %s after the command started",
		cli.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	if out, err := m1.docker(t, "", "node", "ls", "--format", "{{.Hostname}} {{.Availability}}"); err != nil || !strings.Contains(out, "node3 Drain") {
		t.Fatalf("node ls via shoal: %q %v", out, err)
	}
	t.Cleanup(func() {
		if out, err := m1.docker(t, "", "ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			m1.docker(t, "", append([]string{"rm", "-f"}, strings.Fields(out)...)...)
		}
	})
	for i := range 6 {
		if _, err := m1.docker(t, "", "run", "-d", "--name", fmt.Sprintf("sw-d%d", i), "busybox", "sleep", "600"); err != nil {
			t.Fatal(err)
		}
	}
	if p := placements(t, m1); slices.Contains(p, "node3") || len(p) != 6 {
		t.Fatalf("with node3 drained, containers on %v", p)
	}
	s.docker(t, 0, "node", "update", "--availability", "pause", "node2")
	waitPool(t, m1, 15*time.Second, map[string]string{"node1": "ready/active", "node2": "ready/pause", "node3": "ready/drain"})
	if _, err := m1.docker(t, "", "run", "-d", "--name", "sw-p", "busybox", "sleep", "600"); err != nil {
		t.Fatal(err)
	}
	if p := placements(t, m1); slices.Equal(p, []string{"node1", "node1", "node1", "node1", "node2", "node2", "node2"}) == false {
		t.Fatalf("with node2 paused and node3 drained, placements %v (want the 7th on node1)", p)
	}
	s.docker(t, 0, "node", "update", "--availability", "active", "node2")
	t0 = time.Now()
	s.docker(t, 0, "node", "update", "--availability", "active", "node3")
	waitPool(t, m1, 15*time.Second, allUp)
	t.Logf("active in the swarm -> node3 active in shoal %s after the command started", time.Since(t0).Round(time.Millisecond))
	if _, err := m1.docker(t, "", "run", "-d", "--name", "sw-a", "busybox", "sleep", "600"); err != nil {
		t.Fatal(err)
	}
	if p := placements(t, m1); !slices.Contains(p, "node3") {
		t.Fatalf("node3 active again but placements %v", p)
	}
	out, _ := m1.docker(t, "", "ps", "-aq")
	if _, err := m1.docker(t, "", append([]string{"rm", "-f"}, strings.Fields(out)...)...); err != nil {
		t.Fatal(err)
	}

	// Stop the worker's engine: shoal marks it down at once (its own health
	// checks) and drains it when the swarm says Down; back when it returns.
	t0 = time.Now()
	if err := s.Stop(2); err != nil {
		t.Fatal(err)
	}
	stopped := time.Since(t0)
	shoaltest.Eventually(t, 15*time.Second, "node3 down in shoal", func() error {
		got, err := swarmPool(m1)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(got["node3"], "down/") {
			return fmt.Errorf("pool %v", got)
		}
		return nil
	})
	unhealthy := time.Since(t0)
	waitPool(t, m1, 60*time.Second, map[string]string{"node1": "ready/active", "node2": "ready/active", "node3": "down/drain"})
	swarmDown := time.Since(t0)
	t.Logf("worker engine stopped (dockerd exited after %s): down in shoal after %s, drained (swarm says Down) after %s",
		stopped.Round(10*time.Millisecond), unhealthy.Round(10*time.Millisecond), swarmDown.Round(10*time.Millisecond))
	if _, err := m1.docker(t, "", "run", "--rm", "busybox", "true"); err != nil {
		t.Fatalf("run with node3 down: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	t0 = time.Now()
	if err := s.Start(ctx, 2); err != nil {
		t.Fatal(err)
	}
	started := time.Since(t0)
	waitPool(t, m1, 60*time.Second, allUp)
	t.Logf("worker engine started (answering /_ping after %s): ready/active in shoal after %s",
		started.Round(10*time.Millisecond), time.Since(t0).Round(10*time.Millisecond))

	// A second shoal on the other swarm manager: the shoal on the leader
	// (node1) is primary and the other forwards to it.
	m2 := swarmReplicated(t, "shoal2", "swarm://"+s.Engines[1].TCPAddr)
	waitPool(t, m2, 20*time.Second, allUp)
	wantRoles := func(timeout time.Duration, primary *manager, others ...*manager) time.Duration {
		t.Helper()
		t0 := time.Now()
		shoaltest.Eventually(t, timeout, primary.Name+" primary", func() error {
			for _, m := range append([]*manager{primary}, others...) {
				role, p, err := m.role()
				if err != nil {
					return err
				}
				want := "replica"
				if m == primary {
					want = "primary"
				}
				if role != want || p != primary.Addr {
					return fmt.Errorf("%s: role %s, primary %s", m.Name, role, p)
				}
			}
			return nil
		})
		return time.Since(t0)
	}
	wantRoles(20*time.Second, m1, m2)
	if out, err := m2.docker(t, "", "run", "-d", "--name", "sw-r", "busybox", "sleep", "600"); err != nil {
		t.Fatal(out, err)
	}
	if out, err := m2.docker(t, "", "ps", "--format", "{{.Names}}"); err != nil || !strings.Contains(out, "sw-r") {
		t.Fatalf("ps via the replica: %q %v", out, err)
	}
	if out, err := m2.docker(t, "", "exec", "sw-r", "echo", "exec-ok"); err != nil || strings.TrimSpace(out) != "exec-ok" {
		t.Fatalf("exec via the replica: %q %v", out, err)
	}

	// The primary crashes: the other takes over after --replication-ttl.
	m1.Kill()
	t0 = time.Now()
	took := wantRoles(30*time.Second, m2)
	var served time.Duration
	shoaltest.Eventually(t, 30*time.Second, "ps on the new primary", func() error {
		out, err := m2.docker(t, "", "ps", "--format", "{{.Names}}")
		if err != nil || !strings.Contains(out, "sw-r") {
			return fmt.Errorf("%q %v", out, err)
		}
		served = time.Since(t0)
		return nil
	})
	t.Logf("primary shoal killed (replication-ttl 3s): other primary after %s, docker ps served after %s",
		took.Round(10*time.Millisecond), served.Round(10*time.Millisecond))

	// It comes back: the leader's shoal is primary again.
	m1.restart(t)
	d := wantRoles(20*time.Second, m1, m2)
	t.Logf("leader's shoal restarted: primary again after %s", d.Round(10*time.Millisecond))

	// Leadership moves in the swarm (node1 demoted): node2's shoal leads,
	// node1's shoal (its engine now a worker) follows through node2.
	t0 = time.Now()
	s.docker(t, 1, "node", "demote", "node1")
	d = wantRoles(30*time.Second, m2, m1)
	t.Logf("swarm leader demoted: node2's shoal primary %s after the command started", time.Since(t0).Round(10*time.Millisecond))
	if out, err := m1.docker(t, "", "exec", "sw-r", "echo", "exec-ok"); err != nil || strings.TrimSpace(out) != "exec-ok" {
		t.Fatalf("exec via node1's shoal after demotion: %q %v", out, err)
	}
	waitPool(t, m1, 20*time.Second, allUp)

	// A graceful stop hands over at once.
	m2.Stop()
	d = wantRoles(10*time.Second, m1)
	t.Logf("primary shoal stopped gracefully: other primary after %s", d.Round(10*time.Millisecond))
}
