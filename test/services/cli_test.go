package services

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// psFormat is `service ps` without the columns that depend on placement
// or IDs.
const psFormat = "{{.Name}} {{.Image}} {{.DesiredState}} {{.CurrentState}} {{.Error}}"

// firstLine records the first line of the CLI's default output (its
// table header).
func (r *rec) header(step, out string) {
	r.add(step+" [header]", norm(strings.SplitN(out, "\n", 2)[0]))
}

// waitUpdateState waits until the service's UpdateStatus.State is state.
func waitUpdateState(t *testing.T, tg *target, name, state string, within time.Duration) service {
	t.Helper()
	var s service
	waitFor(t, within, tg.Name+": "+name+" UpdateStatus "+state, func() error {
		s = getService(t, tg, name)
		if s.UpdateStatus == nil || s.UpdateStatus.State != state {
			return fmt.Errorf("UpdateStatus %+v", s.UpdateStatus)
		}
		return nil
	})
	return s
}

// TestServiceLifecycle: create, ls, ps, inspect, scale, update, rollback
// and rm through the CLI 28, compared with swarm mode.
func TestServiceLifecycle(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		tg := r.tg
		r.cli("eor", append([]string{"service", "create", "-d", "--name", "web", "--replicas", "3",
			"--label", "tier=front", "--container-label", "c=1", "--env", "V=1", "--stop-grace-period", "1s",
			"--update-parallelism", "0", "--rollback-parallelism", "0", "--update-monitor", "1s", "--rollback-monitor", "1s", "busybox"}, sleeper...)...)
		waitRunning(t, tg, "web", 3, time.Minute)
		r.header("service ls", r.cli("eo", "service", "ls").Out)
		r.cli("eo", "service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}} {{.Image}} {{.Ports}}")
		r.header("service ps web", r.cli("e", "service", "ps", "web").Out)
		r.cli("eo", "service", "ps", "--format", psFormat, "web")
		r.cli("ek", "service", "inspect", "web")
		r.cli("eo", "service", "inspect", "--format", "{{.Spec.Name}} {{json .Spec.Labels}} {{json .Spec.Mode}} {{json .Spec.TaskTemplate}} {{json .Spec.UpdateConfig}} {{json .Spec.RollbackConfig}} {{json .Spec.EndpointSpec}} {{.UpdateStatus}} {{.PreviousSpec}}", "web")
		r.cli("eo", "service", "inspect", "--pretty", "web")

		r.cli("eor", "service", "scale", "-d", "web=5")
		waitRunning(t, tg, "web", 5, time.Minute)
		r.cli("eo", "service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}}")
		r.cli("eo", "service", "ps", "--format", psFormat, "web")
		r.cli("eo", "service", "inspect", "--format", "{{json .Spec.Mode}} {{json .PreviousSpec.Mode}}", "web")

		r.cli("eor", "service", "update", "-d", "--env-add", "V=2", "web")
		waitUpdateState(t, tg, "web", "completed", 2*time.Minute)
		waitRunning(t, tg, "web", 5, time.Minute)
		r.cli("eo", "service", "inspect", "--format", "{{.UpdateStatus.State}} {{.UpdateStatus.Message}} {{json .Spec.TaskTemplate.ContainerSpec.Env}} {{json .PreviousSpec.TaskTemplate.ContainerSpec.Env}}", "web")
		r.cli("es", "service", "ps", "--format", psFormat, "web")
		r.cli("es", "service", "ps", "--filter", "desired-state=running", "--format", psFormat, "web")

		r.cli("eor", "service", "rollback", "-d", "web")
		waitUpdateState(t, tg, "web", "rollback_completed", 2*time.Minute)
		waitRunning(t, tg, "web", 5, time.Minute)
		r.cli("eo", "service", "inspect", "--format", "{{.UpdateStatus.State}} {{.UpdateStatus.Message}} {{json .Spec.TaskTemplate.ContainerSpec.Env}} {{json .PreviousSpec.TaskTemplate.ContainerSpec.Env}}", "web")
		r.cli("eor", "service", "rollback", "-d", "web")
		waitUpdateState(t, tg, "web", "rollback_completed", 2*time.Minute)
		r.cli("eo", "service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Env}} {{json .PreviousSpec.TaskTemplate.ContainerSpec.Env}}", "web")

		r.cli("eor", "service", "rm", "web", "nope")
		r.cli("eo", "service", "ls")
		r.cli("eor", "service", "inspect", "web")
		r.cli("eor", "service", "ps", "web")
	})
}

