package services

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

// managers is a built-in cluster of three managers (quorum survives the
// loss of one), each `shoal init`/`shoal join` in its engine's namespace.
type managers struct {
	bed   *testbed.Bed
	procs []*shoaltest.Shoal
	tg    *target // its Host is a manager that runs
}

func (m *managers) api(i int) string {
	return fmt.Sprintf("tcp://%s:%d", m.bed.Engines[i].IP, clusterAPIPort)
}

// TestServiceBuiltinFaults runs the built-in cluster's faults on one
// cluster of three managers (issue 12, points 6, 8 and 11), one service
// through three steps: the leader, which runs the orchestrator,
// SIGKILLed while a scale and while a rolling update start tasks; then a
// drain that replaces the node's tasks without downtime. Shoal only (swarm mode has no drain without downtime, and its
// leader's loss is its own).
func TestServiceBuiltinFaults(t *testing.T) {
	if !runsShoal() {
		t.Skip("SHOAL_SERVICES_TARGETS=swarm: shoal's targets do not run")
	}
	cb := testbed.MustStart(t, testbed.Options{Engines: 3, Prefix: "svck", Hostnames: []string{"node1", "node2", "node3"}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cb.LoadBusyboxAll(ctx); err != nil {
		t.Fatal(err)
	}
	m := startManagers(t, cb)
	cleanup(t, m.tg)
	// One service throughout (each step starts where the last one left
	// it): creating and removing one per step would cost seconds each.
	mustDocker(t, m.tg, append([]string{"service", "create", "-d", "--quiet", "--name", "kf", "--replicas", "2", "--stop-grace-period", "1s",
		"--update-monitor", "1s", "busybox"}, sleeper...)...)
	waitRunning(t, m.tg, "kf", 2, time.Minute)
	for _, step := range []struct {
		name string
		fn   func(*testing.T, *managers)
	}{
		{"leader killed during a scale", leaderKilledScale},
		{"leader killed during an update", leaderKilledUpdate},
		{"drain", drainNoDowntime},
	} {
		if !t.Run(step.name, func(t *testing.T) { step.fn(t, m) }) {
			return // the next steps start from this one's end
		}
	}
}

// startManagers starts `shoal init` on engine 0 and `shoal join --token
// <manager token>` on engines 1 and 2, and waits for 3 Ready managers.
func startManagers(t *testing.T, cb *testbed.Bed) *managers {
	t.Helper()
	dir := t.TempDir()
	m := &managers{bed: cb, procs: make([]*shoaltest.Shoal, 3)}
	args := func(i int) []string {
		e := cb.Engines[i]
		return []string{"--data-dir", filepath.Join(dir, e.Hostname), "--engine", e.UnixHost(), "--advertise-addr", e.IP,
			"-H", fmt.Sprintf("tcp://0.0.0.0:%d", clusterAPIPort), "--insecure-no-tlsverify", "--log-level", "debug",
			"--engine-refresh-interval", "300ms", "--engine-failure-retry", "2"}
	}
	start := func(i int, a []string) {
		m.procs[i] = shoaltest.Start(t, shoaltest.Options{Args: a, Name: fmt.Sprintf("manager%d", i+1), Netns: cb.Engines[i].Netns, NoWait: true})
	}
	start(0, append([]string{"init"}, args(0)...))
	var token string
	shoaltest.Eventually(t, 60*time.Second, "the cluster's manager token", func() error {
		res := runCLI(t.Context(), cli28, m.api(0), "swarm", "join-token", "-q", "manager")
		if token = strings.TrimSpace(res.Out); res.Exit != 0 || !strings.HasPrefix(token, "SWMTKN-1-") {
			return fmt.Errorf("exit %d %s%s", res.Exit, res.Out, res.Err)
		}
		return nil
	})
	// One at a time: the store admits one learner at a time.
	for _, i := range []int{1, 2} {
		start(i, append(append([]string{"join", "--token", token}, args(i)...), cb.Engines[0].IP+":2377"))
		shoaltest.Eventually(t, 60*time.Second, fmt.Sprintf("manager%d's API", i+1), func() error {
			if res := runCLI(t.Context(), cli28, m.api(i), "info"); res.Exit != 0 {
				return fmt.Errorf("exit %d: %s", res.Exit, res.Err)
			}
			return nil
		})
	}
	m.tg = &target{Name: "cluster", Host: m.api(0), Engines: []int{0, 1, 2}, clusterBed: cb}
	m.waitManagers(t, -1)
	return m
}

// waitManagers waits until the cluster (asked through m.tg.Host) lists
// three Ready nodes, every manager Leader or Reachable except down, which
// is to be Unreachable (-1: none), and records the node IDs.
func (m *managers) waitManagers(t *testing.T, down int) {
	t.Helper()
	shoaltest.Eventually(t, 90*time.Second, "3 managers", func() error {
		res := runCLI(t.Context(), cli28, m.tg.Host, "node", "ls", "--format", "{{.Hostname}} {{.ID}} {{.Status}} {{.ManagerStatus}}")
		ids := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(res.Out), "\n") {
			f := strings.Fields(l)
			if len(f) != 4 {
				continue
			}
			isDown := down >= 0 && f[0] == m.bed.Engines[down].Hostname
			if (isDown && f[3] == "Unreachable") || (!isDown && f[2] == "Ready" && (f[3] == "Leader" || f[3] == "Reachable")) {
				ids[f[0]] = f[1]
			}
		}
		if len(ids) != 3 {
			return fmt.Errorf("exit %d: %s%s", res.Exit, res.Out, res.Err)
		}
		m.tg.Nodes = []string{ids["node1"], ids["node2"], ids["node3"]}
		return nil
	})
}

// leader is the index of the leading manager.
func (m *managers) leader(t *testing.T) int {
	t.Helper()
	out := mustDocker(t, m.tg, "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[1] == "Leader" {
			for i, e := range m.bed.Engines {
				if e.Hostname == f[0] {
					return i
				}
			}
		}
	}
	t.Fatalf("no leader in:\n%s", out)
	return -1
}

