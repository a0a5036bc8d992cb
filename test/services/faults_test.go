package services

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Faults under `shoal manage` (issue 12, points 6, 7 and 11), on the
// shared shoal target's three engines: shoal only, swarm mode has no
// rebalancing to compare with. The built-in cluster's faults (a leader
// killed, a drain: node availability is a cluster record) are in
// leaderkill_test.go.

// shoalTarget is the shared `shoal manage` target.
func shoalTarget(t *testing.T) *target {
	t.Helper()
	for _, tg := range targets {
		if tg.Name == "shoal" {
			return tg
		}
	}
	t.Skip("SHOAL_SERVICES_TARGETS=swarm: shoal's targets do not run")
	return nil
}

// TestServiceEngineLossRebalance kills node3's dockerd in the middle of a
// rolling update: the update completes, node3's tasks replaced on node1
// and node2 with the new spec. When node3 comes back, its stale task
// containers go and the service moves back toward 2/2/2, at most two
// tasks at a time (its update parallelism), never below its 6 replicas
// and never two running tasks of one slot; a service labelled
// com.docker.shoal.rebalance=false stays where it is.
func TestServiceEngineLossRebalance(t *testing.T) {
	tg := shoalTarget(t)
	cleanup(t, tg)
	mustDocker(t, tg, append([]string{"service", "create", "-d", "--quiet", "--name", "upd", "--replicas", "6", "--stop-grace-period", "1s",
		"--update-parallelism", "2", "--update-monitor", "1s", "busybox"}, sleeper...)...)
	mustDocker(t, tg, append([]string{"service", "create", "-d", "--quiet", "--name", "pinned", "--replicas", "3", "--stop-grace-period", "1s",
		"--label", "com.docker.shoal.rebalance=false", "busybox"}, sleeper...)...)
	waitRunning(t, tg, "upd", 6, time.Minute)
	waitRunning(t, tg, "pinned", 3, time.Minute)

	mustDocker(t, tg, "service", "update", "-d", "--env-add", "X=1", "upd")
	waitFor(t, time.Minute, "a task of the new spec running", func() error {
		for _, x := range ftasks(t, tg, "upd") {
			if isRunning(x.task) && hasEnv("X=1")(x) == nil {
				return nil
			}
		}
		return fmt.Errorf("none yet")
	})
	lost := tg.Engines[2]
	t.Cleanup(func() { // t.Context() has ended by now: restoreEngine's would not do
		if err := bed.Start(context.Background(), lost); err != nil {
			t.Errorf("restart engine %d: %v", lost, err)
			return
		}
		waitNodes(t, tg)
	})
	if err := bed.Kill(lost); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitUpdateState(t, tg, "upd", "completed", 90*time.Second)
	waitFor(t, time.Minute, "upd: 6 tasks of the new spec on node1 and node2", func() error {
		ts := ftasks(t, tg, "upd")
		if n, err := runningBySlot(ts); err != nil || n != 6 {
			return fmt.Errorf("%d running: %v", n, err)
		}
		for _, x := range ts {
			if isRunning(x.task) && (x.NodeID == tg.Nodes[2] || hasEnv("X=1")(x) != nil) {
				return fmt.Errorf("task %s on %s with env %v", x.ID, x.NodeID, x.Spec.ContainerSpec.Env)
			}
		}
		return nil
	})
	t.Logf("update completed, node3's tasks replaced, %s after node3's engine was killed", time.Since(killed).Round(100*time.Millisecond))
	waitFor(t, 30*time.Second, "pinned: 3 tasks on node1 and node2", func() error {
		ts := ftasks(t, tg, "pinned")
		if pn := perNode(ts); running(tasksOf(ts)) != 3 || pn[tg.Nodes[2]] != 0 {
			return fmt.Errorf("per node %v", pn)
		}
		return nil
	})
	pinned := runningIDs(ftasks(t, tg, "pinned"))

	returned := time.Now()
	restoreEngine(t, tg, lost)
	var samples, maxLive int
	waitFor(t, 90*time.Second, "upd rebalanced to 2/2/2, node3's stale containers gone", func() error {
		samples++
		ts := ftasks(t, tg, "upd")
		n, err := runningBySlot(ts)
		if err != nil {
			t.Errorf("during the rebalance: %v", err)
		}
		if n < 6 {
			t.Errorf("during the rebalance: %d tasks running, want never fewer than 6: %+v", n, ts)
		}
		live := 0
		for _, x := range ts {
			if isLive(x.task) {
				live++
			}
		}
		maxLive = max(maxLive, live)
		if live > 6+2 {
			t.Errorf("during the rebalance: %d live tasks, want at most 6 + update parallelism 2", live)
		}
		pn := perNode(ts)
		for _, id := range tg.Nodes {
			if pn[id] != 2 {
				return fmt.Errorf("running per node %v", pn)
			}
		}
		return converged(t, tg, "upd", 6, hasEnv("X=1"))
	})
	t.Logf("node3 back: upd at 2/2/2 and its stale copies gone %s after its engine restarted (%d samples, at most %d live tasks)",
		time.Since(returned).Round(100*time.Millisecond), samples, maxLive)
	if err := containerEnvs(t, tg, "upd", "X=1"); err != nil {
		t.Error(err)
	}
	waitFor(t, 30*time.Second, "pinned: converged, node3's stale copy gone", func() error {
		return converged(t, tg, "pinned", 3, nil)
	})
	if now := runningIDs(ftasks(t, tg, "pinned")); strings.Join(now, " ") != strings.Join(pinned, " ") {
		t.Errorf("pinned (rebalance=false) moved: running tasks %v, were %v", now, pinned)
	}
}

// tasksOf is the plain tasks of ftasks.
func tasksOf(ts []ftask) []task {
	out := make([]task, len(ts))
	for i, x := range ts {
		out[i] = x.task
	}
	return out
}
