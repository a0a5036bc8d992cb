package services

import (
	"testing"
	"time"
)

// TestServiceCLI2010: the CLI 20.10 (API 1.41) creates, lists, scales,
// updates and removes a service as against swarm mode.
func TestServiceCLI2010(t *testing.T) {
	scenario(t, func(t *testing.T, r *rec) {
		tg := r.tg
		r.cliBin(cli2010, "eor", append([]string{"service", "create", "-d", "--name", "old", "--replicas", "2", "--update-monitor", "1s", "busybox"}, sleeper...)...)
		waitRunning(t, tg, "old", 2, time.Minute)
		r.cliBin(cli2010, "eo", "service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}} {{.Image}}")
		r.cliBin(cli2010, "eo", "service", "ps", "--format", psFormat, "old")
		r.cliBin(cli2010, "eor", "service", "scale", "-d", "old=3")
		waitRunning(t, tg, "old", 3, time.Minute)
		r.cliBin(cli2010, "eor", "service", "update", "-d", "--env-add", "O=1", "old")
		waitUpdateState(t, tg, "old", "completed", 2*time.Minute)
		r.cliBin(cli2010, "eo", "service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Env}} {{.UpdateStatus.State}}", "old")
		r.cliBin(cli2010, "eor", "service", "rm", "old")
		r.cliBin(cli2010, "eo", "service", "ls")
	})
}