// progressLines keeps what --detach=false prints that does not depend on
// timing: the lines but the countdown and the intermediate counts, each
// once, in order.
func progressLines(out string) string {
	skip := regexp.MustCompile(`^(verify: Waiting \d+ seconds?|overall progress: (\d+) out of (\d+) tasks)`)
	seen := map[string]bool{}
	var keep []string
	for _, l := range strings.Split(norm(out), "\n") {
		if m := skip.FindStringSubmatch(l); m != nil && (m[2] == "" || m[2] != m[3]) {
			continue
		}
		if !seen[l] {
			seen[l] = true
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestServiceCreateProgress: `service create --detach=false` (the CLI 28's
// default), `service scale` and `service update` without -d follow the
// tasks until they run and end as against swarm mode.
func TestServiceCreateProgress(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		res := r.cli("e", append([]string{"service", "create", "--name", "prog", "--replicas", "2", "--update-monitor", "1s", "busybox"}, sleeper...)...)
		r.add("service create --detach=false [progress]", progressLines(res.Out))
		res = r.cli("e", "service", "scale", "prog=3")
		r.add("service scale prog=3 [progress]", progressLines(res.Out))
		res = r.cli("e", "service", "update", "--env-add", "P=1", "prog")
		r.add("service update prog [progress]", progressLines(res.Out))
		waitRunning(t, r.tg, "prog", 3, time.Minute)
	})
}

// TestServiceGlobal: a global service runs one task on each node, named
// <service>.<node id>.<task id>.
func TestServiceGlobal(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		tg := r.tg
		r.cli("eo", append([]string{"service", "create", "-d", "--quiet", "--mode", "global", "--name", "glob", "busybox"}, sleeper...)...)
		waitRunning(t, tg, "glob", 3, time.Minute)
		r.cli("eo", "service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}}")
		r.cli("es", "service", "ps", "--format", "{{.Node}} {{.DesiredState}} {{.CurrentState}}", "glob")
		for i := range tg.Engines {
			names := strings.Fields(engineDocker(t, tg, i, "ps", "--filter", "label=com.docker.swarm.service.name=glob", "--format", "{{.Names}}").Out)
			if len(names) != 1 || !strings.HasPrefix(names[0], "glob."+tg.Nodes[i]+".") {
				t.Errorf("%s: node%d: global task containers %v, want one named glob.%s.<task id>", tg.Name, i+1, names, tg.Nodes[i])
			}
			r.add(fmt.Sprintf("node%d task containers", i+1), norm(strings.Join(names, " ")))
		}
	})
}

// TestServiceJobs: a replicated job with --max-concurrent and a global job
// run to completion; --detach=false says "job complete".
func TestServiceJobs(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		tg := r.tg
		res := r.cli("e", "service", "create", "--name", "job", "--mode", "replicated-job", "--replicas", "4", "--max-concurrent", "2", "busybox", "sh", "-c", "sleep 1; echo done")
		r.add("replicated-job [progress last line]", lastLine(res.Out))
		r.cli("eo", "service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}}")
		r.cli("eo", "service", "ps", "--format", "{{.DesiredState}} {{.CurrentState}} {{.Error}}", "job")
		r.cli("eo", "service", "inspect", "--format", "{{json .Spec.Mode}} {{if .JobStatus}}has JobStatus{{end}}", "job")
		done := 0
		for _, x := range tasks(t, tg, "job") {
			if x.Status.State == "complete" && x.DesiredState == "complete" {
				done++
			}
		}
		if done != 4 {
			t.Errorf("%s: %d complete tasks, want 4", tg.Name, done)
		}
		res = r.cli("e", "service", "create", "--name", "gjob", "--mode", "global-job", "busybox", "echo", "hi")
		r.add("global-job [progress last line]", lastLine(res.Out))
		r.cli("es", "service", "ps", "--format", "{{.Node}} {{.DesiredState}} {{.CurrentState}}", "gjob")
		r.cli("eo", "service", "ls", "--filter", "name=gjob", "--format", "{{.Name}} {{.Mode}} {{.Replicas}}")
	})
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(norm(s)), "\n")
	return ls[len(ls)-1]
}