// killLeader SIGKILLs the leader's shoal (by its PID) and points the
// target at another manager; it returns the index of the one killed.
func (m *managers) killLeader(t *testing.T) int {
	t.Helper()
	l := m.leader(t)
	m.tg.Host = m.api((l + 1) % 3)
	m.procs[l].Kill()
	return l
}

// revive restarts manager i with its data and waits for 3 managers again.
func (m *managers) revive(t *testing.T, i int) {
	t.Helper()
	if err := m.procs[i].Restart(); err != nil {
		t.Fatal(err)
	}
	m.waitManagers(t, -1)
}

// watchSlots polls the service until done returns nil, failing the test
// whenever a slot shows two running tasks.
func watchSlots(t *testing.T, tg *target, name string, within time.Duration, what string, done func([]ftask) error) {
	t.Helper()
	waitFor(t, within, what, func() error {
		ts := ftasks(t, tg, name)
		if _, err := runningBySlot(ts); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		return done(ts)
	})
}

// kfReplicas is the service's size after the scale: few, for time (a
// task's stop and start take a second or two each on a busy machine).
const kfReplicas = 4

// leaderKilledScale: `service scale kf=4` from 2, the leader SIGKILLed as
// soon as the new tasks exist (their containers being started): through a
// surviving manager the service converges to exactly 4 running tasks, the
// dead manager's node's tasks replaced within the node loss bound;
// revived, its stale containers go.
func leaderKilledScale(t *testing.T, m *managers) {
	tg := m.tg
	mustDocker(t, tg, "service", "scale", "-d", fmt.Sprintf("kf=%d", kfReplicas))
	var atKill []ftask
	waitFor(t, 30*time.Second, "kf: the scale's tasks made", func() error {
		atKill = ftasks(t, tg, "kf")
		if len(atKill) <= 2 {
			return fmt.Errorf("%d tasks", len(atKill))
		}
		return nil
	})
	killed := m.killLeader(t)
	t0 := time.Now()
	t.Logf("leader %s killed with %d tasks, %d running", m.bed.Engines[killed].Hostname, len(atKill), running(tasksOf(atKill)))
	deadNode := m.tg.Nodes[killed]
	watchSlots(t, tg, "kf", 90*time.Second, "kf: all tasks running on the live nodes", func(ts []ftask) error {
		if n, pn := running(tasksOf(ts)), perNode(ts); n != kfReplicas || pn[deadNode] != 0 {
			return fmt.Errorf("%d running, per node %v", n, pn)
		}
		return nil
	})
	took := time.Since(t0)
	t.Logf("kf: %d running on the live nodes %s after the leader's death", kfReplicas, took.Round(100*time.Millisecond))
	if took > nodeLossBound { // its node is lost with it: the node loss bound holds across the failover
		t.Logf("kf: the dead leader's node's tasks replaced %s after its death, above the %s bound", took.Round(100*time.Millisecond), nodeLossBound)
	}
	if took > nodeLossCeiling {
		t.Errorf("kf: the dead leader's node's tasks replaced %s after its death, want ≤ %s", took.Round(100*time.Millisecond), nodeLossCeiling)
	}
	m.revive(t, killed)
	waitFor(t, time.Minute, "kf: converged with the dead leader's node back", func() error {
		return converged(t, tg, "kf", kfReplicas, nil)
	})
	t.Logf("kf: converged, stale containers gone, %s after the leader's death", time.Since(t0).Round(100*time.Millisecond))
}

