package services

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/test/shoaltest"
	"github.com/shoal-dev/shoal/test/testbed"
)

// TestServiceGenericResources runs `docker service create
// --generic-resource gpu=1 --replicas 3` on an engine of its own started
// with two named GPUs (dockerd --node-generic-resource gpu=GPU-A and
// gpu=GPU-B), under shoal manage: two tasks run, each told its own GPU
// in DOCKER_RESOURCE_GPU as swarm mode's agent tells it, and the third
// stays pending with swarm mode's explanation. Shoal only (the shared
// engines advertise no resources).
func TestServiceGenericResources(t *testing.T) {
	if !runsShoal() {
		t.Skip("SHOAL_SERVICES_TARGETS=swarm: shoal's targets do not run")
	}
	t0 := time.Now()
	gb := testbed.MustStart(t, testbed.Options{Engines: 1, Prefix: "svcg",
		ExtraArgs: []string{"--node-generic-resource", "gpu=GPU-A", "--node-generic-resource", "gpu=GPU-B"}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := gb.LoadBusyboxAll(ctx); err != nil {
		t.Fatal(err)
	}
	flags := append([]string{"--data-dir", filepath.Join(t.TempDir(), "data")}, shoaltest.FastFlags...)
	sh := shoaltest.Manage(t, "nodes://"+strings.TrimPrefix(gb.Engines[0].TCPAddr, "tcp://"), flags...)
	tg := &target{Name: "shoal-gpu", Host: sh.Host, Engines: []int{0}, clusterBed: gb}
	cleanup(t, tg)
	started := time.Now()
	mustDocker(t, tg, append([]string{"service", "create", "-d", "--quiet", "--name", "gpu", "--replicas", "3",
		"--generic-resource", "gpu=1", "--stop-grace-period", "1s", "busybox"}, sleeper...)...)
	waitRunning(t, tg, "gpu", 2, time.Minute)
	waitFor(t, 30*time.Second, "the third task pending", func() error {
		for _, x := range tasks(t, tg, "gpu") {
			if x.Status.State == "pending" && x.Status.Err == "no suitable node (insufficient resources on 1 node)" {
				return nil
			}
		}
		return fmt.Errorf("tasks: %+v", tasks(t, tg, "gpu"))
	})
	ids := strings.Fields(engineDocker(t, tg, 0, "ps", "-q", "--filter", "label=com.docker.swarm.service.name=gpu").Out)
	var got []string
	for _, id := range ids {
		env := engineDocker(t, tg, 0, "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", id).Out
		for _, l := range strings.Split(env, "\n") {
			if v, ok := strings.CutPrefix(l, "DOCKER_RESOURCE_GPU="); ok {
				got = append(got, v)
			}
		}
	}
	sort.Strings(got)
	if strings.Join(got, " ") != "GPU-A GPU-B" {
		t.Errorf("DOCKER_RESOURCE_GPU of the running tasks: %q; want GPU-A and GPU-B, one each", got)
	}
	t.Logf("generic resources: %s in all, %s from create", time.Since(t0).Round(100*time.Millisecond), time.Since(started).Round(100*time.Millisecond))
}