// TestServicePending: a task whose constraint fits no node stays pending
// with the scheduler's explanation in `service ps`; an engine label
// constraint places it on that engine's node.
func TestServicePending(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		tg := r.tg
		r.cli("eo", append([]string{"service", "create", "-d", "--quiet", "--name", "pend", "--constraint", "node.labels.zone==nowhere", "busybox"}, sleeper...)...)
		waitFor(t, time.Minute, tg.Name+": pend's task explained", func() error {
			for _, x := range tasks(t, tg, "pend") {
				if x.Status.State == "pending" && x.Status.Err != "" {
					return nil
				}
			}
			return fmt.Errorf("no pending task with an error yet")
		})
		time.Sleep(2 * time.Second) // still pending a while later
		r.cli("eo", "service", "ps", "--no-trunc", "--format", "{{.Name}} [{{.Node}}] {{.DesiredState}} {{.CurrentState}} {{.Error}}", "pend")
		r.cli("eo", "service", "ls", "--format", "{{.Name}} {{.Replicas}}")
		r.cli("eo", append([]string{"service", "create", "-d", "--quiet", "--name", "eng", "--constraint", "engine.labels.zone==b", "busybox"}, sleeper...)...)
		waitRunning(t, tg, "eng", 1, time.Minute)
		r.cli("eo", "service", "ps", "--format", "{{.Name}} {{.Node}} {{.DesiredState}}", "eng")
		r.cli("eo", append([]string{"service", "create", "-d", "--quiet", "--name", "host", "--constraint", "node.hostname==node3", "--replicas", "2", "busybox"}, sleeper...)...)
		waitRunning(t, tg, "host", 2, time.Minute)
		r.cli("eo", "service", "ps", "--format", "{{.Name}} {{.Node}} {{.DesiredState}}", "host")
	})
}

// TestServiceTaskContainers: task containers are named
// <service>.<slot>.<task id> and carry swarm mode's labels, visible with
// docker ps on their engine.
func TestServiceTaskContainers(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		tg := r.tg
		r.cli("eo", append([]string{"service", "create", "-d", "--quiet", "--name", "tc", "--replicas", "3", "--container-label", "c=1", "busybox"}, sleeper...)...)
		waitRunning(t, tg, "tc", 3, time.Minute)
		svcID := getService(t, tg, "tc").ID
		var names, keys []string
		for i := range tg.Engines {
			out := engineDocker(t, tg, i, "ps", "--filter", "label=com.docker.swarm.service.name=tc", "--format", "{{.Names}}").Out
			for _, name := range strings.Fields(out) {
				names = append(names, name)
				var labels map[string]string
				js := engineDocker(t, tg, i, "inspect", "--format", "{{json .Config.Labels}}", name).Out
				if err := json.Unmarshal([]byte(js), &labels); err != nil {
					t.Fatalf("%s: labels of %s: %v: %s", tg.Name, name, err, js)
				}
				checkTaskLabels(t, tg, i, svcID, name, labels)
				ks := make([]string, 0, len(labels))
				for k := range labels {
					ks = append(ks, k)
				}
				sort.Strings(ks)
				keys = append(keys, strings.Join(ks, " "))
			}
		}
		sort.Strings(names)
		r.add("task containers on the engines", norm(strings.Join(names, " ")))
		r.add("task container label keys", strings.Join(keys, " | "))
	})
}

// checkTaskLabels checks a task container's labels against its name, its
// node and its service.
func checkTaskLabels(t *testing.T, tg *target, node int, svcID, name string, l map[string]string) {
	t.Helper()
	parts := strings.Split(name, ".")
	if len(parts) != 3 {
		t.Errorf("%s: task container %q is not <service>.<slot>.<task id>", tg.Name, name)
		return
	}
	want := map[string]string{
		"com.docker.swarm.service.name": parts[0],
		"com.docker.swarm.service.id":   svcID,
		"com.docker.swarm.task.id":      parts[2],
		"com.docker.swarm.task.name":    name,
		"com.docker.swarm.node.id":      tg.Nodes[node],
		"c":                             "1",
	}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("%s: %s: label %s=%q, want %q", tg.Name, name, k, l[k], v)
		}
	}
}

// TestServiceRestart: a crashing task is restarted as its restart policy
// says, up to --restart-max-attempts, each failure shown in `service ps`.
func TestServiceRestart(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		tg := r.tg
		r.cli("eo", "service", "create", "-d", "--quiet", "--name", "crash", "--restart-delay", "1s", "--restart-max-attempts", "1", "busybox", "sh", "-c", "echo crashing; exit 3")
		waitFor(t, 2*time.Minute, tg.Name+": crash failed twice", func() error {
			failed := 0
			for _, x := range tasks(t, tg, "crash") {
				if x.Status.State == "failed" {
					failed++
				}
			}
			if failed != 2 {
				return fmt.Errorf("%d failed tasks", failed)
			}
			return nil
		})
		time.Sleep(3 * time.Second) // no third attempt
		r.cli("eo", "service", "ps", "--format", "{{.Name}} {{.DesiredState}} {{.CurrentState}} {{.Error}}", "crash")
		r.cli("eo", "service", "ls", "--format", "{{.Name}} {{.Replicas}}")
	})
}