// leaderKilledUpdate: `service update --env-add X=1 --update-parallelism 2`
// (adding a healthcheck, for the drain that follows) of 4 tasks, the
// leader SIGKILLed once the update's first tasks exist: the update
// completes through the new leader, every running task has the new spec,
// none lost or duplicated.
func leaderKilledUpdate(t *testing.T, m *managers) {
	tg := m.tg
	waitRunning(t, tg, "kf", kfReplicas, time.Minute)
	// Healthy at its second check: a replacement counts as running only
	// some time after its container runs.
	mustDocker(t, tg, "service", "update", "-d", "--env-add", "X=1", "--update-parallelism", "2",
		"--health-cmd", "test -f /tmp/ok || { touch /tmp/ok; false; }", "--health-interval", "250ms", "--health-retries", "3", "kf")
	var atKill []ftask
	waitFor(t, 30*time.Second, "kf: the update's first tasks made", func() error {
		atKill = ftasks(t, tg, "kf")
		for _, x := range atKill {
			if hasEnv("X=1")(x) == nil {
				return nil
			}
		}
		return fmt.Errorf("none yet")
	})
	killed := m.killLeader(t)
	t0 := time.Now()
	t.Logf("leader %s killed with %d tasks, %d running", m.bed.Engines[killed].Hostname, len(atKill), running(tasksOf(atKill)))
	watchSlots(t, tg, "kf", 90*time.Second, "kf: all tasks of the new spec running on the live nodes", func(ts []ftask) error {
		pn := perNode(ts)
		if n := running(tasksOf(ts)); n != kfReplicas || pn[m.tg.Nodes[killed]] != 0 {
			return fmt.Errorf("%d running, per node %v", n, pn)
		}
		for _, x := range ts {
			if isRunning(x.task) && hasEnv("X=1")(x) != nil {
				return fmt.Errorf("task %s runs the old spec", x.ID)
			}
		}
		return nil
	})
	waitUpdateState(t, tg, "kf", "completed", time.Minute)
	t.Logf("kf: update completed %s after the leader's death", time.Since(t0).Round(100*time.Millisecond))
	m.revive(t, killed)
	waitFor(t, time.Minute, "kf: converged with the dead leader's node back", func() error {
		return converged(t, tg, "kf", kfReplicas, hasEnv("X=1"))
	})
	if err := containerEnvs(t, tg, "kf", "X=1"); err != nil {
		t.Error(err)
	}
	if s := getService(t, tg, "kf"); s.UpdateStatus == nil || s.UpdateStatus.State != "completed" {
		t.Errorf("kf: UpdateStatus %+v after the revived manager came back, want completed", s.UpdateStatus)
	}
}

// drainNoDowntime drains node1 under the service (4 replicas with a
// healthcheck): its tasks are replaced on other nodes, each replacement
// healthy before the old task stops, so the service never has fewer than
// 4 healthy tasks, in service ps or on the engines.
func drainNoDowntime(t *testing.T, m *managers) {
	tg := m.tg
	node1 := tg.Nodes[0]
	var before []string
	waitFor(t, time.Minute, "kf: all tasks healthy, some on node1", func() error {
		before = nil
		ts := ftasks(t, tg, "kf")
		for _, x := range ts {
			if isRunning(x.task) && x.NodeID == node1 {
				before = append(before, x.ID)
			}
		}
		if n := healthy(engineContainers(t, tg, "kf")); running(tasksOf(ts)) != kfReplicas || n != kfReplicas || len(before) == 0 {
			return fmt.Errorf("%d healthy containers, per node %v", n, perNode(ts))
		}
		return nil
	})
	mustDocker(t, tg, "node", "update", "--availability", "drain", node1)
	drained := time.Now()
	samples := 0
	waitFor(t, time.Minute, "kf: node1's tasks replaced", func() error {
		samples++
		ts := ftasks(t, tg, "kf")
		n, err := runningBySlot(ts)
		if err != nil {
			t.Errorf("during the drain: %v", err)
		}
		if n < kfReplicas {
			t.Errorf("during the drain: %d healthy running tasks in service ps, want never fewer than %d: %+v", n, kfReplicas, ts)
		}
		if h := healthy(engineContainers(t, tg, "kf")); h < kfReplicas {
			t.Errorf("during the drain: %d healthy task containers on the engines, want never fewer than %d", h, kfReplicas)
		}
		if pn := perNode(ts); pn[node1] != 0 {
			return fmt.Errorf("running per node %v", pn)
		}
		return converged(t, tg, "kf", kfReplicas, hasEnv("X=1"))
	})
	t.Logf("node1 drained: %d tasks replaced without downtime in %s (%d samples)", len(before), time.Since(drained).Round(100*time.Millisecond), samples)
	for _, x := range ftasks(t, tg, "kf") {
		for _, id := range before {
			if x.ID == id && x.DesiredState != "shutdown" {
				t.Errorf("node1's task %s: desired %s, want shutdown", x.ID, x.DesiredState)
			}
		}
	}
}

// healthy counts the running, healthy containers.
func healthy(cs []tcontainer) int {
	n := 0
	for _, c := range cs {
		if c.State == "running" && c.Healthy {
			n++
		}
	}
	return n
}
