package services

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
)

// Checks shared by the fault tests (faults_test.go, leaderkill_test.go):
// what `docker service ps` shows and what the engines hold must agree.

// ftask is a task as the fault tests read it: with its spec's env.
type ftask struct {
	task
	Spec struct {
		ContainerSpec struct{ Env []string }
	}
}

// ftasks lists the service's tasks (history included) with their specs.
func ftasks(t *testing.T, tg *target, name string) []ftask {
	t.Helper()
	f, _ := json.Marshal(map[string]map[string]bool{"service": {name: true}})
	r := api(t, tg, "GET", "/tasks?filters="+urlQuery(string(f)), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("%s: GET /tasks: %s", tg.Name, errForm(r))
	}
	var ts []ftask
	if err := json.Unmarshal(r.Body, &ts); err != nil {
		t.Fatalf("%s: GET /tasks: %v", tg.Name, err)
	}
	return ts
}

// isRunning: the task should run and does (healthy, if it has a healthcheck).
func isRunning(x task) bool { return x.DesiredState == "running" && x.Status.State == "running" }

// isLive: the task should run and has not ended (a replacement being
// started counts, as does the task it replaces until it is shut down).
func isLive(x task) bool {
	if x.DesiredState != "running" {
		return false
	}
	switch x.Status.State {
	case "complete", "failed", "shutdown", "rejected", "orphaned", "remove":
		return false
	}
	return true
}

// runningBySlot checks that no slot has two running tasks and returns
// how many run.
func runningBySlot(ts []ftask) (int, error) {
	per := map[int][]string{}
	n := 0
	for _, x := range ts {
		if isRunning(x.task) {
			per[x.Slot] = append(per[x.Slot], x.ID)
			n++
		}
	}
	for slot, ids := range per {
		if len(ids) > 1 {
			return n, fmt.Errorf("slot %d has %d running tasks: %v", slot, len(ids), ids)
		}
	}
	return n, nil
}

// perNode counts the running tasks on each node.
func perNode(ts []ftask) map[string]int {
	out := map[string]int{}
	for _, x := range ts {
		if isRunning(x.task) {
			out[x.NodeID]++
		}
	}
	return out
}

// tcontainer is a task container as an engine shows it.
type tcontainer struct {
	Engine       int
	Name, State  string
	Healthy      bool
	TaskID, Slot string
}

// engineContainers lists the service's task containers on the target's
// engines (every state), asking each engine's API directly (quick enough
// to sample while a change happens; an engine that does not answer is
// skipped).
func engineContainers(t *testing.T, tg *target, name string) []tcontainer {
	t.Helper()
	f, _ := json.Marshal(map[string][]string{"label": {"com.docker.swarm.service.name=" + name}})
	var out []tcontainer
	for i := range tg.Engines {
		resp, err := httpc.Get("http://" + strings.TrimPrefix(tg.engine(i).TCPAddr, "tcp://") + "/containers/json?all=1&filters=" + urlQuery(string(f)))
		if err != nil {
			continue
		}
		var cs []struct {
			Names         []string
			State, Status string
			Labels        map[string]string
		}
		err = json.NewDecoder(resp.Body).Decode(&cs)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("engine %d: containers: %v", i, err)
		}
		for _, c := range cs {
			tc := tcontainer{Engine: i, State: c.State, Healthy: strings.Contains(c.Status, "(healthy)"), TaskID: c.Labels["com.docker.swarm.task.id"]}
			if len(c.Names) > 0 {
				tc.Name = strings.TrimPrefix(c.Names[0], "/")
			}
			if parts := strings.Split(tc.Name, "."); len(parts) == 3 {
				tc.Slot = parts[1]
			}
			out = append(out, tc)
		}
	}
	return out
}

// converged says whether service name runs exactly n tasks, one per slot,
// each in a running container on its node, with no other running task
// container and no container of a task the service does not list (an
// orphan). want, if not nil, is checked on every running task.
func converged(t *testing.T, tg *target, name string, n int, want func(ftask) error) error {
	t.Helper()
	ts := ftasks(t, tg, name)
	got, err := runningBySlot(ts)
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("%d running tasks, want %d", got, n)
	}
	known, run := map[string]bool{}, map[string]bool{}
	for _, x := range ts {
		known[x.ID] = true
		if isRunning(x.task) {
			run[x.ID] = true
			if want != nil {
				if err := want(x); err != nil {
					return fmt.Errorf("task %s: %w", x.ID, err)
				}
			}
		}
	}
	cs := engineContainers(t, tg, name)
	seen := map[string]bool{}
	for _, c := range cs {
		switch {
		case !known[c.TaskID]:
			return fmt.Errorf("orphan task container %s (%s) on engine %d", c.Name, c.State, c.Engine)
		case c.State == "running" && !run[c.TaskID]:
			return fmt.Errorf("container %s runs on engine %d but its task does not run", c.Name, c.Engine)
		case c.State == "running":
			seen[c.TaskID] = true
		}
	}
	for id := range run {
		if !seen[id] {
			return fmt.Errorf("task %s runs in service ps but no engine runs its container: %v", id, cs)
		}
	}
	return nil
}

// hasEnv checks that a task's spec and its container carry kv.
func hasEnv(kv string) func(ftask) error {
	return func(x ftask) error {
		for _, e := range x.Spec.ContainerSpec.Env {
			if e == kv {
				return nil
			}
		}
		return fmt.Errorf("spec env %v lacks %s", x.Spec.ContainerSpec.Env, kv)
	}
}

// containerEnvs checks on the engines that every running task container
// of the service has kv in its environment (docker inspect, as a user
// would look).
func containerEnvs(t *testing.T, tg *target, name, kv string) error {
	t.Helper()
	for i := range tg.Engines {
		ids := strings.Fields(engineDocker(t, tg, i, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+name).Out)
		if len(ids) == 0 {
			continue
		}
		res := engineDocker(t, tg, i, append([]string{"inspect", "--format", "{{.Name}} {{json .Config.Env}}"}, ids...)...)
		for _, l := range strings.Split(strings.TrimSpace(res.Out), "\n") {
			if !strings.Contains(l, `"`+kv+`"`) {
				return fmt.Errorf("engine %d: container without %s: %s", i, kv, l)
			}
		}
	}
	return nil
}

// runningIDs are the IDs of the service's running tasks, sorted.
func runningIDs(ts []ftask) []string {
	var out []string
	for _, x := range ts {
		if isRunning(x.task) {
			out = append(out, x.ID)
		}
	}
	sort.Strings(out)
	return out
}
